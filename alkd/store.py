"""The answer store: every teacher answer, once, in one SQLite file.

Answers are keyed by (dataset, teacher fingerprint, session id) and hold the
ranking, the raw text and the cost record. A paid LLM answer is never asked
for twice: ``fill`` asks a teacher only for the sessions the store lacks and
commits each answer as it arrives, so a run killed at any point loses at
most the answers still in flight.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode NORMAL
already survives a killed process, but a power loss or OS crash may drop
the last commits; FULL syncs the log on every commit so a committed answer
survives those too. One sync costs milliseconds; one API answer costs
seconds and money, so the trade is easy. WAL needs a local file system (not
NFS).

Re-putting an existing key keeps the first answer (``INSERT OR IGNORE``), so
a rerun never changes a committed answer; ``overwrite=True`` replaces it.
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from alkd.teachers.base import Answer, Cost, MissingAnswerError, Teacher, TeacherBase
from alkd.teachers.parse import read_llm_database

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
APPLICATION = "alkd-answer-store"
RECORDED_FINGERPRINT = "gpt-4-turbo-2024-04-09/recorded"
_CHUNK = 500  # ids per IN (...) query, well below SQLite's variable limit

# rankings are JSON lists of item ids; created is Unix time in seconds
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE answers (
    dataset TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    session_id INTEGER NOT NULL,
    ranking TEXT NOT NULL,
    raw TEXT,
    seconds REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    calls INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (dataset, fingerprint, session_id)
);
"""
_COLUMNS = "session_id, ranking, raw, seconds, prompt_tokens, completion_tokens, calls"


class AnswerStore:
    """One SQLite file of teacher answers; use as a context manager.

    Args:
        path: the store file; created (with its folder) when missing.
        busy_timeout_s: how long to wait for another process's write lock.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"answer store path is a directory: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection shared by threads (StoredTeacher may be called from
        # several); the lock serialises its use
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._open_schema()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise ValueError(f"{self.path} is not an answer store: {err}") from err
        except BaseException:
            self._conn.close()
            raise

    def _open_schema(self) -> None:
        tables = {
            row[0]
            for row in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        if not tables:
            self._create_schema()
        elif "meta" not in tables or "answers" not in tables:
            raise ValueError(
                f"{self.path} is not an answer store: an SQLite file with tables "
                f"{sorted(tables)}, no 'meta' and 'answers'"
            )
        meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        if meta.get("application") != APPLICATION:
            raise ValueError(f"{self.path} is not an answer store: meta={meta}")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise ValueError(
                f"{self.path}: answer store schema version "
                f"{meta.get('schema_version')}, this code reads {SCHEMA_VERSION}"
            )
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            log.warning(
                "answer store without WAL path=%s journal_mode=%s", self.path, mode
            )
        self._conn.execute("PRAGMA synchronous = FULL")

    def _create_schema(self) -> None:
        with self._transaction():
            # another process may have created it since we looked
            if self._conn.execute("SELECT 1 FROM sqlite_master").fetchone():
                return
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
            )
        log.info("created answer store path=%s", self.path)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AnswerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AnswerStore({str(self.path)!r})"

    def _transaction(self) -> AbstractContextManager[None]:
        return _transaction(self._conn, self._lock)

    # -- writing -----------------------------------------------------------

    def put(
        self, dataset: str, fingerprint: str, answer: Answer, *, overwrite: bool = False
    ) -> bool:
        """Commit one answer in its own transaction.

        Returns whether it was written: ``False`` when the key was already
        present and ``overwrite`` is off (the first answer is kept).
        """
        return self.put_many(dataset, fingerprint, [answer], overwrite=overwrite) == 1

    def put_many(
        self,
        dataset: str,
        fingerprint: str,
        answers: Iterable[Answer],
        *,
        overwrite: bool = False,
    ) -> int:
        """Commit several answers in one transaction (all or none).

        Returns the number of answers written (see ``put`` for ``overwrite``).
        """
        _check_key(dataset, fingerprint)
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        sql = (
            f"{verb} INTO answers (dataset, fingerprint, {_COLUMNS}, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rows = [_to_row(dataset, fingerprint, a) for a in answers]
        with self._transaction():
            before = self._conn.total_changes
            self._conn.executemany(sql, rows)
            return self._conn.total_changes - before

    # -- reading -----------------------------------------------------------

    def get(
        self, dataset: str, fingerprint: str, session_ids: Iterable[int]
    ) -> dict[int, Answer]:
        """The stored answers among ``session_ids``, in request order."""
        wanted = _unique_ids(session_ids)
        rows = self._select(dataset, fingerprint, wanted, _COLUMNS)
        found = {row[0]: _from_row(row) for row in rows}
        return {sid: found[sid] for sid in wanted if sid in found}

    def missing(
        self, dataset: str, fingerprint: str, session_ids: Iterable[int]
    ) -> list[int]:
        """The ids without a stored answer, in request order, each once."""
        wanted = _unique_ids(session_ids)
        rows = self._select(dataset, fingerprint, wanted, "session_id")
        present = {row[0] for row in rows}
        return [sid for sid in wanted if sid not in present]

    def _select(
        self, dataset: str, fingerprint: str, ids: list[int], columns: str
    ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            sql = (
                f"SELECT {columns} FROM answers WHERE dataset = ? AND "
                f"fingerprint = ? AND session_id IN ({','.join('?' * len(chunk))})"
            )
            rows += self._query(sql, (dataset, fingerprint, *chunk))
        return rows

    def count(
        self,
        dataset: str,
        fingerprint: str,
        session_ids: Iterable[int] | None = None,
    ) -> int:
        """How many answers are stored (among ``session_ids`` if given)."""
        if session_ids is not None:
            wanted = _unique_ids(session_ids)
            return len(wanted) - len(self.missing(dataset, fingerprint, wanted))
        rows = self._query(
            "SELECT COUNT(*) FROM answers WHERE dataset = ? AND fingerprint = ?",
            (dataset, fingerprint),
        )
        return rows[0][0]

    def fingerprints(self, dataset: str) -> list[str]:
        """The teacher fingerprints with answers for ``dataset``, sorted."""
        rows = self._query(
            "SELECT DISTINCT fingerprint FROM answers WHERE dataset = ? "
            "ORDER BY fingerprint",
            (dataset,),
        )
        return [row[0] for row in rows]

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- asking ------------------------------------------------------------

    def fill(
        self,
        dataset: str,
        teacher: Teacher,
        session_ids: Iterable[int],
        *,
        progress: bool = True,
        chunk_size: int = 1,
    ) -> dict[int, Answer]:
        """Ask ``teacher`` for the sessions the store lacks; return all answers.

        Each answer is committed as soon as it arrives. A teacher with an
        ``iter_answers(session_ids)`` method (e.g. ``ApiTeacher``) is read
        through it, so its concurrency is kept; any other is asked
        ``chunk_size`` sessions at a time. On an error the answers already
        committed stay.

        Raises:
            MissingAnswerError: the teacher returned no answer for a session.
        """
        fingerprint = teacher.fingerprint
        wanted = _unique_ids(session_ids)
        todo = self.missing(dataset, fingerprint, wanted)
        if todo:
            log.info(
                "asking teacher fingerprint=%s dataset=%s missing=%d of %d",
                fingerprint,
                dataset,
                len(todo),
                len(wanted),
            )
        bar = tqdm(total=len(todo), disable=not progress or not todo, desc=fingerprint)
        asked = set(todo)
        with bar:
            for answer in _ask(teacher, todo, chunk_size):
                if answer.session_id in asked:
                    self.put(dataset, fingerprint, answer)
                    bar.update(1)

        answers = self.get(dataset, fingerprint, wanted)
        absent = [sid for sid in wanted if sid not in answers]
        if absent:
            raise MissingAnswerError(
                f"teacher {fingerprint!r} gave no answer for {len(absent)} "
                f"sessions, first {absent[:10]}"
            )
        return answers


@contextmanager
def _transaction(conn: sqlite3.Connection, lock: threading.RLock) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), under a lock."""
    with lock:
        # IMMEDIATE takes the write lock now, so two filling processes wait
        # on busy_timeout instead of failing at commit
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _ask(teacher: Teacher, todo: list[int], chunk_size: int) -> Iterator[Answer]:
    """The teacher's answers for ``todo`` as they arrive."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    iter_answers = getattr(teacher, "iter_answers", None)
    if not todo:
        return
    if callable(iter_answers):
        yield from iter_answers(todo)
        return
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        for sid, answer in teacher.answer(chunk).items():
            if answer.session_id != sid:
                raise ValueError(
                    f"teacher {teacher.fingerprint!r} returned the answer of "
                    f"session {answer.session_id} under key {sid}"
                )
            yield answer


class StoredTeacher(TeacherBase):
    """A teacher whose answers go through the store: each is asked once.

    Same fingerprint as the wrapped ``teacher``; a session the store lacks
    is asked of ``teacher`` and committed before it is returned.
    """

    def __init__(
        self,
        store: AnswerStore,
        dataset: str,
        teacher: Teacher,
        *,
        progress: bool = False,
    ) -> None:
        self.store, self.dataset, self.teacher = store, dataset, teacher
        self.fingerprint = teacher.fingerprint
        self.progress = progress

    @classmethod
    def read_only(
        cls, store: AnswerStore, dataset: str, fingerprint: str
    ) -> StoredTeacher:
        """A teacher that answers from the store only, e.g. imported answers.

        A session without a stored answer raises ``MissingAnswerError``.
        """
        return cls(store, dataset, _NoTeacher(fingerprint, store.path))

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        return self.store.fill(
            self.dataset, self.teacher, session_ids, progress=self.progress
        )

    def __repr__(self) -> str:
        return f"StoredTeacher({self.store!r}, {self.dataset!r}, {self.fingerprint!r})"


class _NoTeacher(TeacherBase):
    """Stands in for a teacher that cannot be asked: every question fails."""

    def __init__(self, fingerprint: str, path: Path) -> None:
        self.fingerprint, self.path = fingerprint, path

    def iter_answers(self, session_ids: Sequence[int]) -> Iterator[Answer]:
        raise MissingAnswerError(
            f"store {self.path} has no answer of {self.fingerprint!r} for "
            f"{len(session_ids)} sessions, first {list(session_ids)[:10]}"
        )

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        return {a.session_id: a for a in self.iter_answers(session_ids)}


def import_recorded(
    store: AnswerStore,
    dataset: str,
    path: str | Path,
    fingerprint: str = RECORDED_FINGERPRINT,
) -> int:
    """Import the authors' recorded GPT-4 answers (``X_LLM_Database.data``).

    Rankings are stored as recorded (see ``read_llm_records``); the raw text
    was not released (``raw=None``), and of the cost only ``calls=1`` is
    known. The import is one transaction; existing answers are kept.

    Returns:
        The number of answers newly written (0 on a repeated import).
    """
    rankings = read_llm_database(path)
    answers = [
        Answer(session_id=sid, ranking=ranking, cost=Cost(calls=1))
        for sid, ranking in rankings.items()
    ]
    written = store.put_many(dataset, fingerprint, answers)
    log.info(
        "imported recorded answers path=%s dataset=%s read=%d written=%d",
        path,
        dataset,
        len(answers),
        written,
    )
    return written


def _check_key(dataset: str, fingerprint: str) -> None:
    for name, value in (("dataset", dataset), ("fingerprint", fingerprint)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _unique_ids(session_ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(int(sid) for sid in session_ids))


def _to_row(dataset: str, fingerprint: str, answer: Answer) -> tuple[Any, ...]:
    try:
        ranking = [operator.index(item) for item in answer.ranking]
    except TypeError as err:
        raise ValueError(
            f"ranking of session {answer.session_id} is not a list of item ids: {err}"
        ) from err
    cost = answer.cost
    return (
        dataset,
        fingerprint,
        operator.index(answer.session_id),
        json.dumps(ranking, separators=(",", ":")),
        answer.raw,
        cost.seconds,
        cost.prompt_tokens,
        cost.completion_tokens,
        cost.calls,
        time.time(),
    )


def _from_row(row: tuple[Any, ...]) -> Answer:
    sid, ranking, raw, seconds, prompt_tokens, completion_tokens, calls = row
    cost = Cost(seconds, prompt_tokens, completion_tokens, calls)
    return Answer(session_id=sid, ranking=json.loads(ranking), cost=cost, raw=raw)

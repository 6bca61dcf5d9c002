"""The SQLite answer store, the recorded-answer reader and the kill test."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from _store_worker import DATASET, FINGERPRINT, expected_answer

from alkd.store import (
    RECORDED_FINGERPRINT,
    AnswerStore,
    StoredTeacher,
    import_recorded,
)
from alkd.teachers.base import Answer, Cost, MissingAnswerError, Teacher, TeacherBase
from alkd.teachers.parse import LlmRecord, read_llm_database, read_llm_records

REPO = Path(__file__).resolve().parents[1]


def answer(sid: int, ranking: Sequence[int] = (1, 2, 3), **cost: float) -> Answer:
    return Answer(
        session_id=sid, ranking=list(ranking), cost=Cost(**cost), raw=f"r{sid}"
    )


class RecordingTeacher(TeacherBase):
    """Answers ``[sid, sid + 1]`` and remembers what it was asked."""

    def __init__(self, fingerprint: str = "rec/v1", skip: Sequence[int] = ()) -> None:
        self.fingerprint = fingerprint
        self.asked: list[list[int]] = []
        self.skip = set(skip)

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        self.asked.append(list(session_ids))
        return {s: answer(s, [s, s + 1]) for s in session_ids if s not in self.skip}


@pytest.fixture
def store(tmp_path: Path) -> AnswerStore:
    with AnswerStore(tmp_path / "sub" / "answers.sqlite") as opened:
        yield opened


# -- file and schema -------------------------------------------------------


def test_new_store_has_schema_wal_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with AnswerStore(path) as store:
        store.put("ML", "t/v1", answer(4, [9, 8], seconds=1.5, calls=2))
    raw = sqlite3.connect(path)
    meta = dict(raw.execute("SELECT key, value FROM meta"))
    assert meta == {"application": "alkd-answer-store", "schema_version": "1"}
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    with AnswerStore(path) as store:
        got = store.get("ML", "t/v1", [4])[4]
    assert got == Answer(4, [9, 8], Cost(1.5, None, None, 2), "r4")


def test_not_an_answer_store_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("just some text, long enough to not look empty\n" * 20)
    with pytest.raises(ValueError, match=f"{text}.*not an answer store"):
        AnswerStore(text)

    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=f"{other}.*not an answer store"):
        AnswerStore(other)

    with pytest.raises(ValueError, match="directory"):
        AnswerStore(tmp_path)


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    AnswerStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=f"{path}.*schema version 99"):
        AnswerStore(path)


# -- put / get / missing / count -------------------------------------------


def test_put_keeps_the_first_answer_unless_overwrite(store: AnswerStore) -> None:
    assert store.put("ML", "t", answer(1, [5, 6]))
    assert not store.put("ML", "t", answer(1, [7, 8]))
    assert store.get("ML", "t", [1])[1].ranking == [5, 6]
    assert store.put("ML", "t", answer(1, [7, 8]), overwrite=True)
    assert store.get("ML", "t", [1])[1].ranking == [7, 8]
    assert store.count("ML", "t") == 1


def test_keys_separate_dataset_and_fingerprint(store: AnswerStore) -> None:
    store.put("ML", "a", answer(1, [1]))
    store.put("ML", "b", answer(1, [2]))
    store.put("Games", "a", answer(1, [3]))
    assert store.get("ML", "a", [1])[1].ranking == [1]
    assert store.get("ML", "b", [1])[1].ranking == [2]
    assert store.get("Games", "a", [1])[1].ranking == [3]
    assert store.fingerprints("ML") == ["a", "b"]
    assert store.fingerprints("Games") == ["a"]
    assert store.fingerprints("none") == []


def test_get_missing_count_keep_request_order(store: AnswerStore) -> None:
    for sid in (5, 2, 9):
        store.put("ML", "t", answer(sid, [sid]))
    assert list(store.get("ML", "t", [9, 1, 2, 9])) == [9, 2]
    assert store.missing("ML", "t", [7, 9, 3, 7, 2, 0]) == [7, 3, 0]
    assert store.count("ML", "t") == 3
    assert store.count("ML", "t", [2, 3, 5, 5]) == 2
    assert store.get("ML", "t", []) == {} and store.missing("ML", "t", []) == []


def test_many_ids_beyond_one_query(store: AnswerStore) -> None:
    store.put_many("ML", "t", [answer(s, [s]) for s in range(0, 3000, 2)])
    asked = list(range(2999, -1, -1))
    assert store.missing("ML", "t", asked) == [s for s in asked if s % 2]
    assert list(store.get("ML", "t", asked)) == [s for s in asked if s % 2 == 0]


def test_put_normalises_numpy_and_refuses_bad_input(store: AnswerStore) -> None:
    ranking = np.array([4, 5], dtype=np.int64)
    store.put("ML", "t", Answer(np.int64(3), list(ranking)))
    got = store.get("ML", "t", [3])[3]
    assert got.ranking == [4, 5] and type(got.ranking[0]) is int
    with pytest.raises(ValueError, match="ranking of session 4"):
        store.put("ML", "t", Answer(4, [1.5]))
    with pytest.raises(ValueError, match="fingerprint"):
        store.put("ML", "", answer(1))
    with pytest.raises(ValueError, match="dataset"):
        store.put("", "t", answer(1))


def test_put_many_is_all_or_nothing(store: AnswerStore) -> None:
    with pytest.raises(ValueError):
        store.put_many("ML", "t", [answer(1), Answer(2, ["x"])])
    assert store.count("ML", "t") == 0
    assert store.put_many("ML", "t", [answer(1), answer(2)]) == 2
    assert store.put_many("ML", "t", [answer(2), answer(3)]) == 1


def test_threads_share_one_store(store: AnswerStore) -> None:
    def put_range(start: int) -> None:
        for sid in range(start, start + 50):
            store.put("ML", "t", answer(sid))

    threads = [threading.Thread(target=put_range, args=(i * 50,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count("ML", "t") == 200


def test_two_connections_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with AnswerStore(path) as first, AnswerStore(path) as second:
        first.put("ML", "t", answer(1))
        assert second.get("ML", "t", [1])[1].raw == "r1"


# -- fill and StoredTeacher ------------------------------------------------


def test_fill_asks_only_missing_one_at_a_time(store: AnswerStore) -> None:
    teacher = RecordingTeacher()
    store.put("ML", teacher.fingerprint, answer(2, [42]))
    got = store.fill("ML", teacher, [3, 2, 1, 3], progress=False)
    assert teacher.asked == [[3], [1]]
    assert list(got) == [3, 2, 1]
    assert got[2].ranking == [42] and got[1].ranking == [1, 2]
    assert store.fill("ML", teacher, [1, 2, 3], progress=False) == got
    assert teacher.asked == [[3], [1]]


def test_fill_in_chunks(store: AnswerStore) -> None:
    teacher = RecordingTeacher()
    store.fill("ML", teacher, range(7), progress=False, chunk_size=3)
    assert teacher.asked == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="chunk_size"):
        store.fill("ML", teacher, [99], progress=False, chunk_size=0)


def test_fill_uses_iter_answers_when_offered(store: AnswerStore) -> None:
    class Streaming(RecordingTeacher):
        def iter_answers(self, session_ids: Sequence[int]):
            self.asked.append(["stream", *session_ids])
            for sid in session_ids:
                yield answer(sid, [sid * 2])

    teacher = Streaming()
    got = store.fill("ML", teacher, [4, 5], progress=True)
    assert teacher.asked == [["stream", 4, 5]]
    assert got[5].ranking == [10]


def test_fill_raises_for_unanswered_and_keeps_the_rest(store: AnswerStore) -> None:
    teacher = RecordingTeacher(skip=[2])
    with pytest.raises(MissingAnswerError, match=r"1 sessions, first \[2\]"):
        store.fill("ML", teacher, [1, 2, 3], progress=False)
    assert store.missing("ML", teacher.fingerprint, [1, 2, 3]) == [2]


def test_fill_keeps_answers_committed_before_an_error(store: AnswerStore) -> None:
    class Failing(RecordingTeacher):
        def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
            if 3 in session_ids:
                raise RuntimeError("teacher broke")
            return super().answer(session_ids)

    teacher = Failing()
    with pytest.raises(RuntimeError, match="teacher broke"):
        store.fill("ML", teacher, [1, 2, 3, 4], progress=False)
    assert store.missing("ML", teacher.fingerprint, [1, 2, 3, 4]) == [3, 4]


def test_stored_teacher_caches_through_the_store(store: AnswerStore) -> None:
    inner = RecordingTeacher("inner/v2")
    cached = StoredTeacher(store, "Games", inner)
    assert isinstance(cached, Teacher) and cached.fingerprint == "inner/v2"
    assert cached.rank([5, 6]) == {5: [5, 6], 6: [6, 7]}
    assert cached.answer([6, 7])[7].ranking == [7, 8]
    assert inner.asked == [[5], [6], [7]]
    assert store.fingerprints("Games") == ["inner/v2"]


def test_read_only_stored_teacher(store: AnswerStore) -> None:
    store.put("ML", "gpt/rec", answer(1, [3]))
    teacher = StoredTeacher.read_only(store, "ML", "gpt/rec")
    assert teacher.rank([1]) == {1: [3]}
    with pytest.raises(MissingAnswerError, match=r"2 sessions, first \[2, 5\]"):
        teacher.answer([1, 2, 5])


# -- recorded answers ------------------------------------------------------


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_read_llm_records_known_file(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "X_LLM_Database.data",
        ["12\t[5, 3, 9]\t1", "", "4\t[]\t25\r", "7\t[8]\t25"],
    )
    assert read_llm_records(path) == {
        12: LlmRecord([5, 3, 9], 1),
        4: LlmRecord([], 25),
        7: LlmRecord([8], 25),
    }
    assert read_llm_database(path) == {12: [5, 3, 9], 4: [], 7: [8]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("12\t[5, 3]", "expected 3 tab-separated fields"),
        ("12 [5, 3] 1", "expected 3 tab-separated fields"),
        ("x\t[5, 3]\t1", "session id must be a non-negative integer"),
        ("12\t5, 3\t1", "item list must be in brackets"),
        ("12\t[5, three]\t1", "item id must be"),
        ("12\t[5, -3]\t1", "item id must be"),
        ("12\t[5,, 3]\t1", "item id must be"),
        ("12\t[5, 3]\tlast", "label position must be"),
        ("3\t[1]\t25", "session id 3 repeated"),
    ],
)
def test_read_llm_records_names_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write_lines(tmp_path / "bad.data", ["3\t[1, 2]\t0", "", line])
    with pytest.raises(ValueError, match=f"{path}:3: {message}"):
        read_llm_records(path)


def test_read_llm_records_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.data"):
        read_llm_database(tmp_path / "nothing.data")


def test_import_recorded(store: AnswerStore, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ML.data", ["12\t[5, 3, 9]\t1", "4\t[]\t25"])
    assert import_recorded(store, "ML", path) == 2
    assert import_recorded(store, "ML", path) == 0
    got = store.get("ML", RECORDED_FINGERPRINT, [12, 4])
    assert got[12] == Answer(12, [5, 3, 9], Cost(calls=1), raw=None)
    assert got[4].ranking == []
    assert store.fingerprints("ML") == ["gpt-4-turbo-2024-04-09/recorded"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "n"), [("ML", 4992), ("Games", 5359)])
def test_import_real_recorded_answers(
    store: AnswerStore, name: str, n: int, data_root: Path
) -> None:
    path = data_root / name / f"{name}_LLM_Database.data"
    assert import_recorded(store, name, path) == n
    answers = store.get(name, RECORDED_FINGERPRINT, read_llm_database(path))
    lengths = [len(a.ranking) for a in answers.values()]
    assert len(lengths) == n and max(lengths) <= 50 and lengths.count(25) > 0.95 * n


# -- the kill test ---------------------------------------------------------


def run_worker_and_kill(
    path: Path, n: int, after: int, wait_s: float, log: Path
) -> list[int]:
    """Start the worker, SIGKILL it ``wait_s`` after its ``after``-th answer.

    Returns the session ids it printed until then.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = REPO / "tests" / "_store_worker.py"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(worker), str(path), str(n), "0.002"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
        printed = []
        while len(printed) < after:
            line = proc.stdout.readline()
            assert line, f"worker ended early: {log.read_text()}"
            printed.append(int(line))
        # the answer just printed is being committed now: waiting a random
        # few ms lands the kill at different points of that write
        time.sleep(wait_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return printed


def check_complete(path: Path) -> set[int]:
    """Every row is whole and equal to the teacher's answer; the ids present."""
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    dupes = con.execute(
        "SELECT session_id FROM answers GROUP BY dataset, fingerprint, session_id "
        "HAVING COUNT(*) > 1"
    ).fetchall()
    assert dupes == []
    rows = con.execute(
        "SELECT dataset, fingerprint, session_id, ranking, raw, seconds, "
        "prompt_tokens, completion_tokens, calls FROM answers"
    ).fetchall()
    con.close()
    for dataset, fingerprint, sid, ranking, raw, *cost in rows:
        want = expected_answer(sid)
        assert (dataset, fingerprint) == (DATASET, FINGERPRINT)
        assert json.loads(ranking) == want.ranking and raw == want.raw
        assert tuple(cost) == (
            want.cost.seconds,
            want.cost.prompt_tokens,
            want.cost.completion_tokens,
            want.cost.calls,
        )
    return {row[2] for row in rows}


def test_killed_fill_leaves_only_complete_answers(tmp_path: Path) -> None:
    path, n = tmp_path / "answers.sqlite", 80
    rng = random.Random(0)
    present: set[int] = set()
    for after in (3, 5, 7, 9, 11, 13):
        wait_s = rng.uniform(0.0, 0.008)
        printed = run_worker_and_kill(path, n, after, wait_s, tmp_path / "log")
        # a restarted worker asks only for what is missing, in order
        assert printed == [s for s in range(n) if s not in present][:after]
        with AnswerStore(path) as store:
            assert store.count(DATASET, FINGERPRINT) == len(check_complete(path))
        now = check_complete(path)
        assert present <= now and len(now) < n
        assert len(now - present) >= after - 1  # all but the one in flight
        present = now

    class Recording(TeacherBase):
        fingerprint = FINGERPRINT

        def __init__(self) -> None:
            self.asked: list[int] = []

        def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
            self.asked.extend(session_ids)
            return {s: expected_answer(s) for s in session_ids}

    teacher = Recording()
    with AnswerStore(path) as store:
        got = store.fill(DATASET, teacher, range(n), progress=False)
    assert teacher.asked == [s for s in range(n) if s not in present]
    assert sorted(got) == list(range(n))
    assert check_complete(path) == set(range(n))

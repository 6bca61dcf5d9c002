"""Reading LLM answers: free-text rankings and the authors' recorded answers.

``parse_ranking`` turns a model's reply into a ranking of candidate items
(METHOD.md section 4: the LLM returns 25 ids of the candidate set as a
Python-style list). ``read_llm_database`` reads the authors' recorded
GPT-4-turbo answers, ``X_LLM_Database.data`` (METHOD.md section 1).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

RANKING_LENGTH = 25  # the prompt asks for 25 ids (METHOD.md section 4)

# The first bracketed group that is empty or holds a digit ("[Answer]" is
# a label, not the list); an unclosed one at the end of the text counts too
# (an answer cut off by max_tokens loses its "]").
_LIST = re.compile(r"\[(\s*|[^\[\]]*\d[^\[\]]*)(?:\]|$)")
# A number not glued to a word or to a preceding digit/dot: "x-5" and
# "100-200" read as 5 and 100, 200 (a hyphen, not a minus sign).
_NUMBER = re.compile(r"(?<![\w.])(-?\d+)(?:\.(\d+))?(?!\w)")
# "1. " or "2) " at the start of a line: an enumeration, not an item id.
_ORDINAL = re.compile(r"^[ \t]*\d+[.)][ \t]+", re.MULTILINE)


@dataclass(frozen=True)
class ParsedRanking:
    """A ranking read from an answer, with counts of what had to be repaired.

    ``n_parsed = n_unknown + n_duplicate + (valid distinct ids)``;
    ``len(ranking) = min(k, distinct candidates)``, of which the last
    ``n_filled`` came from the fill rule rather than from the answer.
    """

    ranking: list[int]
    n_parsed: int  # numbers read from the answer
    n_unknown: int  # numbers that are not a candidate id (incl. 12.5, -3)
    n_duplicate: int  # repeats of an id already read
    n_filled: int  # ids appended from the candidate order


def parse_ranking(
    text: str | None, candidates: Iterable[int], k: int = RANKING_LENGTH
) -> ParsedRanking:
    """Read a ranking of candidate ids from an LLM's answer.

    Numbers are taken from the first bracketed list that is empty or holds
    a digit (an unclosed list at the end of the text counts), else from the
    whole text with line-leading enumerations ("1. ", "2) ") removed. ``12.0`` reads as
    12; other non-integers, negative numbers and ids outside ``candidates``
    are dropped as unknown; repeated ids keep their first position. The
    result is cut to ``k`` ids.

    Fill rule: when fewer than ``k`` valid ids remain, the ranking is
    completed with the candidates not yet in it, in the order given. The
    candidate set comes in the teacher recommender's order (best first), so
    the fill is "the recommender's next best"; an empty or unusable answer
    therefore yields the recommender's own top ``k``.

    Args:
        text: the model's reply (``None`` is read as empty).
        candidates: the session's candidate item ids, recommender order.
        k: ranking length (at least 1).

    Returns:
        The ranking and the repair counts.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = list(dict.fromkeys(int(c) for c in candidates))
    numbers = _read_numbers(text or "")

    kept, n_unknown, n_duplicate = _keep_candidates(numbers, set(order))

    ranking = kept[:k]
    n_from_answer = len(ranking)
    chosen = set(kept)
    fill = (item for item in order if item not in chosen)
    ranking += list(itertools.islice(fill, k - n_from_answer))
    return ParsedRanking(
        ranking=ranking,
        n_parsed=len(numbers),
        n_unknown=n_unknown,
        n_duplicate=n_duplicate,
        n_filled=len(ranking) - n_from_answer,
    )


def _keep_candidates(
    numbers: list[int | None], allowed: set[int]
) -> tuple[list[int], int, int]:
    """Distinct candidate ids in answer order, and the unknown/duplicate counts."""
    kept: list[int] = []
    seen: set[int] = set()
    n_unknown = n_duplicate = 0
    for value in numbers:
        if value is None or value not in allowed:
            n_unknown += 1
        elif value in seen:
            n_duplicate += 1
        else:
            seen.add(value)
            kept.append(value)
    return kept, n_unknown, n_duplicate


def _read_numbers(text: str) -> list[int | None]:
    """Numbers of the answer in order; ``None`` for a non-integer like 1.5."""
    found = _LIST.search(text)
    body = found.group(1) if found else _ORDINAL.sub(" ", text)
    numbers: list[int | None] = []
    for match in _NUMBER.finditer(body):
        whole, fraction = match.group(1), match.group(2)
        if fraction is not None and fraction.strip("0"):
            numbers.append(None)
        else:
            numbers.append(int(whole))
    return numbers


class LlmRecord(NamedTuple):
    """One line of ``X_LLM_Database.data``."""

    ranking: list[int]  # internal item ids as recorded (usually 25)
    label_position: int  # index of the true next item in ranking; 25 = absent


def read_llm_records(path: str | Path) -> dict[int, LlmRecord]:
    """Read the authors' recorded answers with the label position column.

    Format, one record a line: ``session_id<TAB>[id, id, ...]<TAB>position``.
    The recorded lists are kept as they are: most hold 25 ids, but the
    release also has empty lists (the model gave nothing usable) and a few
    longer ones (Games has lists of up to 50 ids); truncating is the
    consumer's choice. Blank lines are skipped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a malformed line or a repeated session id, naming the
            file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recorded LLM answers not found: {path}")
    records: dict[int, LlmRecord] = {}
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            session_id, record = _parse_record(line.rstrip("\r\n"), where)
            if session_id in records:
                raise ValueError(f"{where}: session id {session_id} repeated")
            records[session_id] = record
    return records


def read_llm_database(path: str | Path) -> dict[int, list[int]]:
    """Recorded rankings by session id: ``{session_id: [item ids]}``.

    See ``read_llm_records`` for the format and the errors raised.
    """
    return {sid: rec.ranking for sid, rec in read_llm_records(path).items()}


def _parse_record(line: str, where: str) -> tuple[int, LlmRecord]:
    fields = line.split("\t")
    if len(fields) != 3:
        raise ValueError(
            f"{where}: expected 3 tab-separated fields "
            f"(session id, [ids], position), got {len(fields)}"
        )
    session_id = _parse_int(fields[0], "session id", where)
    ranking = _parse_id_list(fields[1], where)
    position = _parse_int(fields[2], "label position", where)
    return session_id, LlmRecord(ranking, position)


def _parse_int(field: str, what: str, where: str) -> int:
    text = field.strip()
    if not text.isdigit():
        raise ValueError(
            f"{where}: {what} must be a non-negative integer, got {text!r}"
        )
    return int(text)


def _parse_id_list(field: str, where: str) -> list[int]:
    text = field.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{where}: item list must be in brackets, got {text[:40]!r}")
    inner = text[1:-1].strip()
    if not inner:
        return []
    return [_parse_int(part, "item id", where) for part in inner.split(",")]

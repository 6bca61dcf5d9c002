"""Fill an answer store from a slow fake teacher (the kill test's subprocess).

Usage: ``python tests/_store_worker.py STORE N_SESSIONS DELAY_S``. Prints each
session id on stdout as its answer leaves the teacher, so the test knows
how far the fill got before it sends SIGKILL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from alkd.store import AnswerStore
from alkd.teachers.base import Answer, Cost, TeacherBase

DATASET = "fake"
FINGERPRINT = "slow-fake-teacher/v1"
RAW_CHARS = 200_000  # a big row spans many pages: a kill mid-write is likely


def expected_answer(sid: int) -> Answer:
    """The one answer this teacher gives for ``sid``."""
    ranking = [(sid * 37 + j * 11) % 5000 for j in range(25)]
    raw = f"<answer {sid}>" + "x" * RAW_CHARS + f"</answer {sid}>"
    cost = Cost(
        seconds=sid / 10, prompt_tokens=1000 + sid, completion_tokens=sid, calls=1
    )
    return Answer(session_id=sid, ranking=ranking, cost=cost, raw=raw)


class SlowTeacher(TeacherBase):
    """Answers after ``delay_s`` per session."""

    fingerprint = FINGERPRINT

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        answers = {}
        for sid in session_ids:
            time.sleep(self.delay_s)
            answers[sid] = expected_answer(sid)
            sys.stdout.write(f"{sid}\n")
            sys.stdout.flush()
        return answers


def main(argv: Sequence[str]) -> None:
    path, n_sessions, delay_s = argv[0], int(argv[1]), float(argv[2])
    with AnswerStore(path) as store:
        store.fill(DATASET, SlowTeacher(delay_s), range(n_sessions), progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])

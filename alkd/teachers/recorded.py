"""The GPT-4-turbo answers the authors recorded, replayed as a teacher.

``X_LLM_Database.data`` holds one GPT-4-turbo (2024-04-09) ranking per
answered train session. Most lists hold 25 ids; the release also has empty
lists (Games: 152, ML: 1), which carry nothing to distill, and a few longer
ones (up to 50 ids), cut here to the 25 the prompt asked for. The selection
pool of this teacher is therefore the train sessions with a non-empty
recorded answer; every table that uses it says so. Ids outside the item
table and repeated ids within a list are dropped (order kept).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from alkd.data import SessionDataset
from alkd.teachers.base import Answer, Cost, MissingAnswerError, TeacherBase
from alkd.teachers.parse import read_llm_database

log = logging.getLogger(__name__)

FINGERPRINT = "gpt-4-turbo-2024-04-09/recorded"
TOP_K = 25  # the prompt asks for 25 candidates (METHOD.md section 4)


class RecordedTeacher(TeacherBase):
    """Answers from the release's recorded GPT-4-turbo rankings."""

    fingerprint = FINGERPRINT

    def __init__(self, dataset: SessionDataset, k: int = TOP_K) -> None:
        path = dataset.file("_LLM_Database.data")
        recorded = read_llm_database(path)
        self.dataset_name = dataset.name
        self.n_empty = sum(1 for r in recorded.values() if not r)
        bad = [sid for sid in recorded if not 0 <= sid < len(dataset.train)]
        if bad:
            raise ValueError(
                f"{path}: session {bad[0]} is not a train session of {dataset.name}"
            )
        # GPT-4 answers are not clean: ML has one made-up id (9258 > 8474)
        # and some lists repeat an item; both are dropped, keeping the order
        self.n_dropped = 0
        self.rankings = {}
        for sid, ranking in recorded.items():
            kept = [v for v in dict.fromkeys(ranking) if 0 <= v < dataset.n_items]
            self.n_dropped += len(ranking) - len(kept)
            if kept:
                self.rankings[sid] = kept[:k]
        log.info(
            "recorded answers dataset=%s usable=%d empty=%d dropped_ids=%d",
            dataset.name,
            len(self.rankings),
            self.n_empty,
            self.n_dropped,
        )

    def pool(self) -> np.ndarray:
        """Train session ids this teacher can answer (non-empty answers)."""
        return np.array(sorted(self.rankings), dtype=np.int64)

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        out = {}
        for sid in session_ids:
            sid = int(sid)
            if sid not in self.rankings:
                raise MissingAnswerError(
                    f"{self.dataset_name}: no recorded GPT-4 answer for session {sid}"
                )
            # recorded calls cost one API call each; their time was not recorded
            out[sid] = Answer(sid, self.rankings[sid], Cost(calls=1))
        return out

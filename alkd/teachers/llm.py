"""The local LLM teacher: ranks each session's candidates by title likelihood.

Runs offline with a small open causal LM (default SmolLM2-135M-Instruct),
zero-shot or LoRA-tuned (:mod:`alkd.llm.lora`). For each session the prompt
holds the hints and the session's titles; every candidate title is scored
as its answer (:mod:`alkd.llm.scoring`) and the best ``k`` are returned.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from alkd.llm.loading import LoadedLLM
from alkd.llm.prompts import MOVIES, Domain, hints_fingerprint, next_title_messages
from alkd.llm.scoring import TitleScorer
from alkd.teachers.base import Answer, Cost, TeacherBase

log = logging.getLogger(__name__)


class LocalLLMTeacher(TeacherBase):
    """Teacher answers from a local LM scoring candidate titles.

    Args:
        llm: a loaded (optionally tuned) model, see :func:`alkd.llm.load_llm`.
        titles: item titles by internal item id.
        sessions_of: session id -> the session's item ids, oldest first.
        candidates_of: session id -> its candidate item ids (the teacher
            recommender's top 50 in the pipeline).
        hints: hint sentences for the prompt, or ``None``/``""`` for none.
        score: ``"pmi"`` (calibrated) or ``"mean_logprob"``.
        k: length of each ranking (25 in the paper).
        batch_size: candidates per forward pass.
        progress: show a tqdm bar over sessions.
        domain: the words for items in the prompt (movies or games).
    """

    def __init__(
        self,
        llm: LoadedLLM,
        titles: Sequence[str],
        sessions_of: Callable[[int], list[int]],
        candidates_of: Callable[[int], list[int]],
        hints: str | None,
        *,
        score: str = "pmi",
        k: int = 25,
        batch_size: int = 25,
        progress: bool = True,
        domain: Domain = MOVIES,
    ) -> None:
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        self.llm, self.titles, self.hints, self.k = llm, titles, hints, k
        self.sessions_of, self.candidates_of = sessions_of, candidates_of
        self.progress, self.domain = progress, domain
        self.scorer = TitleScorer(
            llm, titles, score=score, batch_size=batch_size, domain=domain
        )

    @property
    def score(self) -> str:
        return self.scorer.score

    @property
    def fingerprint(self) -> str:  # type: ignore[override]
        """Model, adapter, score type, hints and k: what changes the answers."""
        parts = [
            "local-llm",
            self.llm.fingerprint,
            self.llm.adapter_fingerprint or "no-adapter",
            self.score,
            hints_fingerprint(self.hints),
            f"k{self.k}",
            self.domain.plural,
        ]
        digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        return f"local-llm:{digest}"

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        """Rank each session's candidates; one cost record per session."""
        answers: dict[int, Answer] = {}
        for sid in tqdm(session_ids, desc="llm teacher", disable=not self.progress):
            answers[int(sid)] = self.answer_one(int(sid))
        return answers

    def answer_one(self, session_id: int) -> Answer:
        """One session's answer; ``seconds`` includes new neutral terms."""
        started = time.perf_counter()
        titles = [self.titles[i] for i in self.sessions_of(session_id)]
        messages = next_title_messages(self.hints, titles, self.domain)
        ranked = self.scorer.rank(messages, self.candidates_of(session_id), self.k)
        cost = Cost(
            seconds=time.perf_counter() - started,
            prompt_tokens=ranked.prompt_tokens,
            completion_tokens=0,
            calls=1,
        )
        log.debug("llm answer session=%d seconds=%.2f", session_id, cost.seconds)
        return Answer(session_id, ranked.ranking, cost, raw=None)

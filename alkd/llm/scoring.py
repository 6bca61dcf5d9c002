"""Rank a session's candidate items by the likelihood of their titles.

Each candidate title (followed by EOS) is scored as the answer to the
session's prompt. ``pmi`` subtracts the title's log-probability under a
neutral prompt, so that short or frequent titles do not win by being
probable anywhere; ``mean_logprob`` is the raw per-token mean.

The session prompt runs once; its key/value cache is expanded to a batch of
right-padded candidate continuations, so a candidate costs only its own
tokens. :func:`full_logprobs` is the slow reference without a cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from alkd.io import atomic_write_json
from alkd.llm.loading import LoadedLLM, chat_prompt_ids, text_ids
from alkd.llm.prompts import MOVIES, Domain, Messages, neutral_messages

log = logging.getLogger(__name__)

SCORES = ("pmi", "mean_logprob")


@dataclass
class PromptState:
    """A prompt run once: its cache and the distribution of the next token."""

    length: int  # P, prompt tokens
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (1, heads, P, d)
    next_logprobs: torch.Tensor  # (V,) log-probabilities after the prompt


@dataclass(frozen=True)
class RankedCandidates:
    """Top-k candidates and the score of every candidate."""

    ranking: list[int]  # best first, at most k
    scores: dict[int, float]  # every candidate's score
    prompt_tokens: int  # tokens the model read: prompt + all continuations


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    # at least float32: bf16 logits on CUDA lose the small differences PMI needs
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return torch.log_softmax(logits.to(dtype), dim=-1)


@torch.no_grad()
def encode_prompt(model: Any, prompt_ids: Sequence[int]) -> PromptState:
    """Run the prompt once and keep its key/value cache."""
    if not prompt_ids:
        raise ValueError("prompt_ids: the prompt is empty")
    input_ids = torch.tensor([list(prompt_ids)], device=_device(model))
    out = model(input_ids=input_ids, use_cache=True)
    kv = [(layer.keys, layer.values) for layer in out.cache.layers]
    next_logprobs = _log_softmax(out.logits[0, -1])  # (V,)
    return PromptState(len(prompt_ids), kv, next_logprobs)


@torch.no_grad()
def cached_logprobs(
    model: Any,
    state: PromptState,
    continuations: Sequence[Sequence[int]],
    batch_size: int = 25,
) -> list[torch.Tensor]:
    """Per-token log-probabilities of each continuation after the prompt.

    Returns one (T_i,) float tensor per continuation, in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if any(len(c) == 0 for c in continuations):
        raise ValueError("continuations: an empty continuation has no score")
    # batches of similar lengths waste less on padding; the order is put
    # back afterwards, so the result does not depend on it
    order = sorted(range(len(continuations)), key=lambda i: len(continuations[i]))
    result: list[torch.Tensor] = [torch.empty(0)] * len(continuations)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = [continuations[i] for i in rows]
        for i, lp in zip(rows, _batch_logprobs(model, state, batch), strict=True):
            result[i] = lp
    return result


def _batch_logprobs(
    model: Any, state: PromptState, batch: Sequence[Sequence[int]]
) -> list[torch.Tensor]:
    # the first token is predicted by the prompt alone; the model reads
    # tokens 0..T_i-2 of each continuation to predict tokens 1..T_i-1
    firsts = torch.stack([state.next_logprobs[c[0]] for c in batch])  # (B,)
    width = max(len(c) for c in batch) - 1
    if width == 0:
        return [firsts[i : i + 1] for i in range(len(batch))]

    device = _device(model)
    n = len(batch)
    inputs, real = _right_pad([c[:-1] for c in batch], width, device)  # (B, W)
    prompt_mask = torch.ones((n, state.length), dtype=torch.long, device=device)
    mask = torch.cat([prompt_mask, real], 1)  # (B, P + W)
    positions = state.length + torch.arange(width, device=device).expand(n, -1)

    # a fresh cache per batch: the forward pass appends to it in place
    cache = DynamicCache(
        ddp_cache_data=[
            (k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in state.kv
        ],
        config=model.config,
    )
    out = model(
        input_ids=inputs,
        attention_mask=mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
    )
    logprobs = _log_softmax(out.logits)  # (B, W, V)
    rows = []
    for row, cont in enumerate(batch):
        targets = torch.tensor(cont[1:], device=device)  # (T_i - 1,)
        rest = logprobs[row, : len(cont) - 1].gather(1, targets[:, None])[:, 0]
        rows.append(torch.cat([firsts[row : row + 1], rest]))
    return rows


def _right_pad(
    rows: Sequence[Sequence[int]], width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the right to ``width`` (with 0), and the real-token mask."""
    inputs = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    real = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for row, ids in enumerate(rows):
        inputs[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
        real[row, : len(ids)] = 1
    return inputs, real


@torch.no_grad()
def full_logprobs(
    model: Any, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]]
) -> list[torch.Tensor]:
    """Reference: each prompt + continuation as one sequence, no cache."""
    device = _device(model)
    result = []
    for cont in continuations:
        ids = torch.tensor([list(prompt_ids) + list(cont)], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0]  # (P+T, V)
        logprobs = _log_softmax(logits[len(prompt_ids) - 1 : -1])
        targets = torch.tensor(list(cont), device=device)
        result.append(logprobs.gather(1, targets[:, None])[:, 0])
    return result


def combine(session_lp: torch.Tensor, neutral_sum: float | None, score: str) -> float:
    """One candidate's score from its per-token log-probabilities."""
    if score == "mean_logprob":
        return float(session_lp.mean())
    if score == "pmi":
        if neutral_sum is None:
            raise ValueError("score='pmi' needs the neutral log-probability")
        return float(session_lp.sum()) - neutral_sum
    raise ValueError(f"score: must be one of {SCORES}, got {score!r}")


def top_k(scores: dict[int, float], k: int) -> list[int]:
    """Best first; ties broken by item id so candidate order cannot matter."""
    return sorted(scores, key=lambda item: (-scores[item], item))[:k]


class TitleScorer:
    """Scores candidate item titles as answers to session prompts.

    The neutral term depends only on the item, so it is computed once per
    item and memoised (and persisted to ``neutral_path`` if given, keyed by
    the model and the neutral prompt).
    """

    def __init__(
        self,
        llm: LoadedLLM,
        titles: Sequence[str],
        *,
        score: str = "pmi",
        batch_size: int = 25,
        domain: Domain = MOVIES,
        neutral_path: str | Path | None = None,
    ) -> None:
        if score not in SCORES:
            raise ValueError(f"score: must be one of {SCORES}, got {score!r}")
        self.llm, self.titles, self.score = llm, titles, score
        self.batch_size = batch_size
        self.neutral_prompt = chat_prompt_ids(llm.tokenizer, neutral_messages(domain))
        self._titles_hash = hashlib.sha256("\n".join(titles).encode()).hexdigest()
        self.neutral_path = Path(neutral_path) if neutral_path else None
        self._answers: dict[int, list[int]] = {}
        self._neutral: dict[int, float] = self._load_neutral()
        self._neutral_state: PromptState | None = None

    @property
    def neutral_key(self) -> str:
        """What the memoised neutral scores depend on: model, prompt, titles."""
        prompt = hashlib.sha256(json.dumps(self.neutral_prompt).encode()).hexdigest()
        return f"{self.llm.full_fingerprint}:{prompt[:12]}:{self._titles_hash[:12]}"

    def answer_ids(self, item: int) -> list[int]:
        """The title's tokens followed by EOS (the answer LoRA is tuned on)."""
        if item not in self._answers:
            if not 0 <= item < len(self.titles):
                raise ValueError(f"candidates: item id {item} has no title")
            title = text_ids(self.llm.tokenizer, self.titles[item].strip())
            self._answers[item] = title + [self.llm.tokenizer.eos_token_id]
        return self._answers[item]

    def neutral_logprob(self, items: Sequence[int]) -> dict[int, float]:
        """Summed log-probability of each title after the neutral prompt."""
        missing = sorted({i for i in items if i not in self._neutral})
        if missing:
            if self._neutral_state is None:
                self._neutral_state = encode_prompt(self.llm.model, self.neutral_prompt)
            conts = [self.answer_ids(i) for i in missing]
            lps = cached_logprobs(
                self.llm.model, self._neutral_state, conts, self.batch_size
            )
            self._neutral.update(
                {i: float(lp.sum()) for i, lp in zip(missing, lps, strict=True)}
            )
            self._save_neutral()
        return {i: self._neutral[i] for i in items}

    def session_logprobs(
        self, messages: Messages, items: Sequence[int]
    ) -> tuple[list[torch.Tensor], int]:
        """Per-token log-probabilities of each item's answer after the prompt.

        Returns the (T_i,) tensors in ``items`` order and the number of
        tokens the model read (prompt plus every continuation).
        """
        prompt = chat_prompt_ids(self.llm.tokenizer, messages)
        conts = [self.answer_ids(i) for i in items]
        state = encode_prompt(self.llm.model, prompt)
        lps = cached_logprobs(self.llm.model, state, conts, self.batch_size)
        return lps, len(prompt) + sum(len(c) for c in conts)

    def rank(
        self, messages: Messages, candidates: Sequence[int], k: int = 25
    ) -> RankedCandidates:
        """Score every candidate for one session prompt; return the top ``k``."""
        items = sorted(set(int(c) for c in candidates))
        if not items:
            raise ValueError("candidates: the candidate set is empty")
        lps, tokens = self.session_logprobs(messages, items)
        neutral = self.neutral_logprob(items) if self.score == "pmi" else {}
        scores = {
            i: combine(lp, neutral.get(i), self.score)
            for i, lp in zip(items, lps, strict=True)
        }
        return RankedCandidates(top_k(scores, k), scores, tokens)

    def _load_neutral(self) -> dict[int, float]:
        if self.neutral_path is None or not self.neutral_path.is_file():
            return {}
        stored = json.loads(self.neutral_path.read_text(encoding="utf-8"))
        if stored.get("key") != self.neutral_key:
            log.info(
                "neutral memo is for another model, ignored path=%s", self.neutral_path
            )
            return {}
        return {int(i): float(v) for i, v in stored["scores"].items()}

    def _save_neutral(self) -> None:
        if self.neutral_path is not None:
            scores = {str(i): v for i, v in sorted(self._neutral.items())}
            atomic_write_json(
                self.neutral_path, {"key": self.neutral_key, "scores": scores}
            )

"""Module 3 of ALKDRec: which sessions to ask the LLM about (METHOD.md 6).

Difficulty under the teacher recommender, rank-based gains, Algorithm 1's
drawing and the selection strategies of the paper's Table 2. The max-min
game itself lives in ``alkd.maxmin``; its names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from alkd.data import make_batch
from alkd.maxmin import (
    EXACT_MAX_POOL,
    EXACT_MAX_SPAN,
    MaxMinPolicy,
    maxmin_exact,
    maxmin_exact_proportional,
    maxmin_policy,
    radbc_policy,
    ratio_counts,
    worst_case_value,
)

__all__ = [
    "DRAWINGS",
    "EXACT_MAX_POOL",
    "EXACT_MAX_SPAN",
    "GAIN_IN_RATIO",
    "GAIN_SI_RATIO",
    "NEEDS_DIFFICULTY",
    "STRATEGIES",
    "Gains",
    "MaxMinPolicy",
    "SelectionConfig",
    "difficulty",
    "draw_algorithm1",
    "gains",
    "maxmin_exact",
    "maxmin_exact_proportional",
    "maxmin_policy",
    "radbc_policy",
    "ratio_counts",
    "read_base_file",
    "select",
    "worst_case_value",
]

log = logging.getLogger(__name__)

STRATEGIES = tuple(
    "alkdrec alkdrec-exact rad-bc random easiest hardest authors".split()
)
DRAWINGS = ("algorithm1", "recompute")
NEEDS_DIFFICULTY = ("alkdrec", "alkdrec-exact", "rad-bc", "easiest", "hardest")
# the paper's g_si = g_in = g_ef / 2 (METHOD.md 6), as proportions of g_ef
GAIN_SI_RATIO = 0.5
GAIN_IN_RATIO = 0.5


@torch.no_grad()
def difficulty(
    teacher_model: torch.nn.Module,
    sessions: Sequence[Sequence[int]],
    *,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """``df_s = -(1/|s|) sum_{v in s} sigmoid(Encode(s) . e_v)``, (S,) float64.

    ``s`` is the session as the model sees it: ``make_batch`` keeps the last
    10 items, and the sum and ``|s|`` run over those same items (a repeated
    item counts once per occurrence). The model (a ``SessionRecommender``
    already on ``device``) is put in eval mode and restored afterwards.
    Higher df = more difficult.
    """
    if len(sessions) == 0:
        raise ValueError("difficulty: sessions is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    was_training = teacher_model.training
    teacher_model.eval()
    try:
        table = teacher_model.item_embeddings()  # (N, d)
        out = []
        starts = range(0, len(sessions), batch_size)
        for start in tqdm(starts, desc="difficulty", disable=not progress):
            batch = make_batch(list(sessions[start : start + batch_size])).to(device)
            u = teacher_model.encode(batch)  # (B, d)
            e = table[(batch.items - 1).clamp_min(0)]  # (B, L, d); pads masked
            fit = torch.sigmoid(torch.einsum("bd,bld->bl", u, e)) * batch.mask
            df = -fit.sum(1) / batch.lengths.to(fit.dtype)  # (B,)
            out.append(df.double().cpu().numpy())
    finally:
        teacher_model.train(was_training)
    return np.concatenate(out)


@dataclass(frozen=True)
class Gains:
    """Log-gains of each pool instance, in the pool's index order.

    ``order[r - 1]`` is the pool index of rank ``r`` (1 = most difficult),
    ``rank[i]`` the rank of pool index ``i``.
    """

    log_ef: np.ndarray  # (N,)
    log_si: np.ndarray  # (N,)
    log_in: np.ndarray  # (N,)
    order: np.ndarray  # (N,) pool indices, most difficult first
    rank: np.ndarray  # (N,) 1..N


def gains(difficulty_values: np.ndarray, mu: float = 10.0) -> Gains:
    """``log g_ef = -mu log r``, ``g_si = g_in = g_ef / 2`` (METHOD.md 6).

    r = 1 is the session with the highest difficulty; ties go to the lower
    pool index first.
    """
    df = np.asarray(difficulty_values, dtype=np.float64)
    if df.ndim != 1 or df.size == 0 or not np.all(np.isfinite(df)):
        raise ValueError("difficulty_values must be a non-empty finite 1-D array")
    if not (np.isfinite(mu) and mu >= 0):
        raise ValueError(f"mu must be a finite non-negative number, got {mu}")
    order = np.argsort(-df, kind="stable")
    rank = np.empty(df.size, dtype=np.int64)
    rank[order] = np.arange(1, df.size + 1)
    log_ef = -mu * np.log(rank.astype(np.float64))
    log_si = log_ef + np.log(GAIN_SI_RATIO)
    log_in = log_ef + np.log(GAIN_IN_RATIO)
    return Gains(log_ef, log_si, log_in, order, rank)


def draw_algorithm1(log_p: np.ndarray, budget: int, rng: np.random.Generator):
    """Algorithm 1's loop: draw s ~ p repeatedly, keep new ones, until budget.

    The new instances arrive in the order of successive sampling without
    replacement proportional to p, which the Gumbel-top-k trick draws exactly
    in one pass (keys ``log p + Gumbel``; the sorted top ``budget``). That
    gives Algorithm 1's distribution even where p has tiny entries that the
    literal loop would wait forever for. Returns pool indices in draw order.
    """
    support = int(np.isfinite(log_p).sum())
    if budget > support:
        raise ValueError(
            f"budget {budget} exceeds the policy's support k_star={support}; "
            "Algorithm 1 cannot draw that many distinct instances"
        )
    keys = log_p + rng.gumbel(size=log_p.size)
    top = np.argpartition(-keys, budget - 1)[:budget]
    return top[np.argsort(-keys[top], kind="stable")]


def read_base_file(path: str | Path) -> np.ndarray:
    """Session ids of a release ``X_<strategy>.base`` file, one per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"selection file not found: {path}")
    ids: list[int] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if not line.strip().isdigit():
            raise ValueError(f"{path}:{lineno}: not a session id: {line.strip()!r}")
        ids.append(int(line))
    if not ids:
        raise ValueError(f"{path}: no session ids")
    out = np.asarray(ids, dtype=np.int64)
    uniq, counts = np.unique(out, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{path}: session id {uniq[counts > 1][0]} is repeated")
    return out


def _max_min_for(strategy: str, df: np.ndarray, ratios, mu: float) -> MaxMinPolicy:
    """The max-min policy of ``strategy`` on a pool with difficulties ``df``."""
    g = gains(df, mu)
    if strategy == "rad-bc":
        r = np.asarray(ratios, dtype=np.float64)
        fraction = float((r[0] + r[1]) / r.sum())  # correct = effective + similar
        return radbc_policy(g.log_ef, correct_fraction=fraction, log_gains=True)
    counts = dict(
        zip(("k_ef", "k_si", "k_in"), ratio_counts(df.size, ratios), strict=True)
    )
    if strategy == "alkdrec-exact":
        # gains() makes g_si, g_in proportional to g_ef: the exact optimum is
        # closed-form there (the LP maxmin_exact is for general gains)
        return maxmin_exact_proportional(
            g.log_ef, a=GAIN_SI_RATIO, b=GAIN_IN_RATIO, **counts, log_gains=True
        )
    return maxmin_policy(g.log_ef, g.log_si, g.log_in, **counts, log_gains=True)


def _draw_recompute(strategy, df, budget, ratios, mu, rng) -> np.ndarray:
    """Released notebooks' variant: draw one, drop it, recompute p* on the rest.

    Ranks, gains and counts (from the ratios) are recomputed on the
    remaining pool each time.
    """
    remaining = np.arange(df.size)
    chosen = []
    for _ in range(budget):
        policy = _max_min_for(strategy, df[remaining], ratios, mu)
        i = int(np.argmax(policy.log_p + rng.gumbel(size=remaining.size)))
        chosen.append(remaining[i])
        remaining = np.delete(remaining, i)
    return np.asarray(chosen, dtype=np.int64)


def _check_select_args(strategy, pool, budget, df, authors_ids, drawing) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if drawing not in DRAWINGS:
        raise ValueError(f"unknown drawing {drawing!r}; choose one of {DRAWINGS}")
    if pool.ndim != 1 or pool.size == 0:
        raise ValueError("pool_ids is empty (or not 1-D)")
    if np.unique(pool).size != pool.size:
        raise ValueError("pool_ids contains duplicate session ids")
    if int(budget) != budget or not 1 <= budget <= pool.size:
        raise ValueError(f"budget must be an integer in 1..{pool.size}, got {budget}")
    if strategy in NEEDS_DIFFICULTY:
        if df is None:
            raise ValueError(f"strategy {strategy!r} needs difficulty")
        if df.shape != pool.shape:
            raise ValueError(f"difficulty has shape {df.shape}, pool {pool.shape}")
    if strategy == "authors" and authors_ids is None:
        raise ValueError("strategy 'authors' needs authors_ids")


def _authors(pool: np.ndarray, authors_ids, budget: int) -> np.ndarray:
    ids = np.asarray(authors_ids, dtype=np.int64)
    if ids.size < budget:
        raise ValueError(f"authors_ids has {ids.size} ids, budget is {budget}")
    chosen = ids[:budget]
    missing = np.setdiff1d(chosen, pool)
    if missing.size:
        raise ValueError(f"authors_ids: session {missing[0]} is not in pool_ids")
    if np.unique(chosen).size != budget:
        raise ValueError("authors_ids repeats a session id")
    return chosen


def select(
    strategy: str,
    pool_ids,
    budget: int,
    seed: int,
    *,
    difficulty: np.ndarray | None = None,
    authors_ids=None,
    ratios: Sequence[float] = (1, 5, 4),
    mu: float = 10.0,
    drawing: str = "algorithm1",
) -> np.ndarray:
    """Session ids chosen by ``strategy``: ``budget`` distinct ids, in order.

    ``difficulty`` is aligned with ``pool_ids``. ``easiest``/``hardest`` take
    the lowest/highest df (ties to the earlier pool entry); ``authors`` the
    first ``budget`` of ``authors_ids`` (see ``read_base_file``); the
    max-min strategies (``alkdrec``: the paper's closed form;
    ``alkdrec-exact``: the game's optimum, ``maxmin_exact_proportional``)
    draw with ``drawing``. RAD-BC's correct fraction is
    ``(ratios[0] + ratios[1]) / sum(ratios)``. Same seed, same selection.
    """
    pool = np.asarray(pool_ids, dtype=np.int64)
    df = None if difficulty is None else np.asarray(difficulty, dtype=np.float64)
    _check_select_args(strategy, pool, budget, df, authors_ids, drawing)
    rng = np.random.default_rng(seed)
    if strategy == "authors":
        return _authors(pool, authors_ids, budget)
    if strategy == "random":
        return rng.choice(pool, size=budget, replace=False)
    if strategy in ("easiest", "hardest"):
        key = df if strategy == "easiest" else -df
        return pool[np.argsort(key, kind="stable")[:budget]]
    if drawing == "recompute":
        return pool[_draw_recompute(strategy, df, budget, ratios, mu, rng)]
    policy = _max_min_for(strategy, df, ratios, mu)
    log.info(
        "selection: strategy=%s n=%d k_star=%d", strategy, pool.size, policy.k_star
    )
    return pool[draw_algorithm1(policy.log_p, budget, rng)]


@dataclass(frozen=True)
class SelectionConfig:
    """Settings of Module 3; defaults are the paper's (METHOD.md 6).

    budget |B| = 500 (the paper uses 750 for FPMC on Games), ratios
    k_ef : k_si : k_in = 1 : 5 : 4, mu = 10, Algorithm 1's drawing.
    """

    strategy: str = "alkdrec"
    budget: int = 500
    ratios: tuple[float, float, float] = (1.0, 5.0, 4.0)
    mu: float = 10.0
    drawing: str = "algorithm1"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; one of {STRATEGIES}")
        if self.drawing not in DRAWINGS:
            raise ValueError(f"unknown drawing {self.drawing!r}; one of {DRAWINGS}")
        if int(self.budget) != self.budget or self.budget < 1:
            raise ValueError(f"budget must be a positive integer, got {self.budget}")
        if len(self.ratios) != 3:
            raise ValueError(f"ratios must have 3 entries, got {self.ratios}")
        ratio_counts(0, self.ratios)  # validates the ratios
        if not (np.isfinite(self.mu) and self.mu >= 0):
            raise ValueError(f"mu must be finite and non-negative, got {self.mu}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")

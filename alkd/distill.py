"""Module 2 of ALKDRec: distill a teacher's rankings into the student (Eq. 1).

Starting from the trained student (d = 10), fine-tune on the selected
sessions B with the teacher's ranking of each:

    maximize sum_{s in B} sum_{v in rank(s)} a_v * log sigmoid(S(s,v) - S(s,v'))

with v' a sampled negative and a_v = 3 for ranks 1-5, 2 for 6-15 and 1 for
16-25 (METHOD.md section 5). Training stops early on validation recall and
the untouched student competes as iteration 0, so a distillation that does
not help on validation leaves the student as it was.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from alkd.data import SessionDataset, make_batch
from alkd.models import SessionRecommender
from alkd.train import FitResult, TrainConfig, fit, rows, sample_negatives

log = logging.getLogger(__name__)

# (last rank of the band, weight a_v): METHOD.md section 5
RANK_WEIGHTS = ((5, 3.0), (15, 2.0), (25, 1.0))


@dataclass(frozen=True)
class DistillConfig:
    """Eq. 1 fine-tuning; the optimiser settings are the paper's (section 3)."""

    rank_weights: tuple[tuple[int, float], ...] = RANK_WEIGHTS
    # fine-tuning converges within a few hundred iterations; a shorter
    # patience than training from scratch keeps the cells cheap
    train: TrainConfig = field(default_factory=lambda: TrainConfig(patience=10))

    def __post_init__(self) -> None:
        lasts = [last for last, _ in self.rank_weights]
        if lasts != sorted(lasts) or not lasts or lasts[0] < 1:
            raise ValueError("rank_weights: band ends must be positive and increasing")
        if any(w <= 0 for _, w in self.rank_weights):
            raise ValueError("rank_weights: weights must be positive")

    @property
    def max_rank(self) -> int:
        return self.rank_weights[-1][0]


def rank_weight(position: int, bands=RANK_WEIGHTS) -> float:
    """a_v for a 0-based position in the teacher's ranking (0 beyond the bands)."""
    for last, weight in bands:
        if position < last:
            return weight
    return 0.0


@dataclass(frozen=True)
class DistillPairs:
    """Flattened (session, ranked item, weight) instances of Eq. 1."""

    session_ids: np.ndarray  # (S,) the distilled sessions
    row: np.ndarray  # (P,) index into session_ids
    item: np.ndarray  # (P,) the ranked item v
    weight: np.ndarray  # (P,) a_v


def distill_pairs(
    rankings: Mapping[int, list[int]], bands=RANK_WEIGHTS
) -> DistillPairs:
    """One instance per ranked item of every session, weighted by its rank."""
    if not rankings:
        raise ValueError("distill: no rankings to distill")
    max_rank = bands[-1][0]
    session_ids = np.array(sorted(rankings), dtype=np.int64)
    row, item, weight = [], [], []
    for r, sid in enumerate(session_ids):
        ranking = list(dict.fromkeys(rankings[sid]))[:max_rank]  # drop repeats
        row += [r] * len(ranking)
        item += ranking
        weight += [rank_weight(p, bands) for p in range(len(ranking))]
    if not item:
        raise ValueError("distill: every ranking is empty")
    return DistillPairs(
        session_ids,
        np.asarray(row, np.int64),
        np.asarray(item, np.int64),
        np.asarray(weight, np.float32),
    )


def eq1_objective(inputs, pairs: DistillPairs, n_items: int):
    """The weighted pairwise loss of Eq. 1 over a batch of pair instances."""
    item_t = torch.as_tensor(pairs.item)
    weight_t = torch.as_tensor(pairs.weight)

    def objective(model, index, rng, step):
        device = next(model.parameters()).device
        batch = rows(inputs, pairs.row[index]).to(device)
        neg = sample_negatives(rng, pairs.item[index], n_items, 1)[:, 0]
        both = torch.stack([item_t[index], torch.as_tensor(neg)], 1).to(device)
        s = model.score_items(batch, both)  # (B, 2)
        loss = -F.logsigmoid(s[:, 0] - s[:, 1])
        w = weight_t[index].to(device)
        return (w * loss).sum() / w.sum()

    return objective


def distill(
    student: SessionRecommender,
    dataset: SessionDataset,
    rankings: Mapping[int, list[int]],
    seed: int,
    config: DistillConfig | None = None,
    *,
    progress: bool = True,
) -> tuple[SessionRecommender, FitResult]:
    """Fine-tune a copy of ``student`` on ``rankings`` with Eq. 1."""
    config = config or DistillConfig()
    model = copy.deepcopy(student)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    pairs = distill_pairs(rankings, config.rank_weights)
    split, _ = dataset.find_sessions(pairs.session_ids)
    inputs = make_batch(split.sessions, config.train.seq_len)
    objective = eq1_objective(inputs, pairs, dataset.n_items)

    desc = f"distill/{dataset.name}/{student.name}/{len(pairs.session_ids)}"
    result = fit(
        model,
        objective,
        len(pairs.item),
        dataset.valid,
        config.train,
        rng,
        progress=progress,
        desc=desc,
        keep_initial=True,
    )
    log.info(
        "distilled sessions=%d pairs=%d best_iter=%d",
        len(pairs.session_ids),
        len(pairs.item),
        result.best_iter,
    )
    return model.eval(), result

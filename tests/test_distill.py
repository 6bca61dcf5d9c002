"""Eq. 1 distillation: rank weights, pair building, the loss, keep-initial."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alkd.data import SessionDataset, Split, make_batch
from alkd.distill import (
    DistillConfig,
    distill,
    distill_pairs,
    eq1_objective,
    rank_weight,
)
from alkd.models import build_model
from alkd.train import TrainConfig


def test_rank_weights_follow_the_paper_bands():
    # ranks 1-5 -> 3, 6-15 -> 2, 16-25 -> 1, beyond -> 0 (0-based positions)
    got = [rank_weight(p) for p in range(27)]
    assert got == [3.0] * 5 + [2.0] * 10 + [1.0] * 10 + [0.0] * 2


def test_pairs_drop_repeats_and_cut_at_25():
    rankings = {7: [1, 2, 2, 3], 3: list(range(40))}
    pairs = distill_pairs(rankings)
    assert pairs.session_ids.tolist() == [3, 7]
    assert (pairs.row == 0).sum() == 25
    assert pairs.item[pairs.row == 1].tolist() == [1, 2, 3]
    assert pairs.weight[pairs.row == 1].tolist() == [3.0, 3.0, 3.0]
    assert pairs.weight[pairs.row == 0].sum() == 5 * 3 + 10 * 2 + 10 * 1


def test_pairs_refuse_empty_input():
    with pytest.raises(ValueError, match="no rankings"):
        distill_pairs({})
    with pytest.raises(ValueError, match="empty"):
        distill_pairs({1: []})


def test_eq1_loss_matches_hand_computation():
    # one session, two ranked items with weights 3 (rank 1) and 3 (rank 2);
    # scores are fixed by a model whose embeddings we set by hand
    model = build_model("fpmc", 4, 2)
    with torch.no_grad():
        model.item_emb.weight.copy_(
            torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1], [-1, 0]], dtype=torch.float32)
        )
        model.transition.weight.zero_()
    pairs = distill_pairs({0: [1, 2]})
    inputs = make_batch([[0]])  # session = item 0 -> encode = e_0 = (1, 0)
    objective = eq1_objective(inputs, pairs, n_items=4)

    rng = np.random.default_rng(0)
    negs = np.random.default_rng(0).integers(0, 3, size=(2, 1))[:, 0]
    negs = negs + (negs >= pairs.item)  # the same draw the objective makes
    loss = objective(model, np.array([0, 1]), rng, 1).item()

    u = np.array([1.0, 0.0])
    emb = {0: [1, 0], 1: [0, 1], 2: [1, 1], 3: [-1, 0]}
    terms = [
        -math.log(1 / (1 + math.exp(-(u @ emb[v] - u @ emb[int(n)]))))
        for v, n in zip(pairs.item, negs)
    ]
    assert loss == pytest.approx(np.mean(terms), rel=1e-6)


def _tiny_dataset(n_items=12, n=60, seed=0) -> SessionDataset:
    rng = np.random.default_rng(seed)
    sessions = [list(rng.integers(0, n_items, size=3)) for _ in range(n)]
    labels = np.array([(s[-1] + 1) % n_items for s in sessions])
    ids = np.arange(n)
    cut = [0, 36, 48, 60]
    parts = [Split(ids[a:b], sessions[a:b], labels[a:b]) for a, b in zip(cut, cut[1:])]
    return SessionDataset(
        "ML",
        None,
        n_items,
        [f"t{i}" for i in range(n_items)],
        [str(i) for i in range(n_items)],
        *parts,
    )


def test_distill_keeps_the_student_when_validation_does_not_improve():
    ds = _tiny_dataset()
    torch.manual_seed(0)
    student = build_model("stamp", ds.n_items, 4)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    # rankings that teach nothing useful, with a zero learning budget of
    # improvement: the initial weights must win and the input stay untouched
    config = DistillConfig(
        train=TrainConfig(max_iters=20, eval_every=10, patience=1, lr=1e-9)
    )
    model, fit = distill(
        student, ds, {0: [5, 6], 1: [7]}, seed=0, config=config, progress=False
    )
    assert fit.best_iter == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for k, v in student.state_dict().items():  # the caller's student is not mutated
        assert torch.equal(v, before[k])


def test_distill_config_validates_bands():
    with pytest.raises(ValueError):
        DistillConfig(rank_weights=((15, 2.0), (5, 3.0)))
    with pytest.raises(ValueError):
        DistillConfig(rank_weights=((5, 0.0),))

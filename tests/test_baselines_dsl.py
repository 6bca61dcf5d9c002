"""Tests of DSL (alkd.baselines.dsl): the cosine update ratio, the exact
budget through prune-and-grow, the prune/grow choice and a smoke run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import train_baseline
from alkd.baselines.dsl import (
    SparseMasks,
    _prune_and_grow,
    allocate_budget,
    update_ratio,
)
from alkd.data import make_batch
from alkd.models import build_model
from alkd.train import bpr_loss


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_update_ratio_follows_the_cosine_schedule():
    assert update_ratio(0, 10_000) == pytest.approx(0.5)
    assert update_ratio(10_000, 10_000) == pytest.approx(0.005)
    assert update_ratio(5_000, 10_000) == pytest.approx((0.5 + 0.005) / 2)
    # cos(pi / 4) = sqrt(2) / 2
    quarter = 0.005 + 0.495 * (1 + math.sqrt(2) / 2) / 2
    assert update_ratio(2_500, 10_000) == pytest.approx(quarter)
    ratios = [update_ratio(t, 10_000) for t in range(0, 10_001, 100)]
    assert all(a >= b for a, b in zip(ratios, ratios[1:], strict=False))


def test_budget_allocation_is_exact():
    # exact shares 1.5, 3, 10.5: floors 1, 3, 10 and one extra to a .5 share
    assert allocate_budget([10, 20, 70], 15) == [2, 3, 10]
    assert sum(allocate_budget([7, 13, 100, 3], 31)) == 31
    with pytest.raises(ValueError):
        allocate_budget([3, 4], 8)


def test_prune_and_grow_by_hand():
    weight = torch.nn.Parameter(torch.tensor([0.5, -0.1, 9.0, 0.3, 7.0, 0.2]))
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    weight.grad = torch.tensor([0.0, 0.05, 0.1, 0.0, -5.0, 0.01])
    with torch.no_grad():
        moved = _prune_and_grow(weight, mask, ratio=0.5)  # ceil(0.5 * 4) = 2
    # pruned: |-0.1| and |0.2|, the smallest active; grown: |-5.0| and |0.1|,
    # the largest gradients among the inactive ones, both reset to 0
    assert moved == 2
    assert mask.tolist() == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert weight.tolist() == pytest.approx([0.5, -0.1, 0.0, 0.3, 0.0, 0.2])


def test_budget_holds_after_every_prune_and_grow_step():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("stamp", N_ITEMS, 16)
    budget = n_params(build_model("stamp", N_ITEMS, 4))
    masks = SparseMasks(model, budget, rng)
    per_tensor = masks.active()
    assert sum(per_tensor) == budget
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ds = tiny_dataset()
    batch = make_batch(ds.train.sessions[:32])
    labels = torch.as_tensor(ds.train.labels[:32])

    for step in range(1, 7):
        neg = torch.randint(0, N_ITEMS, (32, 1))
        s = model.score_items(batch, torch.cat([labels[:, None], neg], 1))
        opt.zero_grad()
        bpr_loss(s[:, :1], s[:, 1:]).backward()
        opt.step()
        masks.prune_and_grow(update_ratio(step, 6))
        assert masks.active() == per_tensor  # per tensor and in total
        assert masks.nonzero() <= budget
        for module, name in masks.slots:  # the effective weights are sparse
            weight, mask = masks._parts(module, name)
            assert (getattr(module, name)[mask == 0] == 0).all()
    assert masks.rounds == 6


def test_masks_travel_with_the_state_dict():
    rng = np.random.default_rng(0)
    model = build_model("fpmc", N_ITEMS, 8)
    masks = SparseMasks(model, 100, rng)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    mask_keys = [k for k in saved if k.endswith(".mask")]
    assert len(mask_keys) == len(masks.slots)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    masks.prune_and_grow(0.5)
    state = model.state_dict()
    assert any(not torch.equal(state[k], saved[k]) for k in mask_keys)
    model.load_state_dict(saved)  # as fit restores its best point
    state = model.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in mask_keys)


def test_smoke_dsl():
    ds = tiny_dataset()
    config = TINY_CONFIG
    result = train_baseline(
        "dsl", ds, "fpmc", config=config, options={"update_every": 2}, progress=False
    )
    extras = result.extras
    budget = n_params(build_model("fpmc", N_ITEMS, 10))
    assert extras["budget"] == budget and extras["active"] == budget
    assert extras["dense_params"] == n_params(build_model("fpmc", N_ITEMS, 100))
    assert extras["density"] == pytest.approx(0.1)  # FPMC: two tables, 10/100
    assert extras["rounds"] == 2  # after iterations 2 and 4 (6 is the last)
    nonzero = sum(int((p != 0).sum()) for p in result.model.parameters())
    assert nonzero == extras["nonzero"] <= budget
    assert result.model.dim == 100
    assert all(np.isfinite(v) for v in extras["loss_last"].values())
    assert not hasattr(result.model.item_emb, "parametrizations")  # baked in

"""Tests of unKD (alkd.baselines.unkd): popularity groups, rank-aware pair
sampling within groups, the pair loss and a smoke run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import train_baseline
from alkd.baselines.common import FrozenTeacher, Instances
from alkd.baselines.unkd import (
    TeacherLists,
    UnKDOptions,
    group_lists,
    item_popularity,
    pair_loss,
    popularity_groups,
    sample_pairs,
    sample_rank_pairs,
)
from alkd.data import Split
from alkd.models import build_model
from alkd.train import TrainConfig


def test_popularity_counts_inputs_and_labels():
    split = Split(np.arange(2), [[0, 1, 1], [2]], np.array([1, 3]))
    assert item_popularity(split, 5).tolist() == [1, 3, 1, 1, 0]


def test_groups_by_hand_merge_rule():
    # total 16, G = 2, mass 8 per group. 6 | 3 would overflow -> new group;
    # 3+2+2+1 = 8 | +1 overflows -> new group [5, 6] of mass 2 < 4: merged
    groups = popularity_groups(np.array([6, 3, 2, 2, 1, 1, 1]), 2)
    assert [g.tolist() for g in groups] == [[0], [1, 2, 3, 4, 5, 6]]


def test_groups_by_hand_lone_giant_and_zero_counts():
    # total 32, G = 4, mass 8: item 0 (20) alone stays and closes its group;
    # 2+2+2+2 = 8 closes; the rest [5, 6] (mass 4, not < 4) is a group and
    # takes the zero-count item 7
    groups = popularity_groups(np.array([20, 2, 2, 2, 2, 2, 2, 0]), 4)
    assert [g.tolist() for g in groups] == [[0], [1, 2, 3, 4], [5, 6, 7]]


def test_groups_have_equal_mass_within_one_item():
    rng = np.random.default_rng(0)
    counts = np.maximum(1, (400 / np.arange(1, 3001) ** 0.9).astype(int))
    counts = counts[rng.permutation(len(counts))]
    counts[:5] = 0  # a few items never seen
    groups = popularity_groups(counts, 4)
    target = counts.sum() / 4

    assert len(groups) == 4
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(counts)))
    masses = [counts[g].sum() for g in groups]
    for g in range(3):  # each closed group: full up to less than one item
        next_item = counts[groups[g + 1]].max()
        assert target - next_item < masses[g] <= target
        assert counts[groups[g]].min() >= counts[groups[g + 1]].max()
    # the last group takes the rest: the three deficits, each under one item
    deficits = sum(target - m for m in masses[:3])
    assert masses[3] == pytest.approx(target + deficits)
    assert set(np.nonzero(counts == 0)[0]) <= set(groups[3].tolist())


def test_rank_pairs_follow_the_exponential_rank_distribution():
    rng = np.random.default_rng(0)
    mu, length, n = 3.0, 12, 40_000
    better, worse, ok = sample_rank_pairs(np.full(n, length), 1, mu, rng)
    assert ok.all() and (better < worse).all()
    p = np.exp(-np.arange(1, length + 1) / mu)
    p /= p.sum()
    # unordered pair {r, s}, r != s: 2 p_r p_s / (1 - sum p^2)
    expected = 2 * p[0] * p[1] / (1 - (p**2).sum())
    observed = np.mean((better[:, 0] == 0) & (worse[:, 0] == 1))
    assert observed == pytest.approx(expected, abs=4 * math.sqrt(expected / n))
    expected_02 = 2 * p[0] * p[2] / (1 - (p**2).sum())
    observed_02 = np.mean((better[:, 0] == 0) & (worse[:, 0] == 2))
    assert observed_02 == pytest.approx(expected_02, abs=4 * math.sqrt(expected_02 / n))


def test_rank_pairs_stay_inside_each_rows_candidates():
    rng = np.random.default_rng(1)
    n_valid = np.array([0, 1, 2, 3, 50])
    better, worse, ok = sample_rank_pairs(n_valid, 64, 20.0, rng)
    assert ok.tolist() == [False, False, True, True, True]
    for row in (2, 3, 4):
        assert (worse[row] < n_valid[row]).all() and (better[row] < worse[row]).all()
    assert set(zip(better[2], worse[2], strict=True)) == {(0, 1)}


def test_pairs_never_cross_groups_nor_contain_label_or_session_items():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_items, batch = 30, 8
    scores = torch.randn(batch, n_items)  # distinct scores
    excluded = torch.zeros(batch, n_items, dtype=torch.bool)
    for b in range(batch):  # a session of 3 items plus its label
        excluded[b, torch.as_tensor(rng.choice(n_items, 4, replace=False))] = True
    group_ids = np.array([0] * 4 + [1] * 6 + [2] * 8 + [3] * 12)
    groups = [torch.as_tensor(np.nonzero(group_ids == g)[0]) for g in range(4)]
    options = UnKDOptions(top_l=5, sample_num=12)  # 3 pairs per group
    pos, neg, valid = sample_pairs(scores, excluded, groups, options, rng)

    assert pos.shape == (batch, 12)
    for b in range(batch):
        for k in np.nonzero(valid[b].numpy())[0]:
            i, j = int(pos[b, k]), int(neg[b, k])
            assert group_ids[i] == group_ids[j] == k // 3  # blocks of 3 pairs
            assert not excluded[b, i] and not excluded[b, j]
            assert scores[b, i] > scores[b, j]  # i+ ranked above j-
            # both within the group's top-5 candidates
            members = groups[group_ids[i]]
            cand = members[~excluded[b, members]]
            top = set(cand[scores[b, cand].argsort(descending=True)[:5]].tolist())
            assert {i, j} <= top


def test_cached_teacher_lists_equal_lists_made_per_batch():
    ds = tiny_dataset()
    inst = Instances(ds.train, N_ITEMS, TrainConfig())
    frozen = FrozenTeacher(build_model("fpmc", N_ITEMS, 100), inst, "cpu")
    groups = popularity_groups(item_popularity(ds.train, N_ITEMS), 4)
    cached = TeacherLists(frozen, inst, groups, top_l=6, chunk=11)
    index = np.array([3, 0, 25, 59])
    u_t, e_t = frozen.view(index)
    fresh = group_lists(
        u_t @ e_t.T, inst.exclusion(index), [torch.as_tensor(g) for g in groups], 6
    )
    for (r1, v1), (r2, v2) in zip(cached.rows(index), fresh, strict=True):
        assert torch.equal(r1.long(), r2) and torch.equal(v1, v2)


def test_pair_loss_by_hand():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    table = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 0.5]])
    pos = torch.tensor([[0, 1], [1, 0]])
    neg = torch.tensor([[1, 2], [2, 2]])
    valid = torch.tensor([[True, True], [True, False]])
    # session 0: diffs 3-1 = 2 and 1-0 = 1; session 1: 2-1 = 1 (second masked)
    nll = lambda d: -math.log(1 / (1 + math.exp(-d)) + 1e-10)  # noqa: E731
    expected = ((nll(2) + nll(1)) / 2 + nll(1)) / 2
    assert pair_loss(u, table, pos, neg, valid).item() == pytest.approx(expected)


def test_smoke_unkd():
    ds = tiny_dataset()
    result = train_baseline(
        "unkd",
        ds,
        "stamp",
        teacher=build_model("stamp", N_ITEMS, 100),
        config=TINY_CONFIG,
        progress=False,
    )
    assert all(np.isfinite(v) for v in result.extras["loss_last"].values())
    assert sum(result.extras["group_sizes"]) == N_ITEMS
    assert len(result.extras["group_sizes"]) == 4
    assert result.model.dim == 10
    expected = sum(p.numel() for p in build_model("stamp", N_ITEMS, 10).parameters())
    assert sum(p.numel() for p in result.model.parameters()) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ml", "games"])
def test_groups_on_the_real_data_within_one_item(name, request):
    ds = request.getfixturevalue(name)
    counts = item_popularity(ds.train, ds.n_items)
    groups = popularity_groups(counts, 4)
    target = counts.sum() / 4
    assert len(groups) == 4
    for g in groups:  # every group, the last included, within one item
        assert abs(counts[g].sum() - target) <= counts.max()

"""Tests of alkd.metrics against a brute-force reference written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from alkd.metrics import (
    ROW_BLOCK,
    factored_label_ranks,
    label_ranks,
    metrics_from_ranks,
    rank_metrics,
    ranks_by_block,
    ttest_ind,
)


def reference_rank(row: list[float], label: int, excluded: set[int]) -> int | None:
    """1-based rank by sorting, ties against the label; None if label excluded."""
    if label in excluded:
        return None
    candidates = [j for j in range(len(row)) if j not in excluded]
    # among equal scores the label sorts last
    order = sorted(candidates, key=lambda j: (-row[j], j == label))
    return order.index(label) + 1


def reference_metrics(scores, labels, exclude, ks=(5, 10)) -> dict[str, float]:
    out = {}
    for k in ks:
        hits, gains = [], []
        for row, label, excl in zip(scores.tolist(), labels, exclude, strict=True):
            rank = reference_rank(row, int(label), set(int(v) for v in excl))
            hit = rank is not None and rank <= k
            hits.append(1.0 if hit else 0.0)
            gains.append(1.0 / math.log2(rank + 1) if hit else 0.0)
        out[f"recall@{k}"] = sum(hits) / len(hits)
        out[f"ndcg@{k}"] = sum(gains) / len(gains)
    return out


def random_case(rng, b=60, n=40, integer=False):
    if integer:  # few distinct values: many ties with the label
        scores = rng.integers(0, 4, size=(b, n)).astype(np.float32)
    else:
        scores = rng.normal(size=(b, n)).astype(np.float32)
    labels = rng.integers(0, n, size=b)
    exclude = []
    for row in range(b):
        excl = rng.choice(n, size=int(rng.integers(0, 8)), replace=False)
        if row % 7 == 0:  # the label already occurs in the session
            excl = np.append(excl, labels[row])
        exclude.append(np.unique(excl))
    return scores, labels, exclude


@pytest.mark.parametrize("integer", [False, True], ids=["real", "ties"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_metrics_match_brute_force(seed, integer):
    scores, labels, exclude = random_case(np.random.default_rng(seed), integer=integer)
    got = rank_metrics(torch.from_numpy(scores), labels, exclude)
    want = reference_metrics(scores, labels, exclude)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_label_ranks_match_brute_force_row_by_row():
    scores, labels, exclude = random_case(np.random.default_rng(5), integer=True)
    ranks = label_ranks(scores, labels, exclude)
    n = scores.shape[1]
    for row in range(len(labels)):
        excl = set(exclude[row].tolist())
        want = reference_rank(scores[row].tolist(), int(labels[row]), excl)
        assert int(ranks[row]) == (n + 1 if want is None else want)


def test_hand_sized_ranks_and_values():
    scores = torch.tensor(
        [
            [0.9, 0.5, 0.5, 0.1],  # label 2 ties with 1: rank 3
            [0.2, 0.8, 0.3, 0.4],  # label 0, item 1 excluded: rank 3
            [0.2, 0.8, 0.3, 0.4],  # label 1 itself excluded: a miss
            [1.0, 0.0, 0.0, 0.0],  # label 0, top: rank 1
        ]
    )
    labels = [2, 0, 1, 0]
    exclude = [[], [1], [1, 3], []]
    ranks = label_ranks(scores, labels, exclude)
    assert ranks.tolist() == [3, 3, 5, 1]
    m = metrics_from_ranks(ranks, ks=(1, 3))
    assert m["recall@1"] == pytest.approx(0.25)
    assert m["recall@3"] == pytest.approx(0.75)
    assert m["ndcg@3"] == pytest.approx((2 / math.log2(4) + 1.0) / 4)


def test_all_equal_scores_score_zero():
    scores = torch.zeros(3, 100)
    m = rank_metrics(scores, [0, 50, 99], [[1, 2], [], [98]])
    assert all(v == 0.0 for v in m.values())


def test_integer_score_tensors_are_accepted():
    scores = np.array([[3, 1, 2], [0, 5, 5]])
    assert label_ranks(scores, [2, 2], None).tolist() == [2, 2]


def test_wrong_shapes_and_values_raise():
    scores = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="exclude has 1 rows for 2 sessions"):
        label_ranks(scores, [0, 1], [[1]])
    with pytest.raises(ValueError, match=r"excluded item ids must lie in 0\.\.4"):
        label_ranks(scores, [0, 1], [[5], []])
    with pytest.raises(ValueError, match=r"excluded item ids must lie in 0\.\.4"):
        label_ranks(scores, [0, 1], [[-1], []])
    with pytest.raises(ValueError, match=r"scores must be \(B, N\)"):
        label_ranks(torch.zeros(5), [0], None)
    with pytest.raises(ValueError, match=r"labels \(B,\)"):
        label_ranks(scores, [0, 1, 2], None)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.4"):
        label_ranks(scores, [0, 5], None)
    with pytest.raises(ValueError, match="NaN"):
        label_ranks(torch.tensor([[0.0, float("nan")]]), [0], None)


def test_two_dimensional_exclusion_rows_raise():
    scores = torch.zeros(2, 5)
    with pytest.raises(ValueError):
        label_ranks(scores, [0, 4], [np.array([[1, 2]]), np.array([[3, 0]])])


def test_empty_batch_gives_zero_metrics():
    m = rank_metrics(torch.zeros(0, 4), np.zeros(0, np.int64), [])
    assert m == {"recall@5": 0.0, "ndcg@5": 0.0, "recall@10": 0.0, "ndcg@10": 0.0}


def test_ttest_ind():
    assert math.isnan(ttest_ind([0.1], [0.2, 0.3]))
    assert ttest_ind([0.2, 0.2], [0.1, 0.1]) == 0.0
    assert ttest_ind([0.2, 0.2], [0.2, 0.2]) == 1.0
    # Welch by hand: means 2 and 5, variances 1 and 1, n = 3 each
    t = (2 - 5) / math.sqrt(1 / 3 + 1 / 3)
    p = ttest_ind([1, 2, 3], [4, 5, 6])
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df=4))


def test_blocks_equal_one_pass_over_rows_not_a_multiple_of_the_block():
    # 100 rows cross three block boundaries and end in a partial block;
    # integer-valued scores make ties with the label common, and the
    # exclusions fall in every block
    scores, labels, exclude = random_case(np.random.default_rng(11), b=100)
    assert ROW_BLOCK < 100 and 100 % ROW_BLOCK
    ranks = label_ranks(scores, labels, exclude)
    for row in range(100):
        got = label_ranks(
            scores[row : row + 1], labels[row : row + 1], exclude[row : row + 1]
        )
        assert int(ranks[row]) == int(got[0]), row


def test_nan_in_a_later_block_is_found():
    scores = torch.zeros(3 * ROW_BLOCK + 5, 7)
    scores[3 * ROW_BLOCK + 2, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        label_ranks(scores, np.zeros(len(scores), dtype=np.int64), None)


@pytest.mark.parametrize("n_items", [8475, 26138])  # ML, Games
@pytest.mark.parametrize("dim", [10, 100])  # student, teacher
@pytest.mark.parametrize("b", [1024, 947])  # a full batch; Games test's last
def test_factored_ranks_equal_ranks_of_the_whole_product(n_items, dim, b):
    # the block products must equal the rows of one product bit for bit,
    # else a tie could fall differently than in the stored cells; 947 rows
    # end in a partial block of 19, as the last Games test batch does
    gen = torch.Generator().manual_seed(dim)
    sessions = torch.randn(b, dim, generator=gen)
    items = torch.randn(n_items, dim, generator=gen)
    labels = torch.randint(0, n_items, (b,), generator=gen)
    exclude = [np.arange(i % 7) * 97 % n_items for i in range(b)]
    whole = sessions @ items.T
    for start in range(0, b, ROW_BLOCK):
        block = sessions[start : start + ROW_BLOCK] @ items.T
        assert torch.equal(block, whole[start : start + ROW_BLOCK]), start
    assert torch.equal(
        factored_label_ranks(sessions, items, labels, exclude),
        label_ranks(whole, labels, exclude),
    )


def test_factored_ranks_refuse_mismatched_dims():
    with pytest.raises(ValueError, match="must share d"):
        factored_label_ranks(torch.zeros(2, 3), torch.zeros(5, 4), [0, 1])


def test_block_size_must_be_positive():
    with pytest.raises(ValueError, match="block"):
        ranks_by_block(lambda rows: torch.zeros(1, 3)[rows], 1, 3, [0], None, block=0)

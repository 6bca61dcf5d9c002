"""Tests of alkd.heuristics: POP and SKNN on hand-sized splits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alkd.data import Split
from alkd.heuristics import POP, SKNN, binary_matrix, evaluate_scorer

N_ITEMS = 6
# training item sets with labels: {0, 1, 2}, {1, 3, 4} (1 twice), {0, 1, 2, 4}
TRAIN = Split(
    np.arange(3), [[0, 1], [1, 1, 3], [0, 2, 4]], np.array([2, 4, 1], np.int64)
)


def test_pop_counts_session_items_and_labels():
    pop = POP(TRAIN, N_ITEMS)
    # every occurrence counts, the repeated 1 included
    np.testing.assert_array_equal(pop.counts, [2, 4, 2, 1, 2, 0])
    scores = pop.scores([[0], [5, 5]])
    assert scores.shape == (2, N_ITEMS)
    np.testing.assert_array_equal(scores[1], [2, 4, 2, 1, 2, 0])


def test_pop_evaluation_breaks_ties_against_the_label():
    # label 0 ties with items 2 and 4 (count 2); item 1 is in the session
    test = Split(np.array([0]), [[1]], np.array([0], np.int64))
    m = evaluate_scorer(POP(TRAIN, N_ITEMS), test)
    assert m["recall@5"] == 1.0
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(4))


def cosine(a: set[int], b: set[int]) -> float:
    return len(a & b) / math.sqrt(len(a) * len(b))


# the query [0, 1] against the three training sets, by hand
S0 = 2 / math.sqrt(2 * 3)  # {0, 1} vs {0, 1, 2}
S1 = 1 / math.sqrt(2 * 3)  # {0, 1} vs {1, 3, 4}
S2 = 2 / math.sqrt(2 * 4)  # {0, 1} vs {0, 1, 2, 4}


@pytest.mark.parametrize(
    "k, expected",
    [
        (100, [S0 + S2, S0 + S1 + S2, S0 + S2, S1, S1 + S2, 0.0]),
        (2, [S0 + S2, S0 + S2, S0 + S2, 0.0, S2, 0.0]),  # S1 is the farthest
        (1, [S0, S0, S0, 0.0, 0.0, 0.0]),
    ],
)
def test_sknn_scores_by_hand(k, expected):
    assert cosine({0, 1}, {0, 1, 2, 4}) == pytest.approx(S2)
    scores = SKNN(TRAIN, N_ITEMS, k=k).scores([[0, 1], [1, 0, 0]])
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    np.testing.assert_allclose(scores[1], expected, rtol=1e-6)  # a set: order, repeats


def test_sknn_unseen_item_scores_zero_and_k_must_be_positive():
    scores = SKNN(TRAIN, N_ITEMS).scores([[5]])
    np.testing.assert_array_equal(scores, np.zeros((1, N_ITEMS)))
    with pytest.raises(ValueError, match="k must be >= 1"):
        SKNN(TRAIN, N_ITEMS, k=0)


def test_sknn_evaluation_on_a_hand_split():
    # [0, 1] -> 2: label 2 scores S0 + S2, above 4 (S1 + S2), 3 (S1) and 5 (0)
    # [3] -> 5: only {1, 3, 4} is a neighbour; label 5 scores 0 like 0 and 2,
    # and 1, 4 score more, so every one of the 5 candidates counts: rank 5
    test = Split(np.array([0, 1]), [[0, 1], [3]], np.array([2, 5], np.int64))
    m = evaluate_scorer(SKNN(TRAIN, N_ITEMS), test)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["ndcg@5"] == pytest.approx((1.0 + 1 / math.log2(6)) / 2)
    assert evaluate_scorer(SKNN(TRAIN, N_ITEMS), test.subset([1]))["recall@5"] == 1.0


def test_binary_matrix_rows_are_item_sets():
    m = binary_matrix([[2, 2, 0], [1]], 4).toarray()
    np.testing.assert_array_equal(m, [[1, 0, 1, 0], [0, 1, 0, 0]])

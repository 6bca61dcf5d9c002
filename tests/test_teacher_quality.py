"""Teacher quality metrics and the choice of evaluation sessions."""

from __future__ import annotations

import numpy as np
import pytest

from alkd import teacher_quality as tq
from alkd.data import Split


def test_hits_and_ndcg_by_hand():
    rankings = [[7, 3, 9], [1, 2, 3, 4, 5, 6], [4, 4, 4]]
    labels = [3, 6, 8]  # rank 2, rank 6, missing
    got = tq.ranking_quality(rankings, labels)
    assert got["hit@1"] == 0.0
    assert got["hit@5"] == pytest.approx(1 / 3)
    assert got["hit@10"] == pytest.approx(2 / 3)
    assert got["hit@25"] == pytest.approx(2 / 3)
    expected = (1 / np.log2(3) + 1 / np.log2(7) + 0) / 3
    assert got["ndcg@25"] == pytest.approx(expected)


def test_label_past_position_25_is_a_miss():
    ranking = list(range(100, 130))
    got = tq.ranking_quality([ranking], [128])  # position 29
    assert got["hit@25"] == 0.0 and got["ndcg@25"] == 0.0


def test_ranking_quality_refuses_mismatched_input():
    with pytest.raises(ValueError, match="equal"):
        tq.ranking_quality([[1]], [1, 2])


class _Tiny:
    name = "tiny"

    def __init__(self, n):
        ids = np.arange(100, 100 + n)
        self.train = Split(ids, [[0]] * n, np.zeros(n, dtype=np.int64))


def test_quality_rows_skip_tuned_and_unrecorded_sessions():
    ds = _Tiny(50)
    recorded = np.arange(100, 140)  # rows 0..39 have an answer
    tuned = np.arange(0, 10)
    rows = tq.quality_rows(ds, recorded, tuned, 20, seed=3)
    assert len(rows) == len(set(rows)) == 20
    assert rows.min() >= 10 and rows.max() < 40
    assert (tq.quality_rows(ds, recorded, tuned, 20, seed=3) == rows).all()


def test_quality_rows_refuse_too_few_sessions():
    with pytest.raises(ValueError, match="only 30 eligible"):
        tq.quality_rows(_Tiny(50), np.arange(100, 140), np.arange(10), 31, seed=0)

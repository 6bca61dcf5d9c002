"""Tests of DLLM2Rec (alkd.baselines.dllm2rec): list cleaning, position and
consistency weights on a tiny ranking, the RD loss, ED and smoke runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import train_baseline
from alkd.baselines.dllm2rec import (
    DLLM2RecOptions,
    InputOffset,
    LabelledPool,
    attach_input_offset,
    clean_ranking,
    position_weights,
    ranking_weights,
    rd_loss,
)
from alkd.data import make_batch
from alkd.models import build_model


def nls(x: float) -> float:
    """-log sigmoid(x)."""
    return math.log(1 + math.exp(-x))


def test_clean_ranking_drops_unknown_and_repeated_ids_in_order():
    assert clean_ranking([3, 3, 99, -1, 5, 3, 7, 8], 10, 3) == [3, 5, 7]
    assert clean_ranking([12, 12], 10, 3) == []


def test_position_weights_by_hand():
    e = [math.exp(-1), math.exp(-2), math.exp(-3)]
    assert position_weights(3, 1.0).tolist() == pytest.approx([v / sum(e) for v in e])
    e2 = [math.exp(-0.5), math.exp(-1.0)]
    assert position_weights(2, 2.0).tolist() == pytest.approx([v / sum(e2) for v in e2])


def test_ranking_weights_by_hand():
    opts = DLLM2RecOptions()
    cand = torch.tensor([[4, 2, 7], [4, -1, -1]])
    valid = cand >= 0
    student_top = torch.tensor([[2, 9, 1], [4, 0, 1]])
    w = ranking_weights(cand, valid, student_top, opts)

    e = [math.exp(-1), math.exp(-2), math.exp(-3)]
    wp = [v / sum(e) for v in e]
    # row 0: only item 2 (rank 2) is in the student's top-K
    raw = [0.3 * wp[0], 0.3 * wp[1] + 0.1, 0.3 * wp[2]]
    assert w[0].tolist() == pytest.approx([r / sum(raw) for r in raw], rel=1e-5)
    # row 1: one valid slot takes all the weight
    assert w[1].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_rd_loss_by_hand():
    u = torch.tensor([[1.0, 0.0]])
    table = torch.tensor([[2.0, 0.0], [0.5, 1.0], [-1.0, 3.0]])
    cand = torch.tensor([[0, 1]])
    weights = torch.tensor([[0.75, 0.25]])
    neg = torch.tensor([2])
    # y(c) = 2, 0.5; y(j) = -1
    expected = 0.75 * (nls(2.0) + nls(1.0)) + 0.25 * (nls(0.5) + nls(1.0))
    assert rd_loss(u, table, cand, weights, neg).item() == pytest.approx(expected)


def test_labelled_pool_maps_train_sessions_and_cleans_lists():
    ds = tiny_dataset()
    sid = ds.train.session_ids
    rankings = {int(sid[3]): [5, 5, 1, 99], int(sid[7]): [99], int(sid[0]): [2]}
    pool = LabelledPool(ds, rankings, DLLM2RecOptions(top_k=3), TINY_CONFIG)
    assert len(pool) == 2  # session 7 has no usable id
    assert pool.candidates.tolist() == [[5, 1, -1], [2, -1, -1]]
    assert pool.instances.labels.tolist() == [ds.train.labels[3], ds.train.labels[0]]
    with pytest.raises(ValueError, match="not a train session"):
        LabelledPool(
            ds, {int(ds.valid.session_ids[0]): [1]}, DLLM2RecOptions(), TINY_CONFIG
        )


def test_input_offset_changes_inputs_only():
    torch.manual_seed(0)
    student = build_model("stamp", N_ITEMS, 10)
    titles = np.random.default_rng(0).normal(size=(N_ITEMS, 6)).astype(np.float32)
    offset = InputOffset(titles, 10, 0.2)
    table = offset.table()
    assert table.shape == (N_ITEMS + 1, 10)
    assert (table[0] == 0).all()  # padding stays zero
    z = torch.as_tensor(titles[4])
    expected = 0.2 * (offset.project.weight @ z + offset.project.bias)
    assert torch.allclose(table[5], expected, atol=1e-6)  # item 4 is row 5

    batch = make_batch([[1, 2, 3], [4]])
    items_before = student.item_embeddings().clone()
    x_before, _ = student.embed(batch)
    attach_input_offset(student, table)
    x_after, _ = student.embed(batch)
    assert torch.allclose(x_after, x_before + table[batch.items], atol=1e-6)
    assert torch.equal(student.item_embeddings(), items_before)
    attach_input_offset(student, torch.zeros_like(table))  # replaces, not adds
    assert torch.allclose(student.embed(batch)[0], x_before)


def rankings_for(ds, n: int = 12) -> dict[int, list[int]]:
    rng = np.random.default_rng(0)
    return {
        int(s): rng.permutation(N_ITEMS)[:25].tolist() for s in ds.train.session_ids[:n]
    }


def test_smoke_dllm2rec_rd_only():
    ds = tiny_dataset()
    result = train_baseline(
        "dllm2rec",
        ds,
        "fpmc",
        llm_rankings=rankings_for(ds),
        config=TINY_CONFIG,
        progress=False,
    )
    assert result.extras["variant"] == "RD only"
    assert result.extras["labelled"] == 12
    assert all(np.isfinite(v) for v in result.extras["loss_last"].values())
    assert result.model.dim == 10
    expected = sum(p.numel() for p in build_model("fpmc", N_ITEMS, 10).parameters())
    assert sum(p.numel() for p in result.model.parameters()) == expected


def test_smoke_dllm2rec_with_title_embeddings():
    ds = tiny_dataset()
    titles = np.random.default_rng(1).normal(size=(N_ITEMS, 16)).astype(np.float32)
    result = train_baseline(
        "dllm2rec",
        ds,
        "stamp",
        llm_rankings=rankings_for(ds),
        config=TINY_CONFIG,
        options={"item_title_embeddings": titles},
        progress=False,
    )
    assert result.extras["variant"] == "RD+ED"
    offset = result.extras["input_offset"]
    assert offset.shape == (N_ITEMS + 1, 10) and offset.abs().sum() > 0
    assert all(np.isfinite(v) for v in result.extras["loss_last"].values())
    # the student carries the folded offset, not the projector
    expected = sum(p.numel() for p in build_model("stamp", N_ITEMS, 10).parameters())
    assert sum(p.numel() for p in result.model.parameters()) == expected
    batch = make_batch(ds.test.sessions[:4])
    plain = build_model("stamp", N_ITEMS, 10)
    plain.load_state_dict(result.model.state_dict())
    x_plain, _ = plain.embed(batch)
    x_ed, _ = result.model.embed(batch)
    assert torch.allclose(x_ed, x_plain + offset[batch.items], atol=1e-6)


def test_rankings_are_required_and_title_rows_checked():
    ds = tiny_dataset()
    with pytest.raises(ValueError, match="llm_rankings"):
        train_baseline("dllm2rec", ds, "stamp", config=TINY_CONFIG, progress=False)
    with pytest.raises(ValueError, match="rows"):
        train_baseline(
            "dllm2rec",
            ds,
            "stamp",
            llm_rankings=rankings_for(ds),
            config=TINY_CONFIG,
            options={"item_title_embeddings": np.zeros((N_ITEMS - 1, 4))},
            progress=False,
        )


def test_standardised_title_vectors_are_z_scores_and_keep_untitled_rows_zero():
    from alkd.llm.embeddings import standardise

    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 6)) * [1, 2, 3, 4, 5, 0] + [30, 0, 1, 2, 3, 7]
    z[[3, 17]] = 0.0  # untitled items
    out = standardise(z)

    titled = np.ones(50, bool)
    titled[[3, 17]] = False
    assert np.all(out[~titled] == 0)
    assert np.allclose(out[titled, :5].mean(0), 0, atol=1e-5)
    assert np.allclose(out[titled, :5].std(0), 1, atol=1e-5)
    assert np.all(out[titled, 5] == 0)  # the constant dimension is only centred


def test_title_scaling_is_part_of_the_cell_key_and_raw_keeps_old_keys():
    from alkd.maintable import baseline_cell
    from alkd.train import TrainConfig

    def cell(**kw):
        return baseline_cell(
            "ML", "fpmc", "dllm2rec", 0, rec_seed=0, train=TrainConfig(), **kw
        )

    raw = cell(title_llm="smollm2-135m", title_scaling="raw")
    scaled = cell(title_llm="smollm2-135m")
    assert "title_scaling" not in raw.config  # as cells were before scaling
    assert scaled.config["title_scaling"] == "standardise"
    assert raw.key != scaled.key
    # without title vectors (RD only) there is nothing to scale
    assert cell(title_llm=None).key == cell(title_llm=None, title_scaling="raw").key
    with pytest.raises(ValueError, match="title_scaling"):
        cell(title_llm="smollm2-135m", title_scaling="whiten")


@pytest.mark.parametrize("scaling", ["standardise", "raw"])
def test_baseline_runner_hands_dllm2rec_the_scaled_title_vectors(monkeypatch, scaling):
    import alkd.maintable as mt
    from alkd.experiments import Context
    from alkd.llm.embeddings import standardise
    from alkd.train import TrainConfig

    raw = np.random.default_rng(1).normal(5.0, 3.0, size=(N_ITEMS, 4))
    seen = {}

    class Stop(Exception):
        pass

    def fake_train_baseline(method, ds, backbone, **kw):
        seen["titles"] = kw["options"]["item_title_embeddings"]
        raise Stop

    class FakeLLM:
        def rank(self, chosen):
            return {}

    # everything before the hand-over is stubbed: this checks the hand-over
    monkeypatch.setattr(mt, "train_or_load", lambda *a, **k: (None,))
    monkeypatch.setattr(mt, "make_teacher", lambda *a, **k: (FakeLLM(), None))
    monkeypatch.setattr(mt, "select", lambda *a, **k: [])
    monkeypatch.setattr(mt, "dataset_title_embeddings", lambda *a, **k: raw)
    monkeypatch.setattr(mt, "train_baseline", fake_train_baseline)
    ctx = Context()
    ctx._datasets["ML"] = tiny_dataset()
    cell = mt.baseline_cell(
        "ML",
        "fpmc",
        "dllm2rec",
        0,
        rec_seed=0,
        train=TrainConfig(),
        title_llm="smollm2-135m",
        title_scaling=scaling,
    )
    with pytest.raises(Stop):
        mt._run_baseline(cell, ctx)
    expected = standardise(raw) if scaling == "standardise" else raw
    np.testing.assert_allclose(seen["titles"], expected, rtol=1e-6)

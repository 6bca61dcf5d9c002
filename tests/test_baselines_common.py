"""Tests of alkd.baselines.common and the registry in alkd.baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import BASELINES, make_options, train_baseline, tuning_grid
from alkd.baselines.common import (
    ExpertMixture,
    FrozenTeacher,
    Instances,
    KDStudent,
    anneal_temperature,
    rec_loss,
)
from alkd.baselines.de import DEOptions
from alkd.models import build_model
from alkd.train import TrainConfig, bpr_objective


@pytest.mark.parametrize("negatives", ["uniform", "in-batch"])
@pytest.mark.parametrize("n_negatives", [1, 3])
def test_rec_loss_equals_the_plain_students_bpr(negatives, n_negatives):
    ds = tiny_dataset()
    config = TrainConfig(negatives=negatives, n_negatives=n_negatives)
    inst = Instances(ds.train, N_ITEMS, config)
    model = build_model("stamp", N_ITEMS, 10)
    index = np.arange(5, 37)
    plain = bpr_objective(
        inst.inputs, ds.train.labels, N_ITEMS, n_negatives, negatives
    )(model, index, np.random.default_rng(3), 1)

    rng = np.random.default_rng(3)
    batch = inst.batch(index, "cpu")
    ours = rec_loss(
        model.encode(batch),
        model.item_embeddings(),
        inst.positives(index, "cpu"),
        inst.rec_negatives(index, rng, "cpu"),
    )
    assert torch.allclose(ours, plain, atol=1e-6)


def test_kd_negatives_avoid_session_items_and_label():
    ds = tiny_dataset()
    inst = Instances(ds.train, N_ITEMS, TrainConfig())
    rng = np.random.default_rng(0)
    index = np.arange(len(ds.train))
    for _ in range(50):
        neg = inst.kd_negatives(index, rng)
        for i, j in zip(index, neg, strict=True):
            assert j not in ds.train.sessions[i]
            assert j != ds.train.labels[i]
            assert 0 <= j < N_ITEMS


def test_exclusion_marks_every_session_item_and_optionally_the_label():
    ds = tiny_dataset()
    inst = Instances(ds.train, N_ITEMS, TrainConfig())
    index = np.array([0, 7])
    with_label = inst.exclusion(index)
    without = inst.exclusion(index, with_label=False)
    for row, i in enumerate(index):
        expected = set(ds.train.sessions[i])
        assert set(np.nonzero(without[row].numpy())[0]) == expected
        assert set(np.nonzero(with_label[row].numpy())[0]) == expected | {
            int(ds.train.labels[i])
        }


def test_temperature_schedule_end_points():
    assert anneal_temperature(0, 10_000) == 1.0
    assert anneal_temperature(10_000, 10_000) == pytest.approx(1e-10)
    assert anneal_temperature(5_000, 10_000) == pytest.approx(1e-5)
    assert anneal_temperature(20_000, 10_000) == pytest.approx(1e-10)  # floored


def test_kd_student_scores_as_the_student_and_owns_the_kd_modules():
    student = build_model("fpmc", N_ITEMS, 10)
    experts = ExpertMixture(3, 10, 100)
    model = KDStudent(student, experts=experts)
    batch = Instances(tiny_dataset().train, N_ITEMS, TrainConfig()).batch(
        np.arange(4), "cpu"
    )
    assert torch.equal(model.scores(batch), student.scores(batch))
    owned = {id(p) for p in model.parameters()}
    assert all(id(p) in owned for p in experts.parameters())
    assert all(id(p) in owned for p in student.parameters())


def test_expert_outputs_match_per_expert_mlps():
    torch.manual_seed(0)
    mix = ExpertMixture(4, 3, 7)
    x = torch.randn(5, 3)
    out = mix.expert_outputs(x)
    assert out.shape == (5, 4, 7)
    for m in range(4):
        ref = torch.relu(x @ mix.w1[m] + mix.b1[m]) @ mix.w2[m] + mix.b2[m]
        assert torch.allclose(out[:, m], ref, atol=1e-6)
    assert mix.w1.shape[-1] == (3 + 7) // 2  # hidden = (ds + dt) // 2


def test_options_refuse_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="kd_wieght"):
        make_options("de", {"kd_wieght": 1.0})
    with pytest.raises(ValueError, match="n_experts"):
        DEOptions(n_experts=0)
    assert make_options("de", {"n_experts": 5}).n_experts == 5
    assert make_options("de", None) == DEOptions()
    with pytest.raises(ValueError, match="unknown baseline"):
        make_options("rrd")


def test_defaults_are_the_documented_settings():
    assert make_options("de").kd_weight == 0.01 and make_options("de").n_experts == 30
    assert make_options("ftd").kd_weight == 1e-3
    htd = make_options("htd")
    assert (htd.kd_weight, htd.n_groups, htd.alpha) == (1e-3, 30, 0.5)
    unkd = make_options("unkd")
    assert (unkd.n_groups, unkd.mu, unkd.top_l, unkd.pairs_per_group) == (
        4,
        20.0,
        1000,
        8,
    )
    dsl = make_options("dsl")
    assert (dsl.update_every, dsl.ratio_start, dsl.ratio_end) == (100, 0.5, 0.005)
    d2 = make_options("dllm2rec")
    assert (d2.kd_weight, d2.top_k, d2.gamma_position, d2.gamma_consistency) == (
        0.8,
        10,
        0.3,
        0.1,
    )
    assert d2.ed_weight == 0.2


def test_tuning_grids():
    assert tuning_grid("de") == [
        {"n_experts": 5, "kd_weight": 1e-3},
        {"n_experts": 5, "kd_weight": 1e-2},
        {"n_experts": 30, "kd_weight": 1e-3},
        {"n_experts": 30, "kd_weight": 1e-2},
    ]
    weights = [g["kd_weight"] for g in tuning_grid("htd")]
    assert weights == pytest.approx([1e-4, 1e-3, 1e-2])
    assert tuning_grid("dsl") == [{}]
    for method in BASELINES:
        for override in tuning_grid(method):
            make_options(method, override)  # every grid point is valid


def test_teacher_is_required_and_checked():
    ds = tiny_dataset()
    with pytest.raises(ValueError, match="teacher"):
        train_baseline("ftd", ds, "stamp", config=TINY_CONFIG, progress=False)
    with pytest.raises(ValueError, match="backbone"):
        train_baseline(
            "ftd",
            ds,
            "stamp",
            teacher=build_model("fpmc", N_ITEMS, 100),
            config=TINY_CONFIG,
            progress=False,
        )
    with pytest.raises(ValueError, match="items"):
        train_baseline(
            "ftd",
            ds,
            "stamp",
            teacher=build_model("stamp", N_ITEMS + 1, 100),
            config=TINY_CONFIG,
            progress=False,
        )


def test_frozen_teacher_matches_an_on_the_fly_forward():
    ds = tiny_dataset()
    inst = Instances(ds.train, N_ITEMS, TrainConfig())
    teacher = build_model("attmix", N_ITEMS, 100)
    frozen = FrozenTeacher(teacher, inst, "cpu", chunk=7)  # several chunks
    index = np.array([0, 6, 7, 59, 13])
    u_t, e_t = frozen.view(index)
    with torch.no_grad():
        assert torch.allclose(u_t, teacher.encode(inst.batch(index, "cpu")), atol=1e-6)
        assert torch.equal(e_t, teacher.item_embeddings())

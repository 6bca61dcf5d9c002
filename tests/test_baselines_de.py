"""Tests of DE (alkd.baselines.de): the annealed gate, the reconstruction
loss on a hand-sized case and a smoke run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import train_baseline
from alkd.baselines.common import (
    ExpertMixture,
    FrozenTeacher,
    Instances,
    KDStudent,
    LossLog,
    anneal_temperature,
)
from alkd.baselines.de import DEOptions, de_loss, make_objective
from alkd.models import build_model


def toy_experts(gate_bias: tuple[float, float] = (0.0, 0.0)) -> ExpertMixture:
    """Two 1 -> 1 -> 1 experts: e_1(x) = 2 relu(x), e_2(x) = 3 relu(x).

    The gate is a(t) = softmax([t, -t] + bias).
    """
    mix = ExpertMixture(2, 1, 1)
    with torch.no_grad():
        mix.w1.copy_(torch.ones(2, 1, 1))
        mix.b1.zero_()
        mix.w2.copy_(torch.tensor([[[2.0]], [[3.0]]]))
        mix.b2.zero_()
        mix.gate.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        mix.gate.bias.copy_(torch.tensor(gate_bias))
    return mix


def test_reconstruction_loss_by_hand():
    mix = toy_experts()
    x, t = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    # no noise, T = 1: pi = a(t) = (sigmoid(1), sigmoid(-1))
    loss = mix(x, t, temperature=1.0, noise=torch.zeros(1, 2))
    a1 = 1 / (1 + math.exp(-1.0))
    expected = (0.5 - (2 * a1 + 3 * (1 - a1))) ** 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_gumbel_noise_enters_before_the_temperature():
    mix = toy_experts()
    t = torch.tensor([[0.0]])  # a = (1/2, 1/2)
    noise = torch.tensor([[math.log(3.0), 0.0]])
    pi = mix.selection(t, temperature=1.0, noise=noise)
    # softmax(log 1/2 + log 3, log 1/2) = (3/4, 1/4)
    assert pi[0].tolist() == pytest.approx([0.75, 0.25], rel=1e-5)
    pi_hot = mix.selection(t, temperature=0.5, noise=noise)  # (9/10, 1/10)
    assert pi_hot[0].tolist() == pytest.approx([0.9, 0.1], rel=1e-5)


def test_gate_is_one_hot_at_the_end_of_annealing():
    torch.manual_seed(0)
    mix = ExpertMixture(30, 10, 100)
    t = torch.randn(64, 100)
    end = mix.selection(t, anneal_temperature(10_000, 10_000))
    assert torch.allclose(end.max(1).values, torch.ones(64))
    assert ((end > 1e-6).sum(1) == 1).all()
    start = mix.selection(t, anneal_temperature(0, 10_000))
    assert ((start > 1e-6).sum(1) > 1).all()  # soft at T = 1


def test_de_loss_weights_sessions_one_and_items_one_half():
    # a gate bias of +-100 makes expert 1 certain whatever the Gumbel draw
    sessions, items = toy_experts((100.0, -100.0)), toy_experts((100.0, -100.0))
    u_s, u_t = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [1.0]])
    e_s = torch.tensor([[1.0], [0.5], [3.0]])
    e_t = torch.ones(3, 1)
    loss = de_loss(
        sessions,
        items,
        u_s,
        u_t,
        e_s,
        e_t,
        targets=torch.tensor([0]),
        negatives=torch.tensor([1, 2]),
        temperature=1.0,
    )
    # sessions: (0-2)^2 + (1-4)^2 = 13; target: (1-2)^2 = 1;
    # negatives: (1-1)^2 + (1-6)^2 = 25
    assert loss.item() == pytest.approx(13 + 0.5 * (1 + 25), rel=1e-5)


def test_objective_trains_the_experts_and_the_student():
    ds = tiny_dataset()
    teacher = build_model("stamp", N_ITEMS, 100).eval()
    inst = Instances(ds.train, N_ITEMS, TINY_CONFIG)
    model = KDStudent(
        build_model("stamp", N_ITEMS, 10),
        session_experts=ExpertMixture(5, 10, 100),
        item_experts=ExpertMixture(5, 10, 100),
    )
    frozen = FrozenTeacher(teacher, inst, "cpu")
    objective = make_objective(inst, frozen, DEOptions(kd_weight=1.0), 100, LossLog())
    loss = objective(model, np.arange(16), np.random.default_rng(0), 1)
    loss.backward()
    for name in ("session_experts", "item_experts"):
        assert model.kd[name].w2.grad.abs().sum() > 0
        assert model.kd[name].gate.weight.grad.abs().sum() > 0
    assert model.student.item_emb.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_smoke_de():
    ds = tiny_dataset()
    teacher = build_model("fpmc", N_ITEMS, 100)
    result = train_baseline(
        "de",
        ds,
        "fpmc",
        teacher=teacher,
        config=TINY_CONFIG,
        options={"n_experts": 5},
        progress=False,
    )
    assert all(np.isfinite(v) for v in result.extras["loss_last"].values())
    assert result.model.dim == 10 and result.model.name == "fpmc"
    expected = sum(p.numel() for p in build_model("fpmc", N_ITEMS, 10).parameters())
    assert sum(p.numel() for p in result.model.parameters()) == expected
    assert result.fit.iters == TINY_CONFIG.max_iters

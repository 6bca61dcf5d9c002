"""Tests of HTD (alkd.baselines.htd, topology's hierarchical loss)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import train_baseline
from alkd.baselines.common import ExpertMixture
from alkd.baselines.htd import htd_loss
from alkd.baselines.topology import (
    cosine_matrix,
    entity_topology_loss,
    group_topology_loss,
    hierarchical_topology_loss,
)
from alkd.models import build_model

# three entities: a, b in group 0 and c in group 1
S = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
T = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
GROUPS = torch.tensor([0, 0, 1])


def test_entity_level_by_hand():
    # same-group pairs: (a,b) and (b,a): teacher cos 1, student cos 0
    assert entity_topology_loss(S, T, GROUPS).item() == pytest.approx(2.0, rel=1e-6)


def test_entity_level_drops_pairs_with_non_positive_teacher_cosine():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # teacher cos -1
    same = torch.tensor([0, 0])
    assert entity_topology_loss(s, t, same).item() == 0.0  # the code's quirk


def test_group_level_by_hand():
    # prototypes: group 0 P_S = (.5, .5), P_T = (1, 0); group 1 P_S = (1, 1),
    # P_T = (0, 1). Group 0 against a, b, c: (1/sqrt2 - 1)^2 twice, (1 - 0)^2;
    # group 1: (1/sqrt2 - 0)^2 twice, (1 - 1)^2.
    r = 1 / math.sqrt(2)
    expected = 2 * (r - 1) ** 2 + 1 + 2 * r**2
    assert group_topology_loss(S, T, GROUPS).item() == pytest.approx(expected)
    assert expected == pytest.approx(5 - 2 * math.sqrt(2))
    total = hierarchical_topology_loss(S, T, GROUPS).item()
    assert total == pytest.approx(2.0 + expected)


def test_group_level_prototypes_carry_no_gradient():
    # one group of two entities; the teacher's prototype (1/2, 1/2) has
    # cosine 1/sqrt(2) with both teacher rows. With P_S a constant the
    # gradient is that of sum_x (cos(P_S, x) - 1/sqrt 2)^2 through x only.
    s = torch.tensor([[2.0, 0.0], [1.0, 3.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    group_topology_loss(s, t, torch.tensor([0, 0])).backward()

    def reference(detach: bool) -> torch.Tensor:
        x = s.detach().clone().requires_grad_(True)
        p = x.mean(0).detach() if detach else x.mean(0)
        cos = (x @ p) / (x.norm(dim=1) * p.norm())
        ((cos - 1 / math.sqrt(2)) ** 2).sum().backward()
        return x.grad

    assert torch.allclose(s.grad, reference(detach=True), atol=1e-6)
    assert not torch.allclose(s.grad, reference(detach=False), atol=1e-3)


def test_htd_loss_keeps_session_and_item_groups_apart():
    torch.manual_seed(0)
    # K = 1: every session shares group 0, every item group 1 (offset K)
    session_ga, item_ga = ExpertMixture(1, 10, 100), ExpertMixture(1, 10, 100)
    u_s, u_t = torch.randn(4, 10), torch.randn(4, 100)
    i_s, i_t = torch.randn(3, 10), torch.randn(3, 100)
    l_td, l_ga = htd_loss(session_ga, item_ga, u_s, u_t, i_s, i_t, temperature=1.0)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    expected_td = hierarchical_topology_loss(
        torch.cat([u_s, i_s]), torch.cat([u_t, i_t]), groups
    )
    assert l_td.item() == pytest.approx(expected_td.item(), rel=1e-5)
    # one expert: pi = 1 whatever the noise; items weigh 1 (not DE's 0.5)
    rec_s = (u_t - session_ga.expert_outputs(u_s)[:, 0]).pow(2).sum()
    rec_i = (i_t - item_ga.expert_outputs(i_s)[:, 0]).pow(2).sum()
    assert l_ga.item() == pytest.approx((rec_s + rec_i).item(), rel=1e-5)


def test_hard_groups_follow_the_teacher_gate():
    mix = ExpertMixture(3, 2, 2)
    with torch.no_grad():
        mix.gate.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        mix.gate.bias.zero_()
    t = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    assert mix.hard_assignment(t).tolist() == [0, 1, 2]


def test_smoke_htd():
    ds = tiny_dataset()
    result = train_baseline(
        "htd",
        ds,
        "stamp",
        teacher=build_model("stamp", N_ITEMS, 100),
        config=TINY_CONFIG,
        options={"n_groups": 4},
        progress=False,
    )
    last = result.extras["loss_last"]
    assert all(np.isfinite(v) for v in last.values())
    assert last["td"] >= 0 and last["ga"] > 0
    assert result.model.dim == 10 and result.model.name == "stamp"
    expected = sum(p.numel() for p in build_model("stamp", N_ITEMS, 10).parameters())
    assert sum(p.numel() for p in result.model.parameters()) == expected


def _dense_entity_loss(s, t, groups):
    """The reference code's form: all pairs, masked by group and C_T > 0."""
    c_t = cosine_matrix(t).detach()
    keep = (c_t * (groups[:, None] == groups[None, :])) > 0
    return ((cosine_matrix(s) - c_t).pow(2) * keep).sum()


def test_blockwise_entity_loss_equals_the_dense_definition():
    torch.manual_seed(3)
    s = torch.randn(200, 10, requires_grad=True)
    t = torch.randn(200, 100)
    groups = torch.randint(0, 7, (200,))
    fast, dense = entity_topology_loss(s, t, groups), _dense_entity_loss(s, t, groups)
    assert fast.item() == pytest.approx(dense.item(), rel=1e-5)

    (g_fast,) = torch.autograd.grad(fast, s)
    (g_dense,) = torch.autograd.grad(_dense_entity_loss(s, t, groups), s)
    assert torch.allclose(g_fast, g_dense, rtol=1e-4, atol=1e-6)

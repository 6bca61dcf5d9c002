"""Tests of FTD (alkd.baselines.ftd, topology.full_topology_loss)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _baselines_tiny import N_ITEMS, TINY_CONFIG, tiny_dataset

from alkd.baselines import train_baseline
from alkd.baselines.ftd import kd_items
from alkd.baselines.topology import (
    cosine_matrix,
    full_topology_loss,
    stack_entities,
)
from alkd.models import build_model


def test_cosine_matrix_by_hand():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1.0, r, 0.0], [r, 1.0, -r], [0.0, -r, 1.0]])
    assert torch.allclose(cosine_matrix(x), expected, atol=1e-6)


def test_loss_is_zero_when_similarities_match():
    torch.manual_seed(0)
    s = torch.randn(12, 10)
    # orthonormal rows embed R^10 into R^100; row scales keep every cosine
    q, _ = torch.linalg.qr(torch.randn(100, 10))
    t = (s @ q.T) * torch.rand(12, 1).add(0.5)
    assert full_topology_loss(s, t).item() == pytest.approx(0.0, abs=1e-9)


def test_loss_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # cos 0
    t = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # cos 1/sqrt(2)
    # two ordered off-diagonal pairs, each (1/sqrt 2 - 0)^2 = 1/2
    assert full_topology_loss(s, t).item() == pytest.approx(1.0, rel=1e-6)

    s3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    t3 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # all cos 1
    # student pairs: (a,b) 0, (a,c) -1, (b,c) 0 -> 2 * (1 + 4 + 1)
    assert full_topology_loss(s3, t3).item() == pytest.approx(12.0, rel=1e-6)


def test_gradient_reaches_the_student_only():
    s = torch.randn(6, 10, requires_grad=True)
    t = torch.randn(6, 100, requires_grad=True)
    full_topology_loss(s, t).backward()
    assert s.grad.abs().sum() > 0
    assert t.grad is None


def test_entities_and_item_set():
    u = torch.arange(6.0).view(3, 2)
    table = 10 + torch.arange(10.0).view(5, 2)
    pos = torch.tensor([3, 1, 3])
    items = kd_items(pos, np.array([0, 1, 4]))
    assert items.tolist() == [0, 1, 3, 4]  # unique targets U unique negatives
    x = stack_entities(u, table, items)
    assert torch.equal(x, torch.cat([u, table[[0, 1, 3, 4]]]))


def test_smoke_ftd():
    ds = tiny_dataset()
    result = train_baseline(
        "ftd",
        ds,
        "attmix",
        teacher=build_model("attmix", N_ITEMS, 100),
        config=TINY_CONFIG,
        progress=False,
    )
    last = result.extras["loss_last"]
    assert all(np.isfinite(v) for v in last.values()) and last["kd"] > 0
    assert result.model.dim == 10 and result.model.name == "attmix"
    expected = sum(p.numel() for p in build_model("attmix", N_ITEMS, 10).parameters())
    assert sum(p.numel() for p in result.model.parameters()) == expected


def _dense_ftd(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The definition: the (n, n) cosine matrices, differenced and squared."""
    return (cosine_matrix(t).detach() - cosine_matrix(s)).pow(2).sum()


@pytest.mark.parametrize("n", [1, 7, 300])
def test_gram_form_equals_the_dense_definition(n):
    torch.manual_seed(n)
    s = torch.randn(n, 10, requires_grad=True)
    t = torch.randn(n, 100)
    t[0] = 0.0  # a zero row has cosine 0 with everything in both forms
    fast, dense = full_topology_loss(s, t), _dense_ftd(s, t)
    assert fast.item() == pytest.approx(dense.item(), rel=1e-5, abs=1e-5)

    (g_fast,) = torch.autograd.grad(fast, s)
    (g_dense,) = torch.autograd.grad(_dense_ftd(s, t), s)
    assert torch.allclose(g_fast, g_dense, rtol=1e-4, atol=1e-5)

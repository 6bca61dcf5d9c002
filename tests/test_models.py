"""The contract every backbone passes (shapes, padding, determinism, save/load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from alkd.data import make_batch
from alkd.models import BACKBONES, build_model
from alkd.models.attmix import AttMix
from alkd.train import FitResult, bpr_loss, load_checkpoint, save_checkpoint

N_ITEMS = 50
CONTRACT = pytest.mark.parametrize("dim", [10, 100])
EACH = pytest.mark.parametrize("backbone", sorted(BACKBONES))

# lengths 1 .. 13: the last three are truncated to the last 10 items
SESSIONS = [[(7 * i + 3 * j) % N_ITEMS for j in range(i % 13 + 1)] for i in range(16)]

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def fresh(backbone: str, dim: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(backbone, N_ITEMS, dim)


def train_steps(model: nn.Module, steps: int = 5, seed: int = 0) -> list[float]:
    """A few Adam steps of BPR against random negatives; the losses."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = make_batch(SESSIONS)
    losses = []
    for _ in range(steps):
        pos = torch.randint(0, N_ITEMS, (len(SESSIONS),), generator=gen)
        neg = torch.randint(0, N_ITEMS, (len(SESSIONS),), generator=gen)
        loss = bpr_loss(model.score_items(batch, pos), model.score_items(batch, neg))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@EACH
@CONTRACT
def test_output_shapes(backbone, dim):
    model = fresh(backbone, dim)
    batch = make_batch(SESSIONS)
    b = len(SESSIONS)
    assert model.encode(batch).shape == (b, dim)
    assert model.item_embeddings().shape == (N_ITEMS, dim)
    assert model.scores(batch).shape == (b, N_ITEMS)
    assert model.score_items(batch, torch.zeros(b, dtype=torch.int64)).shape == (b,)
    assert model.score_items(batch, torch.zeros(b, 7, dtype=torch.int64)).shape == (
        b,
        7,
    )


@EACH
@CONTRACT
def test_padding_changes_nothing(backbone, dim):
    model = fresh(backbone, dim)
    train_steps(model, 3)  # trained weights, not only the initial ones
    model.eval()
    with torch.no_grad():
        tight = model.scores(make_batch(SESSIONS))
        wide = model.scores(make_batch(SESSIONS, pad_to=20))
        alone = torch.cat([model.scores(make_batch([s])) for s in SESSIONS])
    torch.testing.assert_close(wide, tight, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone, tight, rtol=0, atol=1e-5)


@EACH
@CONTRACT
def test_padding_rows_stay_zero_after_training(backbone, dim):
    model = fresh(backbone, dim)
    train_steps(model, 5)
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    assert tables, "a backbone holds at least the item table"
    for table in tables:
        assert table.padding_idx == 0
        assert torch.count_nonzero(table.weight[0]) == 0


@EACH
@CONTRACT
def test_length_one_sessions_are_finite_forward_and_backward(backbone, dim):
    model = fresh(backbone, dim)
    for batch in (make_batch([[3], [0]]), make_batch([[3], [4]], pad_to=20)):
        model.zero_grad()
        scores = model.scores(batch)
        assert torch.isfinite(scores).all()
        scores.pow(2).mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), name
    # and mixed with long sessions in one padded batch
    model.zero_grad()
    model.scores(make_batch([[5]] + SESSIONS[-3:], pad_to=20)).sum().backward()
    assert all(
        p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters()
    )


@EACH
@CONTRACT
def test_same_seed_same_weights_and_losses(backbone, dim):
    a, b, c = fresh(backbone, dim, 3), fresh(backbone, dim, 3), fresh(backbone, dim, 4)
    for (name, pa), pb in zip(
        a.state_dict().items(), b.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.item_emb.weight, c.item_emb.weight)
    assert train_steps(a, 3) == train_steps(b, 3)


@EACH
@CONTRACT
def test_score_items_equals_gathered_scores(backbone, dim):
    model = fresh(backbone, dim)
    batch = make_batch(SESSIONS)
    items = torch.randint(0, N_ITEMS, (len(SESSIONS), 6))
    with torch.no_grad():
        full = model.scores(batch)
        torch.testing.assert_close(
            model.score_items(batch, items), full.gather(1, items), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            model.score_items(batch, items[:, 0]),
            full.gather(1, items[:, :1])[:, 0],
            rtol=1e-5,
            atol=1e-5,
        )


@EACH
@CONTRACT
def test_save_load_gives_identical_scores(backbone, dim, tmp_path):
    model = fresh(backbone, dim)
    train_steps(model, 2)
    model.eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, FitResult(20, 40, 1.5, {"recall@10": 0.25}))
    loaded, fit = load_checkpoint(path, device="cpu")
    assert type(loaded) is type(model) and not loaded.training
    assert fit == FitResult(20, 40, 1.5, {"recall@10": 0.25})
    batch = make_batch(SESSIONS)
    with torch.no_grad():
        assert torch.equal(loaded.scores(batch), model.scores(batch))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_fpmc_is_session_mean_plus_last_item_transition():
    model = fresh("fpmc", 8)
    sessions = [[1, 2, 3], [4], [5, 5, 6, 7]]
    with torch.no_grad():
        scores = model.scores(make_batch(sessions))
        e = model.item_emb.weight[1:].numpy()  # (N, d)
        t = model.transition.weight[1:].numpy()
    for row, s in enumerate(sessions):
        u = e[s].mean(0) + t[s[-1]]
        np.testing.assert_allclose(scores[row].numpy(), e @ u, rtol=1e-5, atol=1e-6)


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown backbone 'gru4rec'"):
        build_model("gru4rec", 10, 4)
    with pytest.raises(ValueError, match="n_items must be positive"):
        build_model("stamp", 0, 4)
    with pytest.raises(ValueError, match="dim must be positive"):
        build_model("fpmc", 10, 0)
    with pytest.raises(ValueError, match="heads >= 1"):
        AttMix(10, 4, heads=0)
    assert build_model("STAMP", 10, 4).name == "stamp"

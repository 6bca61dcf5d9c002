"""Tests of alkd.train: BPR, negatives, the fit loop, early stopping, checkpoints."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from conftest import call_at_once

import alkd.train
from alkd.data import make_batch, session_item_sets
from alkd.metrics import rank_metrics
from alkd.models import build_model
from alkd.train import (
    TrainConfig,
    bpr_loss,
    bpr_objective,
    checkpoint_path,
    evaluate,
    fit,
    in_batch_bpr,
    sample_negatives,
    train_or_load,
    train_recommender,
)

# a tiny budget that learns the pattern dataset's "next = last + 1" rule
TINY = TrainConfig(lr=1e-2, batch_size=64, max_iters=300, eval_every=20, patience=4)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ---------- loss and negatives ----------


def neg_log_sigmoid(x: float) -> float:
    """-log(1 / (1 + e^-x)) in float64, stable on both sides."""
    return math.log1p(math.exp(-x)) if x >= 0 else -x + math.log1p(math.exp(x))


def test_bpr_loss_equals_hand_formula_and_stays_finite():
    pos = torch.tensor([1e4, -1e4, 0.5, 0.0], requires_grad=True)
    neg = torch.tensor([0.0, 0.0, 0.0, 2.0])
    loss = bpr_loss(pos, neg)
    want = np.mean(
        [
            neg_log_sigmoid(p - n)
            for p, n in zip(pos.tolist(), neg.tolist(), strict=True)
        ]
    )
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert torch.isfinite(pos.grad).all()
    # d/dpos of mean(-log sigmoid(pos - neg)) = -(1 - sigmoid(pos - neg)) / B
    assert pos.grad[1].item() == pytest.approx(-0.25)
    assert pos.grad[0].item() == pytest.approx(0.0, abs=1e-12)


def test_sample_negatives_never_returns_the_label():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, size=5_000)
    neg = sample_negatives(rng, labels, 7, 4)
    assert neg.shape == (5_000, 4)
    assert neg.min() >= 0 and neg.max() <= 6
    assert not (neg == labels[:, None]).any()


@pytest.mark.parametrize("label", [0, 4, 9])
def test_sample_negatives_cover_other_items_uniformly(label):
    n_items, draws = 10, 27_000
    neg = sample_negatives(
        np.random.default_rng(1), np.full(draws, label), n_items, 1
    ).ravel()
    counts = np.bincount(neg, minlength=n_items)
    assert counts[label] == 0
    others = np.delete(counts, label)
    expected = draws / (n_items - 1)
    chi2 = ((others - expected) ** 2 / expected).sum()
    assert chi2 < 50  # 8 degrees of freedom: P(chi2 > 50) ~ 4e-8


def test_in_batch_bpr_matches_a_loop():
    model = build_model("fpmc", 12, 6)
    sessions = [[1, 2], [3], [4, 5, 6], [7]]
    pos = torch.tensor([3, 4, 3, 8])  # sessions 0 and 2 share a label
    batch = make_batch(sessions)
    with torch.no_grad():
        got = in_batch_bpr(model, batch, pos).item()
        u, e = model.encode(batch).detach(), model.item_embeddings().detach()
    terms = [
        neg_log_sigmoid(float(u[i] @ e[pos[i]] - u[i] @ e[pos[j]]))
        for i in range(4)
        for j in range(4)
        if pos[j] != pos[i]
    ]
    assert got == pytest.approx(np.mean(terms), rel=1e-5)


def test_train_config_validation():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="negatives"):
        TrainConfig(negatives="hard")
    with pytest.raises(ValueError, match="select_metric"):
        TrainConfig(select_metric="mrr")
    assert TrainConfig().digest() == TrainConfig().digest() != TINY.digest()


# ---------- evaluation ----------


@pytest.mark.parametrize("backbone", ["fpmc", "stamp", "attmix"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_evaluate_equals_one_shot_rank_metrics(make_pattern_dataset, backbone, wrapped):
    # evaluate ranks encode @ item_embeddings.T, not model.scores: they must
    # agree for every backbone, also inside the KD baselines' wrapper
    from alkd.baselines.common import KDStudent

    ds = make_pattern_dataset()
    torch.manual_seed(0)
    model = build_model(backbone, ds.n_items, 8)
    if wrapped:
        model = KDStudent(model, extra=torch.nn.Linear(8, 8))
    got = evaluate(model, ds.test, batch_size=7)
    with torch.no_grad():
        scores = model.scores(make_batch(ds.test.sessions))
    want = rank_metrics(scores, ds.test.labels, session_item_sets(ds.test.sessions))
    assert got == pytest.approx(want, abs=1e-12)
    assert model.training  # the mode is restored


# ---------- the fit loop ----------


def test_fit_learns_a_pattern_and_is_bit_for_bit_reproducible(make_pattern_dataset):
    ds = make_pattern_dataset(n_items=30)
    model_a, fit_a = train_recommender(
        ds, "fpmc", 16, 0, TINY, device="cpu", progress=False
    )
    model_b, fit_b = train_recommender(
        ds, "fpmc", 16, 0, TINY, device="cpu", progress=False
    )

    test = evaluate(model_a, ds.test)
    # random scores hit the top 5 of ~27 candidates about 19 % of the time
    assert test["recall@5"] > 0.8
    assert fit_a.valid["recall@10"] > 0.8
    stop = fit_a.best_iter + TINY.patience * TINY.eval_every
    assert fit_a.iters == min(stop, TINY.max_iters)

    assert (fit_a.best_iter, fit_a.iters, fit_a.valid) == (
        fit_b.best_iter,
        fit_b.iters,
        fit_b.valid,
    )
    for name, p in model_a.state_dict().items():
        assert torch.equal(p, model_b.state_dict()[name]), name


def test_different_seeds_give_different_models(make_pattern_dataset):
    ds = make_pattern_dataset()
    cfg = TrainConfig(batch_size=64, max_iters=20, eval_every=20)
    a, _ = train_recommender(ds, "stamp", 8, 0, cfg, device="cpu", progress=False)
    b, _ = train_recommender(ds, "stamp", 8, 1, cfg, device="cpu", progress=False)
    assert not torch.equal(a.item_emb.weight, b.item_emb.weight)


def scripted_run(monkeypatch, valid_scores, config):
    """fit with a scripted validation curve and a counter in one weight.

    The objective adds 1 to ``item_emb.weight[1, 0]`` per iteration (and
    gives no gradient), so the weight tells which iteration's state is held.
    """
    curve = iter(valid_scores)
    monkeypatch.setattr(
        alkd.train, "evaluate", lambda *a, **k: {"recall@10": next(curve)}
    )
    model = build_model("fpmc", 5, 2)
    with torch.no_grad():
        model.item_emb.weight[1, 0] = 0.0

    def objective(m, index, rng, step):
        with torch.no_grad():
            m.item_emb.weight[1, 0] += 1.0
        return (m.item_emb.weight * 0).sum()

    result = fit(
        model, objective, 10, None, config, np.random.default_rng(0), progress=False
    )
    return model, result


def test_early_stopping_at_best_iter_plus_patience(monkeypatch):
    cfg = TrainConfig(batch_size=4, max_iters=1_000, eval_every=5, patience=3)
    # best at the 2nd validation; an equal score later is no improvement
    curve = [0.1, 0.3, 0.2, 0.3, 0.25, 0.9, 0.9]
    model, result = scripted_run(monkeypatch, curve, cfg)
    assert result.best_iter == 10
    assert result.iters == result.best_iter + cfg.patience * cfg.eval_every == 25
    assert result.valid == {"recall@10": 0.3}
    assert model.item_emb.weight[1, 0].item() == 10.0  # the best state is restored


def test_fit_runs_to_max_iters_while_improving(monkeypatch):
    cfg = TrainConfig(batch_size=4, max_iters=30, eval_every=10, patience=1)
    model, result = scripted_run(monkeypatch, [0.1, 0.2, 0.3], cfg)
    assert (result.best_iter, result.iters) == (30, 30)
    assert model.item_emb.weight[1, 0].item() == 30.0


def test_fit_stops_when_nothing_learns(make_pattern_dataset):
    ds = make_pattern_dataset()
    cfg = TrainConfig(batch_size=16, max_iters=1_000, eval_every=4, patience=2)
    model = build_model("stamp", ds.n_items, 4)

    def frozen(m, index, rng, step):
        return sum((p * 0).sum() for p in m.parameters())

    result = fit(
        model,
        frozen,
        len(ds.train),
        ds.valid,
        cfg,
        np.random.default_rng(0),
        progress=False,
    )
    assert (result.best_iter, result.iters) == (4, 4 + 2 * 4)


def test_bpr_objective_visits_given_instances(make_pattern_dataset):
    ds = make_pattern_dataset()
    inputs = make_batch(ds.train.sessions)
    objective = bpr_objective(inputs, ds.train.labels, ds.n_items, n_negatives=3)
    model = build_model("fpmc", ds.n_items, 4)
    loss = objective(model, np.arange(10), np.random.default_rng(0), 1)
    assert loss.dim() == 0 and torch.isfinite(loss)


# ---------- checkpoints ----------


def test_train_or_load_reuses_the_checkpoint(
    make_pattern_dataset, tmp_path, monkeypatch
):
    ds = make_pattern_dataset()
    cfg = TrainConfig(batch_size=64, max_iters=40, eval_every=20)
    model, fit_first = train_or_load(
        ds, "stamp", 8, 0, tmp_path, cfg, device="cpu", progress=False
    )

    path = checkpoint_path(tmp_path, ds.name, "stamp", 8, 0, cfg)
    assert path.is_file()
    left = [p.name for p in path.parent.iterdir() if p.name != ".locks"]
    assert left == [path.name]  # no temp file

    def no_training(*args, **kwargs):
        raise AssertionError("train_or_load trained although a checkpoint exists")

    monkeypatch.setattr(alkd.train, "train_recommender", no_training)
    again, fit_again = train_or_load(ds, "stamp", 8, 0, tmp_path, cfg, device="cpu")
    assert fit_again == fit_first
    batch = make_batch(ds.test.sessions)
    with torch.no_grad():
        assert torch.equal(again.scores(batch), model.scores(batch))

    # another setting is another checkpoint
    with pytest.raises(AssertionError, match="trained although"):
        train_or_load(ds, "stamp", 8, 1, tmp_path, cfg, device="cpu")


def test_checkpoint_path_keys_every_setting(tmp_path):
    cfg = TrainConfig()
    base = checkpoint_path(tmp_path, "ML", "stamp", 10, 0, cfg)
    others = [
        checkpoint_path(tmp_path, "Games", "stamp", 10, 0, cfg),
        checkpoint_path(tmp_path, "ML", "fpmc", 10, 0, cfg),
        checkpoint_path(tmp_path, "ML", "stamp", 100, 0, cfg),
        checkpoint_path(tmp_path, "ML", "stamp", 10, 1, cfg),
        checkpoint_path(tmp_path, "ML", "stamp", 10, 0, TrainConfig(max_iters=40)),
    ]
    assert len({base, *others}) == 6


def test_training_uses_one_thread_and_restores_the_callers(
    make_pattern_dataset, monkeypatch
):
    # cached models are reused by later cells, so they too must not depend
    # on the thread count of the process that happened to train them
    seen = []
    real_fit = alkd.train.fit

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(alkd.train, "fit", spy)
    torch.set_num_threads(2)  # the autouse fixture restores the original
    cfg = TrainConfig(batch_size=64, max_iters=20, eval_every=20)
    train_recommender(make_pattern_dataset(), "fpmc", 8, 0, cfg, progress=False)

    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_parallel_callers_train_a_recommender_once(
    make_pattern_dataset, tmp_path, monkeypatch
):
    # two run_all.sh --jobs processes needing the same recommender at once:
    # one trains it, the other waits for the lock and loads the checkpoint
    ds = make_pattern_dataset()
    cfg = TrainConfig(batch_size=64, max_iters=20, eval_every=20)
    real = alkd.train.train_recommender
    trained = []

    def slow_training(*args, **kwargs):
        trained.append(args[3])  # the seed
        time.sleep(0.5)  # the other caller arrives while this one trains
        return real(*args, **kwargs)

    monkeypatch.setattr(alkd.train, "train_recommender", slow_training)
    fits = [
        fit
        for _, fit in call_at_once(
            lambda: train_or_load(ds, "fpmc", 4, 0, tmp_path, cfg, device="cpu")
        )
    ]
    assert trained == [0]
    assert len(fits) == 2 and fits[0] == fits[1]

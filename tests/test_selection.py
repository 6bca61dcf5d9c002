"""Tests of alkd.selection: gains, drawing, the selection strategies, the
configuration and the difficulty score (the game itself: test_maxmin.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from alkd.data import make_batch
from alkd.models import build_model
from alkd.selection import (
    STRATEGIES,
    SelectionConfig,
    difficulty,
    draw_algorithm1,
    gains,
    maxmin_exact_proportional,
    maxmin_policy,
    read_base_file,
    select,
)

# ---------- gains ----------


def test_gains_rank_most_difficult_first_with_stable_ties():
    g = gains(np.array([0.1, 0.5, 0.3, 0.5]), mu=2.0)
    np.testing.assert_array_equal(g.order, [1, 3, 2, 0])
    np.testing.assert_array_equal(g.rank, [4, 1, 3, 2])
    np.testing.assert_allclose(np.exp(g.log_ef), [1 / 16, 1, 1 / 9, 1 / 4])
    np.testing.assert_allclose(np.exp(g.log_si), np.exp(g.log_ef) / 2)
    np.testing.assert_allclose(np.exp(g.log_in), np.exp(g.log_ef) / 2)


def test_gains_reject_bad_input():
    with pytest.raises(ValueError, match="difficulty_values"):
        gains(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="mu"):
        gains(np.array([0.1, 0.2]), mu=-1.0)


# ---------- drawing and selection ----------


def test_algorithm1_draw_order_distribution():
    # keep-if-new draws: P(first i, second j) = p_i p_j / (1 - p_i)
    p = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(7)
    trials = 20_000
    seen = {}
    for _ in range(trials):
        pair = tuple(draw_algorithm1(np.log(p), 2, rng))
        seen[pair] = seen.get(pair, 0) + 1
    for i, j in itertools.permutations(range(3), 2):
        expected = p[i] * p[j] / (1 - p[i])
        sd = np.sqrt(expected * (1 - expected) / trials)
        assert abs(seen.get((i, j), 0) / trials - expected) < 5 * sd


def pool_and_difficulty(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.arange(n) * 3 + 11, rng.normal(size=n)


@pytest.mark.parametrize("strategy", ["alkdrec", "alkdrec-exact", "rad-bc", "random"])
@pytest.mark.parametrize("drawing", ["algorithm1", "recompute"])
def test_random_strategies_valid_and_reproducible(strategy, drawing):
    pool, df = pool_and_difficulty()

    def run(seed):
        return select(strategy, pool, 40, seed, difficulty=df, drawing=drawing)

    chosen = run(1)
    assert chosen.size == 40 and np.unique(chosen).size == 40
    assert np.isin(chosen, pool).all()
    np.testing.assert_array_equal(chosen, run(1))
    assert not np.array_equal(chosen, run(2))


def test_alkdrec_prefers_fairly_easy_never_easiest():
    pool, df = pool_and_difficulty(1000)
    chosen = select("alkdrec", pool, 100, 0, difficulty=df)
    rank = gains(df).rank[np.searchsorted(pool, chosen)]
    assert rank.max() <= 937  # the easiest 6 % lie outside p*'s support
    assert np.median(rank) > 700


def test_easiest_and_hardest_take_the_ends():
    pool = np.array([5, 9, 2, 7, 4])
    df = np.array([0.3, -0.2, 0.9, 0.3, 0.1])
    np.testing.assert_array_equal(select("easiest", pool, 2, 0, difficulty=df), [9, 4])
    np.testing.assert_array_equal(
        select("hardest", pool, 3, 0, difficulty=df), [2, 5, 7]
    )


def test_authors_strategy():
    pool, _ = pool_and_difficulty(80)
    authors = pool[::-1]
    np.testing.assert_array_equal(
        select("authors", pool, 5, 0, authors_ids=authors), authors[:5]
    )
    with pytest.raises(ValueError, match="not in pool_ids"):
        select("authors", pool, 2, 0, authors_ids=[pool[0], 999_999])


def test_alkdrec_exact_draws_from_the_exact_policy_at_paper_scale():
    pool, df = pool_and_difficulty(5000)
    chosen = select("alkdrec-exact", pool, 500, 3, difficulty=df)
    g = gains(df)
    exact = maxmin_exact_proportional(
        g.log_ef, a=0.5, b=0.5, k_ef=500, k_si=2500, k_in=2000, log_gains=True
    )
    expected = pool[draw_algorithm1(exact.log_p, 500, np.random.default_rng(3))]
    np.testing.assert_array_equal(chosen, expected)
    # the optimum keeps the j* hardest, and j* differs from the closed form's k*
    closed = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, k_ef=500, k_si=2500, k_in=2000, log_gains=True
    )
    assert g.rank[np.searchsorted(pool, chosen)].max() <= exact.k_star
    assert exact.k_star != closed.k_star


def test_alkdrec_exact_recompute_drawing_at_paper_scale():
    pool, df = pool_and_difficulty(5000)
    chosen = select("alkdrec-exact", pool, 500, 0, difficulty=df, drawing="recompute")
    assert np.unique(chosen).size == 500 and np.isin(chosen, pool).all()
    np.testing.assert_array_equal(
        chosen[:20],
        select("alkdrec-exact", pool, 20, 0, difficulty=df, drawing="recompute"),
    )


def test_budget_beyond_support_names_k_star():
    pool, df = pool_and_difficulty(10)  # mu = 10, 1:5:4 -> k* = 9
    with pytest.raises(ValueError, match="k_star=9"):
        select("alkdrec", pool, 10, 0, difficulty=df)


@pytest.mark.parametrize(
    "args,match",
    [
        (dict(strategy="best"), "unknown strategy 'best'"),
        (dict(budget=201), "budget"),
        (dict(budget=0), "budget"),
        (dict(pool_ids=np.array([], dtype=int)), "empty"),
        (dict(pool_ids=np.array([1, 1, 2])), "duplicate"),
        (dict(difficulty=None), "needs difficulty"),
        (dict(drawing="greedy"), "unknown drawing 'greedy'"),
        (dict(strategy="authors"), "needs authors_ids"),
    ],
)
def test_select_errors(args, match):
    pool, df = pool_and_difficulty()
    call = dict(strategy="alkdrec", pool_ids=pool, budget=10, seed=0, difficulty=df)
    call.update(args)
    with pytest.raises(ValueError, match=match):
        select(**call)


def test_selection_config_defaults_and_validation():
    cfg = SelectionConfig()
    assert (cfg.strategy, cfg.budget, cfg.ratios, cfg.mu, cfg.drawing) == (
        "alkdrec",
        500,
        (1.0, 5.0, 4.0),
        10.0,
        "algorithm1",
    )
    assert set(STRATEGIES) >= {"alkdrec", "rad-bc", "random", "easiest", "hardest"}
    for bad in [
        dict(budget=0),
        dict(strategy="x"),
        dict(ratios=(1, 1)),
        dict(mu=-1.0),
        dict(drawing="x"),
        dict(ratios=(0, 0, 0)),
    ]:
        with pytest.raises(ValueError):
            SelectionConfig(**bad)


def test_read_base_file(tmp_path):
    good = tmp_path / "ML_random.base"
    good.write_text("12\n5\n\n7\n")
    np.testing.assert_array_equal(read_base_file(good), [12, 5, 7])
    with pytest.raises(FileNotFoundError, match="missing.base"):
        read_base_file(tmp_path / "missing.base")
    for text, match in [
        ("1\nx2\n", ":2: not a session id"),
        ("3\n3\n", "repeated"),
        ("\n", "no session ids"),
    ]:
        bad = tmp_path / "bad.base"
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_base_file(bad)


@pytest.mark.slow
def test_release_base_files_lie_in_the_train_split(data_root):
    from alkd.data import load_dataset

    ds = load_dataset("ML", data_root)
    for name in ["ALKERec", "RAD-BC", "random", "easiest", "hardest"]:
        ids = read_base_file(ds.file(f"_{name}.base"))
        assert np.isin(ids, ds.train.session_ids).all()


# ---------- difficulty ----------


def test_difficulty_matches_numpy_formula():
    torch.manual_seed(0)
    model = build_model("fpmc", n_items=7, dim=4).train()
    sessions = [[0, 1], [3], [2, 2, 5], list(range(7)) * 2]  # the last is cut to 10
    df = difficulty(model, sessions, batch_size=3)

    emb = model.item_emb.weight.detach().numpy()[1:]  # (N, d)
    trans = model.transition.weight.detach().numpy()[1:]
    expected = []
    for s in sessions:
        kept = s[-10:]
        u = emb[kept].mean(0) + trans[kept[-1]]
        expected.append(-np.mean(1 / (1 + np.exp(-(emb[kept] @ u)))))
    np.testing.assert_allclose(df, expected, rtol=1e-5)
    assert model.training  # mode restored
    np.testing.assert_allclose(difficulty(model, sessions, batch_size=1024), df)


def test_difficulty_agrees_with_model_scores():
    torch.manual_seed(1)
    model = build_model("stamp", n_items=9, dim=5)
    sessions = [[1, 4, 4, 8], [0]]
    scores = model.eval().scores(make_batch(sessions)).detach()  # (B, N)
    expected = [
        -torch.sigmoid(scores[b, s]).mean().item() for b, s in enumerate(sessions)
    ]
    np.testing.assert_allclose(difficulty(model, sessions), expected, rtol=1e-5)

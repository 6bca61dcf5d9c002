"""Tests of alkd.selection: gains, the max-min policy (closed form and LP),
the theory behind it, the selection strategies and the difficulty score."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from alkd.data import make_batch
from alkd.models import build_model
from alkd.selection import (
    STRATEGIES,
    SelectionConfig,
    difficulty,
    draw_algorithm1,
    gains,
    maxmin_exact,
    maxmin_policy,
    radbc_policy,
    ratio_counts,
    read_base_file,
    select,
    worst_case_value,
)

SIGNS = np.array([1.0, 1.0, -1.0])  # payoff of effective, similar, incorrect


# ---------- independent references ----------


def closed_form_float64(g_ef, g_si, g_in, k_ef, k_si, k_in):
    """METHOD.md 6 written out in plain float64 (sorted by g_ef here)."""
    n = len(g_ef)
    order = np.argsort(-g_ef, kind="stable")
    a, b, c = g_ef[order], g_si[order], g_in[order]
    head = np.arange(n) < k_si + k_in
    w = np.where(head, 1 / (b + c), 1 / (a + c))
    u = np.where(head, b / (b + c), a / (a + c))
    gamma = (k_ef + k_si - n + np.cumsum(u)) / np.cumsum(w)
    k = int(np.argmax(gamma)) + 1
    p = np.zeros(n)
    p[order[:k]] = w[:k] / w[:k].sum()
    return p, float(gamma[k - 1]), k


def brute_force_value(g, counts):
    """max_p min over every deterministic assignment (all label orders)."""
    n = g.shape[1]
    labels = [0] * counts[0] + [1] * counts[1] + [2] * counts[2]
    vertices = sorted(set(itertools.permutations(labels)))
    payoff = g.T * SIGNS  # (N, 3)
    rows = np.array([payoff[np.arange(n), list(v)] for v in vertices])  # (V, N)
    # variables [p (N), t]: maximise t, t <= rows @ p, sum p = 1
    res = linprog(
        np.r_[np.zeros(n), -1.0],
        A_ub=np.c_[-rows, np.ones(len(vertices))],
        b_ub=np.zeros(len(vertices)),
        A_eq=np.r_[np.ones(n), 0.0][None, :],
        b_eq=[1.0],
        bounds=[(0, None)] * n + [(None, None)],
        method="highs",
    )
    return -res.fun


def separable_optimum(g, alphas, counts):
    """Exact game value when gain_t(s) = alpha_t * g_s (paper: 1, 1/2, 1/2).

    The adversary pairs the largest p_s g_s with the lowest payoff factor
    (rearrangement), so an optimal p spreads p_s g_s evenly over the j
    largest g: value = max_j C_j / sum_{s<=j} 1/g_s, C the prefix sums of
    the factors sorted ascending.
    """
    factors = np.sort(np.repeat(np.asarray(alphas) * SIGNS, counts))
    inv = np.cumsum(1 / np.sort(g)[::-1])
    return float(np.max(np.cumsum(factors) / inv))


def random_game(rng, n, proportional):
    counts = tuple(int(c) for c in rng.multinomial(n, rng.dirichlet(np.ones(3))))
    if proportional:
        g = rng.uniform(0.05, 1.0, n)
        a, b = rng.uniform(0.05, 1.0), rng.uniform(0.05, 2.0)
        return np.stack([g, a * g, b * g]), counts
    return rng.uniform(0.05, 1.0, (3, n)), counts


def kwargs(counts):
    return dict(zip(("k_ef", "k_si", "k_in"), counts, strict=True))


# ---------- counts and gains ----------


def test_ratio_counts_known_answers():
    assert ratio_counts(10) == (1, 5, 4)
    assert ratio_counts(7) == (1, 3, 3)  # quotas 0.7, 3.5, 2.8
    assert ratio_counts(0) == (0, 0, 0)
    assert ratio_counts(5, (0.6, 0.4)) == (3, 2)
    assert ratio_counts(3, (1, 1, 1, 1)) == (1, 1, 1, 0)  # ties to earlier
    for n in range(0, 60):
        assert sum(ratio_counts(n, (1, 5, 4))) == n


@pytest.mark.parametrize("bad", [(1, -1, 2), (0, 0, 0), (1, float("nan"), 1)])
def test_ratio_counts_rejects_bad_ratios(bad):
    with pytest.raises(ValueError, match="ratios"):
        ratio_counts(10, bad)


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


# ---------- closed form ----------


def test_closed_form_hand_computed_example():
    # N = 5, mu = 1, counts 1:3:1, m = 4: w = (1, 2, 3, 4, 10/3), H_5 = 40/3,
    # G_5 = 4/2 + 2/3, Gamma(5) = (1 + 3 - 5 + 8/3) / (40/3) = 1/8 (the max)
    g = 1 / np.arange(1, 6)
    pol = maxmin_policy(g, g / 2, g / 2, k_ef=1, k_si=3, k_in=1)
    np.testing.assert_allclose(pol.p, np.array([3, 6, 9, 12, 10]) / 40, rtol=1e-12)
    assert pol.k_star == 5
    assert pol.value == pytest.approx(1 / 8, rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_log_space_matches_float64_formula(seed):
    rng = np.random.default_rng(seed)
    g, counts = random_game(rng, int(rng.integers(1, 40)), proportional=seed % 2)
    perm = rng.permutation(g.shape[1])
    g = g[:, perm]
    pol = maxmin_policy(*g, **kwargs(counts))
    p, value, k = closed_form_float64(*g, *counts)
    np.testing.assert_allclose(pol.p, p, rtol=1e-10, atol=1e-15)
    assert pol.value == pytest.approx(value, rel=1e-10)
    assert pol.k_star == k
    logged = maxmin_policy(*np.log(g), **kwargs(counts), log_gains=True)
    np.testing.assert_allclose(logged.p, pol.p, rtol=1e-12, atol=1e-15)


def test_counts_are_checked():
    g = np.ones(4)
    with pytest.raises(ValueError, match="pool size 4"):
        maxmin_policy(g, g, g, k_ef=1, k_si=1, k_in=1)
    with pytest.raises(ValueError, match="k_si"):
        maxmin_policy(g, g, g, k_ef=3, k_si=-1, k_in=2)
    with pytest.raises(ValueError, match="positive"):
        maxmin_policy(-g, g, g, k_ef=1, k_si=1, k_in=2)


def test_sanity_figures_at_n_10000():
    g = gains(np.random.default_rng(0).normal(size=10_000), mu=10.0)
    pol = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, k_ef=1000, k_si=5000, k_in=4000, log_gains=True
    )
    assert round(pol.k_star / 10_000, 3) == 0.937
    rad = radbc_policy(g.log_ef, correct_fraction=0.6, log_gains=True)
    assert rad.k_star / 10_000 == pytest.approx(0.66, abs=0.005)


def test_million_instances_in_log_space():
    n = 1_000_000
    g = gains(-np.arange(n, dtype=np.float64), mu=10.0)
    pol = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, **kwargs(ratio_counts(n)), log_gains=True
    )
    assert np.all(np.isfinite(pol.p))
    assert abs(pol.p.sum() - 1) < 1e-9
    assert pol.k_star / n == pytest.approx(0.937, abs=1e-3)
    assert np.isfinite(pol.value) and pol.value > 0


def test_value_underflow_keeps_log_value():
    # mu = 200: weights r^200 reach 10^800, far beyond float64
    g = gains(-np.arange(10_000, dtype=np.float64), mu=200.0)
    pol = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, k_ef=1000, k_si=5000, k_in=4000, log_gains=True
    )
    assert abs(pol.p.sum() - 1) < 1e-9
    assert pol.value == 0.0 and pol.sign == 1
    assert -np.inf < pol.log_abs_value < -700 * np.log(10)


# ---------- the theory ----------


@pytest.mark.parametrize("seed", range(30))
def test_theorem1_holds_for_proportional_gains(seed):
    rng = np.random.default_rng(100 + seed)
    g, counts = random_game(rng, int(rng.integers(4, 13)), proportional=True)
    pol = maxmin_policy(*g, **kwargs(counts))
    worst = worst_case_value(pol.p, *g, *counts)
    assert worst == pytest.approx(pol.value, rel=1e-9, abs=1e-12)


def test_theorem1_fails_for_general_gains_known_counterexample():
    # N = 3, one of each effect, g_in varies: p* = (15, 6, 10)/31, Gamma = 11/31,
    # but incorrect on s0, similar on s2, effective on s1 pays (-15+12+10)/31
    g = np.array([[2.0, 2, 2], [1, 1, 1], [1, 4, 1]])
    pol = maxmin_policy(*g, k_ef=1, k_si=1, k_in=1)
    np.testing.assert_allclose(pol.p, np.array([15, 6, 10]) / 31, rtol=1e-12)
    assert pol.value == pytest.approx(float(Fraction(11, 31)), rel=1e-12)
    assert worst_case_value(pol.p, *g, 1, 1, 1) == pytest.approx(7 / 31, rel=1e-9)
    assert maxmin_exact(*g, k_ef=1, k_si=1, k_in=1).value == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(20))
def test_closed_form_worst_case_never_above_gamma(seed):
    rng = np.random.default_rng(200 + seed)
    g, counts = random_game(rng, int(rng.integers(4, 13)), proportional=False)
    pol = maxmin_policy(*g, **kwargs(counts))
    assert worst_case_value(pol.p, *g, *counts) <= pol.value + 1e-12


@pytest.mark.parametrize("seed", range(24))
def test_exact_solver_matches_brute_force(seed):
    rng = np.random.default_rng(300 + seed)
    g, counts = random_game(rng, int(rng.integers(2, 8)), proportional=seed % 2)
    exact = maxmin_exact(*g, **kwargs(counts))
    assert exact.value == pytest.approx(brute_force_value(g, counts), rel=1e-9)
    assert worst_case_value(exact.p, *g, *counts) == pytest.approx(
        exact.value, rel=1e-9, abs=1e-12
    )
    closed = maxmin_policy(*g, **kwargs(counts))
    assert worst_case_value(closed.p, *g, *counts) <= exact.value + 1e-12


def test_known_counterexample_closed_form_below_optimum():
    g = 1 / np.arange(1, 6)  # N = 5, mu = 1, counts 1:3:1
    closed = maxmin_policy(g, g / 2, g / 2, k_ef=1, k_si=3, k_in=1)
    exact = maxmin_exact(g, g / 2, g / 2, k_ef=1, k_si=3, k_in=1)
    assert closed.value == pytest.approx(0.125, rel=1e-12)
    assert exact.value == pytest.approx(2 / 15, rel=1e-9)
    np.testing.assert_allclose(exact.p, np.arange(1, 6) / 15, atol=1e-9)


@pytest.mark.parametrize("mu,n", [(1.0, 40), (2.0, 30), (10.0, 15), (10.0, 50)])
def test_exact_solver_matches_separable_optimum_in_paper_setting(mu, n):
    g = gains(np.linspace(1, 0, n), mu)
    counts = ratio_counts(n)
    exact = maxmin_exact(g.log_ef, g.log_si, g.log_in, **kwargs(counts), log_gains=True)
    expected = separable_optimum(np.exp(g.log_ef), (1, 0.5, 0.5), counts)
    assert exact.value == pytest.approx(expected, rel=1e-9)
    closed = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, **kwargs(counts), log_gains=True
    )
    assert closed.value <= exact.value * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_radbc_closed_form_is_the_two_effect_optimum(seed):
    g = np.random.default_rng(400 + seed).uniform(0.05, 1, 9)
    k_c, k_wrong = ratio_counts(9, (0.6, 0.4))
    rad = radbc_policy(g, correct_fraction=0.6)
    exact = maxmin_exact(g, g, g / 2, k_ef=0, k_si=k_c, k_in=k_wrong)
    assert rad.value == pytest.approx(exact.value, rel=1e-9)
    assert worst_case_value(rad.p, g, g, g / 2, 0, k_c, k_wrong) == pytest.approx(
        rad.value, rel=1e-9
    )


def test_exact_solver_refuses_ill_conditioned_pools():
    big = np.ones(2001)
    with pytest.raises(ValueError, match="2001"):
        maxmin_exact(big, big, big, k_ef=1, k_si=1000, k_in=1000)
    g = gains(np.linspace(1, 0, 100), mu=10.0)  # spans 1e20
    with pytest.raises(ValueError, match="span"):
        maxmin_exact(
            g.log_ef, g.log_si, g.log_in, k_ef=10, k_si=50, k_in=40, log_gains=True
        )


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


@pytest.mark.parametrize("strategy", ["alkdrec", "rad-bc", "random"])
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


def test_authors_and_exact_strategies():
    pool, df = pool_and_difficulty(80)
    authors = pool[::-1]
    np.testing.assert_array_equal(
        select("authors", pool, 5, 0, authors_ids=authors), authors[:5]
    )
    with pytest.raises(ValueError, match="not in pool_ids"):
        select("authors", pool, 2, 0, authors_ids=[pool[0], 999_999])
    chosen = select("alkdrec-exact", pool, 10, 0, difficulty=df, mu=1.0)
    assert np.unique(chosen).size == 10
    with pytest.raises(ValueError, match="span"):
        select("alkdrec-exact", pool, 10, 0, difficulty=df)  # mu = 10, N = 80


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
def test_release_base_files_lie_in_the_train_split():
    from alkd.data import load_dataset

    ds = load_dataset("ML", "/work/shared/data/alkdrec")
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

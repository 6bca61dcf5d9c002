"""Tests of alkd.maxmin: the max-min game's closed form, its exact optimum
for proportional gains, the LP solver and the theory behind them."""

from __future__ import annotations

import itertools
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.optimize import linprog

from alkd.maxmin import (
    maxmin_exact,
    maxmin_exact_proportional,
    maxmin_policy,
    radbc_policy,
    ratio_counts,
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


def paper_gains(n, mu, rng=None):
    """Log-gains of METHOD.md 6 (r^-mu, halves) for ranks 1..n, shuffled by rng."""
    r = np.arange(1, n + 1, dtype=np.float64)
    if rng is not None:
        r = rng.permutation(r)
    log_ef = -mu * np.log(r)
    return SimpleNamespace(
        log_ef=log_ef, log_si=log_ef - np.log(2), log_in=log_ef - np.log(2)
    )


# ---------- counts ----------


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
    g = paper_gains(10_000, 10.0, np.random.default_rng(0))
    pol = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, k_ef=1000, k_si=5000, k_in=4000, log_gains=True
    )
    assert round(pol.k_star / 10_000, 3) == 0.937
    rad = radbc_policy(g.log_ef, correct_fraction=0.6, log_gains=True)
    assert rad.k_star / 10_000 == pytest.approx(0.66, abs=0.005)


def test_million_instances_in_log_space():
    n = 1_000_000
    g = paper_gains(n, 10.0)
    pol = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, **kwargs(ratio_counts(n)), log_gains=True
    )
    assert np.all(np.isfinite(pol.p))
    assert abs(pol.p.sum() - 1) < 1e-9
    assert pol.k_star / n == pytest.approx(0.937, abs=1e-3)
    assert np.isfinite(pol.value) and pol.value > 0


def test_value_underflow_keeps_log_value():
    # mu = 200: weights r^200 reach 10^800, far beyond float64
    g = paper_gains(10_000, 200.0)
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
    g = paper_gains(n, mu)
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
    g = paper_gains(100, 10.0)  # spans 1e20
    with pytest.raises(ValueError, match="span"):
        maxmin_exact(
            g.log_ef, g.log_si, g.log_in, k_ef=10, k_si=50, k_in=40, log_gains=True
        )


# ---------- exact optimum for proportional gains ----------


FAMILIES = ("uniform", "1", "2", "10")  # g_ef uniform, or r^-mu with this mu


def proportional_game(rng, n, family):
    """(g_ef, a, b, counts): g_ef uniform or the paper's r^-mu, shuffled."""
    counts = tuple(int(c) for c in rng.multinomial(n, rng.dirichlet(np.ones(3))))
    a, b = rng.uniform(0.05, 1.0), rng.uniform(0.05, 2.0)
    if family == "uniform":
        return rng.uniform(0.05, 1.0, n), a, b, counts
    mu = float(family)
    return rng.permutation(np.arange(1, n + 1, dtype=np.float64)) ** -mu, a, b, counts


def test_exact_proportional_hand_computed_example():
    # N = 5, mu = 1, counts 1:3:1, a = b = 1/2: factors -1/2, 1/2 x3, 1, so
    # C = (-1/2, 0, 1/2, 1, 2), H = (1, 3, 6, 10, 15): C/H is largest at j = 5
    g = 1 / np.arange(1, 6)
    pol = maxmin_exact_proportional(g, a=0.5, b=0.5, k_ef=1, k_si=3, k_in=1)
    assert pol.value == pytest.approx(2 / 15, rel=1e-12)
    assert pol.k_star == 5
    np.testing.assert_allclose(pol.p, np.arange(1, 6) / 15, rtol=1e-12)


def test_exact_proportional_negative_value_goes_to_the_easiest():
    # all answers incorrect: the least bad is all mass on the smallest gain
    g = np.array([0.5, 1.0, 0.25])
    pol = maxmin_exact_proportional(g, a=0.5, b=1.0, k_ef=0, k_si=0, k_in=3)
    assert pol.value == pytest.approx(-0.25, rel=1e-12)
    np.testing.assert_array_equal(pol.p, [0.0, 0.0, 1.0])
    # one similar, one incorrect: p = (1, 2)/3 equalises q = p g at 1/3,
    # payoff 1/3 (1/2 - 1) = -1/6; all mass on the easier one pays -1/2
    pol = maxmin_exact_proportional(g[:2], a=0.5, b=1.0, k_ef=0, k_si=1, k_in=1)
    assert pol.value == pytest.approx(-1 / 6, rel=1e-12)
    np.testing.assert_allclose(pol.p, [2 / 3, 1 / 3], rtol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", range(10))
def test_exact_proportional_matches_lp(family, seed):
    rng = np.random.default_rng([500 + seed, FAMILIES.index(family)])
    g, a, b, counts = proportional_game(rng, int(rng.integers(4, 41)), family)
    pol = maxmin_exact_proportional(g, a=a, b=b, **kwargs(counts))
    lp = maxmin_exact(g, a * g, b * g, **kwargs(counts))
    assert pol.value == pytest.approx(lp.value, rel=1e-9)
    worst = worst_case_value(pol.p, g, a * g, b * g, *counts)
    assert worst == pytest.approx(pol.value, rel=1e-9)
    assert abs(pol.p.sum() - 1) < 1e-12 and pol.k_star == (pol.p > 0).sum()


@pytest.mark.parametrize("seed", range(6))
def test_exact_proportional_with_similar_above_effective(seed):
    # a > 1 puts the similar factor above the effective one in the ordering
    rng = np.random.default_rng(600 + seed)
    g, _, b, counts = proportional_game(rng, int(rng.integers(4, 30)), "uniform")
    a = rng.uniform(1.0, 3.0)
    pol = maxmin_exact_proportional(g, a=a, b=b, **kwargs(counts))
    lp = maxmin_exact(g, a * g, b * g, **kwargs(counts))
    assert pol.value == pytest.approx(lp.value, rel=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", range(10))
def test_exact_proportional_never_below_closed_form(family, seed):
    rng = np.random.default_rng([700 + seed, FAMILIES.index(family)])
    n = int(rng.integers(4, 2000))
    g, a, b, counts = proportional_game(rng, n, family)
    exact = maxmin_exact_proportional(g, a=a, b=b, **kwargs(counts))
    closed = maxmin_policy(g, a * g, b * g, **kwargs(counts))
    assert exact.value >= closed.value - 1e-12 * abs(closed.value)


def test_exact_proportional_log_gains_and_input_order():
    rng = np.random.default_rng(8)
    g = rng.uniform(0.05, 1.0, 30)
    perm = rng.permutation(30)
    kw = dict(a=0.3, b=0.7, k_ef=4, k_si=16, k_in=10)
    pol = maxmin_exact_proportional(g, **kw)
    np.testing.assert_allclose(
        maxmin_exact_proportional(np.log(g), **kw, log_gains=True).p, pol.p
    )
    np.testing.assert_allclose(maxmin_exact_proportional(g[perm], **kw).p, pol.p[perm])


@pytest.mark.parametrize("mu,n", [(1.0, 1000), (2.0, 1000), (10.0, 10_000)])
def test_exact_proportional_matches_separable_float64(mu, n):
    g = paper_gains(n, mu, np.random.default_rng(9))
    counts = ratio_counts(n)
    pol = maxmin_exact_proportional(
        g.log_ef, a=0.5, b=0.5, **kwargs(counts), log_gains=True
    )
    expected = separable_optimum(np.exp(g.log_ef), (1, 0.5, 0.5), counts)
    assert pol.value == pytest.approx(expected, rel=1e-9)


def test_exact_proportional_million_instances_in_log_space():
    n = 1_000_000
    g = paper_gains(n, 10.0)
    pol = maxmin_exact_proportional(
        g.log_ef, a=0.5, b=0.5, **kwargs(ratio_counts(n)), log_gains=True
    )
    assert np.all(np.isfinite(pol.p)) and abs(pol.p.sum() - 1) < 1e-9
    # p grows like r^10 over the j* hardest: the last kept rank has the most
    assert int(np.argmax(pol.p)) == pol.k_star - 1
    # float64 holds r^10 up to 1e60, so the plain formula is a reference here
    expected = separable_optimum(np.exp(g.log_ef), (1, 0.5, 0.5), ratio_counts(n))
    assert pol.value == pytest.approx(expected, rel=1e-9)
    closed = maxmin_policy(
        g.log_ef, g.log_si, g.log_in, **kwargs(ratio_counts(n)), log_gains=True
    )
    assert pol.value > closed.value


@pytest.mark.parametrize(
    "kw,match",
    [(dict(a=0.0), "a must"), (dict(b=float("nan")), "b must"), (dict(k_in=3), "pool")],
)
def test_exact_proportional_rejects_bad_arguments(kw, match):
    call = dict(a=0.5, b=0.5, k_ef=1, k_si=1, k_in=2)
    with pytest.raises(ValueError, match=match):
        maxmin_exact_proportional(np.ones(4), **{**call, **kw})


def game_with_support_within_m(rng):
    """A proportional game with k_ef > 0 whose optimum has j* <= m, value > 0."""
    for _ in range(1000):
        n = int(rng.integers(10, 60))
        k_ef, k_in = int(rng.integers(1, 4)), int(rng.integers(0, n // 3))
        counts = (k_ef, n - k_ef - k_in, k_in)
        g, a, b = rng.uniform(0.05, 1.0, n), rng.uniform(0.05, 1), rng.uniform(0.05, 2)
        exact = maxmin_exact_proportional(g, a=a, b=b, **kwargs(counts))
        if exact.value > 0 and exact.k_star <= n - k_ef:
            return g, a, b, counts, exact
    raise AssertionError("no such game in 1000 draws")


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_is_exact_when_optimum_support_within_m(seed):
    # for j in [k_in, m] Gamma(j) equals C_j / H_j, so j* <= m leaves no gap
    g, a, b, counts, exact = game_with_support_within_m(np.random.default_rng(seed))
    closed = maxmin_policy(g, a * g, b * g, **kwargs(counts))
    assert closed.value == pytest.approx(exact.value, rel=1e-12)
    np.testing.assert_allclose(closed.p, exact.p, rtol=1e-10, atol=1e-15)

"""Closed-form max-min policy (Definition 1) against the exact optimum.

Prints three tables:

1. random small games (N 4..12): how often Theorem 1's equality
   ``min_c z(p*, c) = Gamma(k*)`` holds, and how far the closed form's
   guarantee falls short of the LP optimum;
2. the paper's setting (g_si = g_in = g_ef / 2, g_ef = r^-mu, 1:5:4) for
   mu in {1, 2, 10} and growing N: Gamma(k*) against the exact optimum, from
   the LP where it is allowed and from the separable formula everywhere;
3. RAD-BC's closed form against its 2-effect LP optimum.

Run: ``python benchmarks/maxmin_sweep.py [--games 400] [--json out.json]``
(about a minute on one CPU core).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alkd.io import atomic_write_json
from alkd.selection import (
    EXACT_MAX_POOL,
    EXACT_MAX_SPAN,
    gains,
    maxmin_exact,
    maxmin_policy,
    radbc_policy,
    ratio_counts,
    worst_case_value,
)

SIGNS = np.array([1.0, 1.0, -1.0])


def separable_log_optimum(log_g: np.ndarray, alphas, counts) -> tuple[float, int]:
    """Exact log value and support when gain_t(s) = alpha_t * g_s.

    The adversary gives the largest ``p_s g_s`` the lowest payoff factor
    (rearrangement inequality), so an optimal p makes ``p_s g_s`` equal on
    the j largest g: value = max_j C_j / sum_{s<=j} 1/g_s with C the prefix
    sums of the payoff factors sorted ascending. Needs a positive optimum.
    """
    factors = np.sort(np.repeat(np.asarray(alphas) * SIGNS, counts))
    c = np.cumsum(factors)
    log_h = np.logaddexp.accumulate(-np.sort(log_g)[::-1])
    score = np.where(c > 0, np.log(np.where(c > 0, c, 1.0)) - log_h, -np.inf)
    j = int(np.argmax(score))
    return float(score[j]), j + 1


def random_game(rng, n, family):
    counts = tuple(int(c) for c in rng.multinomial(n, rng.dirichlet(np.ones(3))))
    g = rng.uniform(0.05, 1.0, n)
    if family == "paper (a=b=1/2)":
        return np.stack([g, g / 2, g / 2]), counts
    if family == "proportional a<=1":
        a, b = rng.uniform(0.05, 1.0), rng.uniform(0.05, 2.0)
        return np.stack([g, a * g, b * g]), counts
    if family == "g_si<=g_ef, free g_in":
        return np.stack([g, g * rng.uniform(0, 1, n), rng.uniform(0.05, 1, n)]), counts
    return rng.uniform(0.05, 1.0, (3, n)), counts


def sweep_random(n_games: int, seed: int) -> list[dict]:
    """Table 1: Theorem 1 and the shortfall on random small games."""
    rng = np.random.default_rng(seed)
    families = ["paper (a=b=1/2)", "proportional a<=1", "g_si<=g_ef, free g_in", "iid"]
    rows = []
    for family in families:
        thm1, short, gamma_above_opt, flips, ratios = 0, 0, 0, 0, []
        for _ in range(n_games):
            g, counts = random_game(rng, int(rng.integers(4, 13)), family)
            kw = dict(zip(("k_ef", "k_si", "k_in"), counts, strict=True))
            closed, exact = maxmin_policy(*g, **kw), maxmin_exact(*g, **kw)
            worst = worst_case_value(closed.p, *g, *counts)
            tol = 1e-9 * max(1.0, abs(exact.value))
            thm1 += abs(worst - closed.value) <= tol
            short += worst < exact.value - tol
            gamma_above_opt += closed.value > exact.value + tol
            if exact.value > 0 and worst < exact.value - tol:
                flips += worst <= 0
                if worst > 0:
                    ratios.append(worst / exact.value)
        rows.append(
            dict(
                family=family,
                games=n_games,
                theorem1_holds=thm1,
                closed_below_optimum=short,
                gamma_above_optimum=gamma_above_opt,
                guarantee_sign_flips=flips,
                ratio_min=min(ratios, default=1.0),
                ratio_median=float(np.median(ratios)) if ratios else 1.0,
            )
        )
    return rows


def paper_point(mu: float, n: int) -> dict:
    """Table 2 row: one (mu, N) of the paper's gain family."""
    g = gains(np.linspace(1.0, 0.0, n), mu)
    counts = ratio_counts(n)
    kw = dict(zip(("k_ef", "k_si", "k_in"), counts, strict=True))
    closed = maxmin_policy(g.log_ef, g.log_si, g.log_in, **kw, log_gains=True)
    log_opt, j_star = separable_log_optimum(g.log_ef, (1, 0.5, 0.5), counts)
    row = dict(
        mu=mu,
        n=n,
        k_star_over_n=closed.k_star / n,
        j_star_over_n=j_star / n,
        closed_over_optimum=float(np.exp(closed.log_abs_value - log_opt)),
        lp_vs_formula=None,
    )
    span = float(g.log_ef.max() - g.log_si.min())
    if n <= EXACT_MAX_POOL and span <= np.log(EXACT_MAX_SPAN):
        lp = maxmin_exact(g.log_ef, g.log_si, g.log_in, **kw, log_gains=True)
        row["lp_vs_formula"] = float(np.expm1(lp.log_abs_value - log_opt))
    return row


def sweep_radbc(seed: int, n_games: int = 50) -> dict:
    """Table 3: RAD-BC closed form against the 2-effect LP optimum."""
    rng = np.random.default_rng(seed)
    worst_gap = 0.0
    for _ in range(n_games):
        n = int(rng.integers(4, 60))
        g = rng.uniform(0.05, 1.0, n)
        k_c, k_wrong = ratio_counts(n, (0.6, 0.4))
        rad = radbc_policy(g, correct_fraction=0.6)
        exact = maxmin_exact(g, g, g / 2, k_ef=0, k_si=k_c, k_in=k_wrong)
        worst_gap = max(worst_gap, abs(rad.value / exact.value - 1))
    return dict(games=n_games, max_relative_gap=worst_gap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the tables here")
    args = parser.parse_args()
    start = time.perf_counter()

    rand = sweep_random(args.games, args.seed)
    print("1. random games, N 4..12: closed-form p* against the LP optimum")
    print(
        f"{'family':24s} {'games':>5s} {'thm1 eq':>7s} {'closed<opt':>10s} "
        f"{'Gamma>opt':>9s} {'flips':>5s} {'min ratio':>9s} {'median':>7s}"
    )
    for r in rand:
        print(
            f"{r['family']:24s} {r['games']:5d} {r['theorem1_holds']:7d} "
            f"{r['closed_below_optimum']:10d} {r['gamma_above_optimum']:9d} "
            f"{r['guarantee_sign_flips']:5d} {r['ratio_min']:9.4f} "
            f"{r['ratio_median']:7.4f}"
        )
    print(
        "   thm1 eq: min_c z(p*, c) == Gamma(k*); closed<opt: that guarantee is"
        " below the LP optimum;\n   flips: optimum > 0 >= guarantee; ratio ="
        " guarantee / optimum where both > 0 and they differ\n"
    )

    sizes = [5, 10, 20, 50, 100, 200, 1000, 10_000, 1_000_000]
    paper = [paper_point(mu, n) for mu in (1.0, 2.0, 10.0) for n in sizes]
    print("2. paper's gains (g_si = g_in = g_ef/2, g_ef = r^-mu), ratios 1:5:4")
    print(
        f"{'mu':>4s} {'N':>8s} {'k*/N':>7s} {'j*/N':>7s} {'Gamma/opt':>9s} "
        f"{'LP vs formula':>13s}"
    )
    for r in paper:
        lp = "-" if r["lp_vs_formula"] is None else f"{r['lp_vs_formula']:.1e}"
        print(
            f"{r['mu']:4.0f} {r['n']:8d} {r['k_star_over_n']:7.4f} "
            f"{r['j_star_over_n']:7.4f} {r['closed_over_optimum']:9.5f} {lp:>13s}"
        )
    print("   k* closed-form support, j* optimal support; '-': LP refused\n")

    rad = sweep_radbc(args.seed)
    print(
        f"3. RAD-BC closed form vs 2-effect LP, {rad['games']} games: "
        f"max |value ratio - 1| = {rad['max_relative_gap']:.1e}"
    )
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        atomic_write_json(args.json, dict(random=rand, paper=paper, radbc=rad))


if __name__ == "__main__":
    main()

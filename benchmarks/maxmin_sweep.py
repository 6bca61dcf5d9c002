"""Closed-form max-min policy (Definition 1) against the game's exact optimum.

Prints five tables:

1. random small games (N 4..12): how often Theorem 1's equality
   ``min_c z(p*, c) = Gamma(k*)`` holds, and how far the closed form's
   guarantee falls short of the LP optimum;
2. hand-sized examples: the N = 3 counterexample to Theorem 1 and the
   N = 5, mu = 1, 1:3:1 game where the closed form is not optimal;
3. the paper's setting (g_ef = r^-mu, g_si = g_in = g_ef / 2, 1:5:4) for
   mu in {1, 2, 10} and N in {10, 100, 1000, 10^4}: Gamma(k*) against the
   exact optimum (``maxmin_exact_proportional``, checked by the LP where the
   LP is allowed), the supports k* and j*, and where each policy puts 10, 50
   and 90 % of its mass along the difficulty ranks;
4. how many of 500 sessions drawn from a pool of 5,000 (Algorithm 1) the
   two policies share;
5. RAD-BC's closed form against its 2-effect LP optimum.

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
    MaxMinPolicy,
    gains,
    maxmin_exact,
    maxmin_exact_proportional,
    maxmin_policy,
    radbc_policy,
    ratio_counts,
    select,
    worst_case_value,
)

MUS = (1.0, 2.0, 10.0)
SIZES = (10, 100, 1000, 10_000)
MASS_LEVELS = (0.1, 0.5, 0.9)


def counts_kw(counts) -> dict:
    return dict(zip(("k_ef", "k_si", "k_in"), counts, strict=True))


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
            kw = counts_kw(counts)
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


def hand_examples() -> dict:
    """Table 2: the two hand-sized games quoted in docs/maxmin.md."""
    g3 = np.array([[2.0, 2, 2], [1, 1, 1], [1, 4, 1]])  # g_in varies per session
    closed3 = maxmin_policy(*g3, k_ef=1, k_si=1, k_in=1)
    g5 = 1 / np.arange(1, 6)
    kw5 = dict(k_ef=1, k_si=3, k_in=1)
    return dict(
        n3_gamma=closed3.value,
        n3_closed_worst_case=worst_case_value(closed3.p, *g3, 1, 1, 1),
        n3_lp_optimum=maxmin_exact(*g3, k_ef=1, k_si=1, k_in=1).value,
        n5_closed=maxmin_policy(g5, g5 / 2, g5 / 2, **kw5).value,
        n5_exact=maxmin_exact_proportional(g5, a=0.5, b=0.5, **kw5).value,
        n5_lp=maxmin_exact(g5, g5 / 2, g5 / 2, **kw5).value,
    )


def mass_quantiles(policy: MaxMinPolicy, order: np.ndarray) -> list[float]:
    """Rank / N by which ``policy`` holds 10, 50, 90 % of its mass (hardest first)."""
    cum = np.cumsum(policy.p[order])
    n = order.size
    return [(int(np.searchsorted(cum, x)) + 1) / n for x in MASS_LEVELS]


def paper_point(mu: float, n: int) -> dict:
    """Table 3 row: one (mu, N) of the paper's gain family."""
    g = gains(np.linspace(1.0, 0.0, n), mu)
    kw = counts_kw(ratio_counts(n))
    closed = maxmin_policy(g.log_ef, g.log_si, g.log_in, **kw, log_gains=True)
    exact = maxmin_exact_proportional(g.log_ef, a=0.5, b=0.5, **kw, log_gains=True)
    row = dict(
        mu=mu,
        n=n,
        closed_value=closed.value,
        exact_value=exact.value,
        closed_over_exact=float(np.exp(closed.log_abs_value - exact.log_abs_value)),
        k_star_over_n=closed.k_star / n,
        j_star_over_n=exact.k_star / n,
        closed_mass_at=mass_quantiles(closed, g.order),
        exact_mass_at=mass_quantiles(exact, g.order),
        lp_vs_exact=None,
    )
    span = float(g.log_ef.max() - g.log_si.min())
    if n <= EXACT_MAX_POOL and span <= np.log(EXACT_MAX_SPAN):
        lp = maxmin_exact(g.log_ef, g.log_si, g.log_in, **kw, log_gains=True)
        row["lp_vs_exact"] = float(np.expm1(lp.log_abs_value - exact.log_abs_value))
    return row


def million_point() -> dict:
    """N = 10^6, mu = 10: the exact policy's run time in log space."""
    n = 1_000_000
    g = gains(-np.arange(n, dtype=np.float64), 10.0)
    kw = counts_kw(ratio_counts(n))
    start = time.perf_counter()
    exact = maxmin_exact_proportional(g.log_ef, a=0.5, b=0.5, **kw, log_gains=True)
    seconds = time.perf_counter() - start
    closed = maxmin_policy(g.log_ef, g.log_si, g.log_in, **kw, log_gains=True)
    ratio = float(np.exp(closed.log_abs_value - exact.log_abs_value))
    return dict(n=n, seconds=seconds, j_star_over_n=exact.k_star / n, ratio=ratio)


def overlap(mu: float, n: int = 5000, budget: int = 500) -> dict:
    """Table 4: shared sessions of the two selections (Algorithm 1 drawing)."""
    pool = np.arange(n)
    df = np.random.default_rng(0).normal(size=n)

    def pick(strategy: str, seed: int) -> np.ndarray:
        return select(strategy, pool, budget, seed, difficulty=df, mu=mu)

    def shared(x: np.ndarray, y: np.ndarray) -> int:
        return int(np.intersect1d(x, y).size)

    closed0, exact0 = pick("alkdrec", 0), pick("alkdrec-exact", 0)
    return dict(
        mu=mu,
        same_seed=shared(closed0, exact0),
        seeds_0_1=shared(closed0, pick("alkdrec-exact", 1)),
        closed_self=shared(closed0, pick("alkdrec", 1)),
        exact_self=shared(exact0, pick("alkdrec-exact", 1)),
    )


def sweep_radbc(seed: int, n_games: int = 50) -> dict:
    """Table 5: RAD-BC closed form against the 2-effect LP optimum."""
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


def print_random(rows: list[dict]) -> None:
    print("1. random games, N 4..12: closed-form p* against the LP optimum")
    print(
        f"{'family':24s} {'games':>5s} {'thm1 eq':>7s} {'closed<opt':>10s} "
        f"{'Gamma>opt':>9s} {'flips':>5s} {'min ratio':>9s} {'median':>7s}"
    )
    for r in rows:
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


def print_hand(h: dict) -> None:
    print("2. hand-sized games")
    print(
        "   N = 3, one of each effect, g_ef = (2,2,2), g_si = (1,1,1), "
        f"g_in = (1,4,1): Gamma(k*) = {h['n3_gamma']:.4f}, worst case of p* = "
        f"{h['n3_closed_worst_case']:.4f}, LP optimum = {h['n3_lp_optimum']:.4f}"
    )
    print(
        "   N = 5, mu = 1, counts 1:3:1, a = b = 1/2: closed form "
        f"{h['n5_closed']:.4f}, exact {h['n5_exact']:.4f} (LP {h['n5_lp']:.4f})\n"
    )


def print_paper(rows: list[dict], million: dict) -> None:
    print("3. paper's gains (g_si = g_in = g_ef/2, g_ef = r^-mu), ratios 1:5:4")
    print(
        f"{'mu':>4s} {'N':>6s} {'closed':>10s} {'exact':>10s} {'ratio':>7s} "
        f"{'k*/N':>6s} {'j*/N':>6s} {'closed 10/50/90%':>18s} "
        f"{'exact 10/50/90%':>18s} {'LP-exact':>8s}"
    )
    for r in rows:
        lp = "-" if r["lp_vs_exact"] is None else f"{r['lp_vs_exact']:.0e}"
        cm = "/".join(f"{x:.3f}" for x in r["closed_mass_at"])
        em = "/".join(f"{x:.3f}" for x in r["exact_mass_at"])
        print(
            f"{r['mu']:4.0f} {r['n']:6d} {r['closed_value']:10.3e} "
            f"{r['exact_value']:10.3e} {r['closed_over_exact']:7.4f} "
            f"{r['k_star_over_n']:6.4f} {r['j_star_over_n']:6.4f} {cm:>18s} "
            f"{em:>18s} {lp:>8s}"
        )
    print(
        "   ratio = closed / exact value; k*, j*: supports; x/y/z: rank/N "
        "(1 = hardest) by which\n   the policy holds 10/50/90 % of its mass; "
        "LP-exact: relative gap to the LP ('-': refused)"
    )
    print(
        f"   N = 10^6, mu = 10: exact policy in {million['seconds']:.2f} s, "
        f"j*/N = {million['j_star_over_n']:.4f}, ratio = {million['ratio']:.4f}\n"
    )


def print_overlap(rows: list[dict]) -> None:
    print("4. shared sessions, budget 500 from a pool of 5,000, Algorithm 1 drawing")
    print(
        f"{'mu':>4s} {'closed0 & exact0':>16s} {'closed0 & exact1':>16s} "
        f"{'closed0 & closed1':>17s} {'exact0 & exact1':>15s}"
    )
    for r in rows:
        print(
            f"{r['mu']:4.0f} {r['same_seed']:16d} {r['seeds_0_1']:16d} "
            f"{r['closed_self']:17d} {r['exact_self']:15d}"
        )
    print(
        "   closed0: select('alkdrec', seed=0); exact0: 'alkdrec-exact', seed=0."
        " One seed gives both\n   draws the same Gumbel keys, so seed 0 vs 0 "
        "overlaps more than independent draws\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the tables here")
    args = parser.parse_args()
    start = time.perf_counter()

    rand = sweep_random(args.games, args.seed)
    print_random(rand)
    hand = hand_examples()
    print_hand(hand)
    paper = [paper_point(mu, n) for mu in MUS for n in SIZES]
    million = million_point()
    print_paper(paper, million)
    shared = [overlap(mu) for mu in MUS]
    print_overlap(shared)
    rad = sweep_radbc(args.seed)
    print(
        f"5. RAD-BC closed form vs 2-effect LP, {rad['games']} games: "
        f"max |value ratio - 1| = {rad['max_relative_gap']:.1e}"
    )
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        tables = dict(random=rand, hand=hand, paper=paper, million=million)
        atomic_write_json(args.json, dict(**tables, overlap=shared, radbc=rad))


if __name__ == "__main__":
    main()

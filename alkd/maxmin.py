"""The max-min selection game of ALKDRec's Module 3 (METHOD.md 6).

The learner picks a distribution ``p`` over the pool, the adversary labels
the instances with exactly ``k_ef`` effective, ``k_si`` similar and ``k_in``
incorrect LLM answers, and the payoff is
``sum_s p_s * (c_ef g_ef + c_si g_si - c_in g_in)`` (the paper's Eq. 3): an
incorrect answer costs ``g_in``. All gains are positive.

Three solvers: the paper's closed form (Definition 1, ``maxmin_policy``,
and RAD-BC's two-effect version ``radbc_policy``), the exact optimum for
proportional gains (``maxmin_exact_proportional``) and a linear program for
any gains (``maxmin_exact``, small pools only; the tests' oracle). The first
two work with logarithms: ``r ** -mu`` spans ``mu * log10(N)`` orders of
magnitude (60 at N = 10^6 and mu = 10; float64 covers about 600, so larger
mu or N would leave it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.special import expit, logsumexp

log = logging.getLogger(__name__)

# the exact LP is refused beyond these (see maxmin_exact)
EXACT_MAX_POOL = 2000
EXACT_MAX_SPAN = 1e18
_PAYOFF_SIGNS = np.array([1.0, 1.0, -1.0])  # effective, similar, incorrect
_LP_OPTIONS = dict(primal_feasibility_tolerance=1e-10, dual_feasibility_tolerance=1e-10)


@dataclass(frozen=True)
class MaxMinPolicy:
    """A selection distribution and the value the formula assigns it.

    ``value`` is a float64 that underflows to 0.0 (keeping ``sign``) only
    when ``|value| < 1e-308``; ``log_abs_value = log|value|`` stays finite
    then (``-inf`` iff the value is exactly 0). ``log_p`` is ``log p`` with
    ``-inf`` outside the support; it survives where ``p`` underflows.
    """

    p: np.ndarray  # (N,) pool index order, sums to 1
    log_p: np.ndarray  # (N,)
    k_star: int  # size of the support
    value: float
    log_abs_value: float
    sign: int


def _log_gain_table(g_ef, g_si, g_in, log_gains: bool) -> np.ndarray:
    """Stack the three gain vectors as logs, (N, 3); positive and finite."""
    cols = [np.asarray(g, dtype=np.float64) for g in (g_ef, g_si, g_in)]
    n = cols[0].shape
    if len(n) != 1 or n[0] == 0 or any(c.shape != n for c in cols):
        raise ValueError("g_ef, g_si, g_in must be non-empty 1-D arrays of one length")
    table = np.stack(cols, axis=1)
    if not log_gains:
        if not np.all(table > 0) or not np.all(np.isfinite(table)):
            raise ValueError("gains must be positive and finite")
        table = np.log(table)
    if not np.all(np.isfinite(table)):
        raise ValueError("log-gains must be finite")
    return table


def _check_counts(n: int, k_ef: int, k_si: int, k_in: int) -> None:
    counts = {"k_ef": k_ef, "k_si": k_si, "k_in": k_in}
    for name, k in counts.items():
        if int(k) != k or k < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {k}")
    if k_ef + k_si + k_in != n:
        raise ValueError(f"k_ef + k_si + k_in = {k_ef + k_si + k_in}, pool size {n}")


def _argmax_ratio(numer: np.ndarray, log_den: np.ndarray) -> int:
    """First index maximising ``numer / exp(log_den)`` without forming it."""
    pos = numer > 0
    if pos.any():
        safe = np.where(pos, numer, 1.0)
        return int(np.argmax(np.where(pos, np.log(safe) - log_den, -np.inf)))
    if (numer == 0).any():
        return int(np.argmax(numer == 0))
    return int(np.argmin(np.log(-numer) - log_den))


def _policy(log_p: np.ndarray, numer: float, log_den: float) -> MaxMinPolicy:
    """Normalise ``log_p`` and package the value ``numer / exp(log_den)``."""
    log_p = log_p - logsumexp(log_p)
    sign = int(np.sign(numer))
    log_abs = np.log(abs(numer)) - log_den if sign else -np.inf
    value = sign * float(np.exp(log_abs)) if sign else 0.0
    p = np.exp(log_p)
    return MaxMinPolicy(p, log_p, int(np.isfinite(log_p).sum()), value, log_abs, sign)


def maxmin_policy(
    g_ef, g_si, g_in, *, k_ef: int, k_si: int, k_in: int, log_gains: bool = False
) -> MaxMinPolicy:
    """The closed-form policy p* of Definition 1 with Gamma(k*) (METHOD.md 6).

    Instances are sorted by ``g_ef`` descending (stable) internally and ``p``
    is returned in the input order. With ``m = k_si + k_in``:
    ``w_s = 1/(g_si+g_in)`` for s <= m, ``1/(g_ef+g_in)`` beyond, ``u_s`` the
    matching ``g_si/(g_si+g_in)`` or ``g_ef/(g_ef+g_in)``, ``H_k``, ``G_k``
    their prefix sums, ``Gamma(k) = (k_ef + k_si - N + G_k) / H_k``,
    ``k* = argmax`` (the first on ties), ``p*_s = w_s / H_k*`` for s <= k*.

    ``value`` is Gamma(k*). It equals the adversary's minimum against p*
    (Theorem 1) when ``g_si = a g_ef`` and ``g_in = b g_ef`` with fixed
    ``0 < a <= 1``, ``b > 0`` (the paper's a = b = 1/2); for other gains it
    can exceed that minimum. It is not always the game's optimum: see
    ``maxmin_exact_proportional`` and ``maxmin_exact``. ``log_gains=True``
    reads the inputs as natural logs.
    """
    table = _log_gain_table(g_ef, g_si, g_in, log_gains)
    n = table.shape[0]
    _check_counts(n, k_ef, k_si, k_in)
    order = np.argsort(-table[:, 0], kind="stable")
    l_ef, l_si, l_in = table[order].T

    # the gain that pairs with g_in: similar up to m, effective beyond
    l_pair = np.where(np.arange(n) < k_si + k_in, l_si, l_ef)
    log_w = -np.logaddexp(l_pair, l_in)
    log_h = np.logaddexp.accumulate(log_w)  # log H_k
    numer = (k_ef + k_si - n) + np.cumsum(expit(l_pair - l_in))  # ... + G_k
    k = _argmax_ratio(numer, log_h) + 1

    sorted_log_p = np.full(n, -np.inf)
    sorted_log_p[:k] = log_w[:k]
    log_p = np.empty(n)
    log_p[order] = sorted_log_p
    policy = _policy(log_p, float(numer[k - 1]), float(log_h[k - 1]))
    log.debug("max-min policy: n=%d k_star=%d value=%.6g", n, k, policy.value)
    return policy


def radbc_policy(
    g, *, correct_fraction: float = 0.6, log_gains: bool = False
) -> MaxMinPolicy:
    """RAD-BC (Baykal et al. 2023) as the ALKDRec authors run it.

    Two effects: a correct answer (effective or similar) gains ``g_s``, an
    incorrect one costs ``l_s = g_s / 2``; ``k_c = round(correct_fraction N)``
    (largest remainder) answers are correct. Payoff ``p_s (c_s (g_s + l_s) -
    l_s)``. With ``p_s = w_s / H_k``, ``w = 1/(g + l)`` on the k largest g,
    the adversary puts all ``N - k_c`` incorrect answers inside the support
    (when k >= N - k_c), so ``Gamma(k) = (k_c - N + G_k) / H_k`` with
    ``G_k = sum g/(g + l)``.
    That is the 3-effect formula with ``k_ef = 0``, ``k_si = k_c``,
    ``g_si = g``, ``g_in = l`` (then m = N and only the first branch is used;
    ``g_ef = g`` just fixes the order), which is how it is computed here.
    With ``l`` proportional to ``g`` this closed form is also the exact
    optimum of the 2-effect game (the LP agrees; see the tests).
    """
    if not 0.0 <= correct_fraction <= 1.0:
        raise ValueError(f"correct_fraction must lie in [0, 1], got {correct_fraction}")
    log_g = np.asarray(g, dtype=np.float64)
    if not log_gains:
        if log_g.ndim != 1 or not np.all(log_g > 0):
            raise ValueError("g must be a 1-D array of positive gains")
        log_g = np.log(log_g)
    k_c, k_wrong = ratio_counts(log_g.size, (correct_fraction, 1 - correct_fraction))
    log_l = log_g - np.log(2.0)
    return maxmin_policy(
        log_g, log_g, log_l, k_ef=0, k_si=k_c, k_in=k_wrong, log_gains=True
    )


def ratio_counts(n: int, ratios: Sequence[float] = (1, 5, 4)) -> tuple[int, ...]:
    """Integer counts proportional to ``ratios`` that sum to ``n`` exactly.

    Largest-remainder rounding; equal remainders go to the earlier entry.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"ratios must be finite and non-negative, got {ratios}")
    if r.sum() <= 0:
        raise ValueError(f"ratios must not all be zero, got {ratios}")
    quota = int(n) * r / r.sum()
    counts = np.floor(quota).astype(np.int64)
    rest = int(n) - int(counts.sum())
    counts[np.argsort(-(quota - counts), kind="stable")[:rest]] += 1
    return tuple(int(c) for c in counts)


def _check_conditioning(table: np.ndarray) -> None:
    n = table.shape[0]
    if n > EXACT_MAX_POOL:
        raise ValueError(
            f"maxmin_exact: pool of {n} instances exceeds {EXACT_MAX_POOL}; "
            "use maxmin_policy"
        )
    span = float(table.max() - table.min())
    if span > np.log(EXACT_MAX_SPAN):
        raise ValueError(
            f"maxmin_exact: gains span 10^{span / np.log(10):.1f} (max/min), "
            f"beyond {EXACT_MAX_SPAN:.0e}; the LP is ill-conditioned there"
        )


def _budget_row(log_sigma: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Coefficients of ``sum p = 1`` in the ``y = p * sigma`` variables.

    Centred so they lie in [span^-1/2, span^1/2]; the right-hand side
    ``R = sum c`` lets ``y = 1`` be feasible. Returns (c, log R, shift) with
    ``sum p = 1  <=>  sum c y' = R`` for ``y' = y R exp(shift)``.
    """
    shift = -(log_sigma.max() + log_sigma.min()) / 2
    log_c = -log_sigma - shift
    return np.exp(log_c), float(logsumexp(log_c)), float(shift)


def _highs(cost, **constraints) -> np.ndarray:
    """Solve ``min cost @ x`` with HiGHS's dual simplex (a vertex), tightly."""
    res = linprog(cost, method="highs-ds", options=_LP_OPTIONS, **constraints)
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    return res.x


def _maxmin_lp(table: np.ndarray, counts: np.ndarray) -> MaxMinPolicy:
    """Solve the max-min game as one LP, no conditioning checks."""
    n = table.shape[0]
    log_sigma = table.max(axis=1)  # (N,) per-instance scale
    a = np.exp(table - log_sigma[:, None]) * _PAYOFF_SIGNS  # (N, 3) in [-1, 1]
    c, log_r, shift = _budget_row(log_sigma)

    # variables [y (N), alpha (N), beta (3)]; rows (s, t): alpha_s + beta_t <= a y_s
    rows = np.arange(3 * n)
    s_of, t_of = rows // 3, rows % 3
    a_ub = sparse.coo_array(
        (
            np.concatenate([-a.ravel(), np.ones(3 * n), np.ones(3 * n)]),
            (np.tile(rows, 3), np.concatenate([s_of, n + s_of, 2 * n + t_of])),
        ),
        shape=(3 * n, 2 * n + 3),
    ).tocsr()
    a_eq = sparse.csr_array(np.concatenate([c, np.zeros(n + 3)])[None, :])
    cost = -np.concatenate([np.zeros(n), np.ones(n), counts.astype(np.float64)])
    # beta_0 fixed at 0: shifting alpha up and beta down leaves everything equal
    bounds = [(0, None)] * n + [(None, None)] * n + [(0, 0), (None, None), (None, None)]
    x = _highs(
        cost,
        A_ub=a_ub,
        b_ub=np.zeros(3 * n),
        A_eq=a_eq,
        b_eq=[np.exp(log_r)],
        bounds=bounds,
    )

    y = np.clip(x[:n], 0.0, None)
    y[y < 1e-9 * y.max()] = 0.0  # solver round-off, not support
    with np.errstate(divide="ignore"):
        log_p = np.log(y) - log_sigma
    return _policy(log_p, -float(cost @ x), log_r + shift)


def maxmin_exact(
    g_ef, g_si, g_in, *, k_ef: int, k_si: int, k_in: int, log_gains: bool = False
) -> MaxMinPolicy:
    """The optimum of the max-min game by linear programming (HiGHS).

    For fixed p the adversary's problem is a transportation LP (x >= 0, row
    sums 1, column sums k); its dual, ``max sum_s alpha_s + sum_t k_t beta_t``
    s.t. ``alpha_s + beta_t <= p_s a_st``, turns max_p min_x into one LP. The
    LP runs in ``y_s = p_s * max_t g_t(s)`` so every payoff coefficient lies
    in [-1, 1] and the budget row ``sum p = 1`` in [span^-1/2, span^1/2].
    Refused (ValueError) when N > EXACT_MAX_POOL (2000, a few seconds) or
    when max/min over all gains exceeds EXACT_MAX_SPAN (1e18): beyond that
    HiGHS drops budget coefficients under 1e-9 and, past 1e30, refuses the
    model. At mu = 10 (with g/2) the rule allows N <= 61.
    """
    table = _log_gain_table(g_ef, g_si, g_in, log_gains)
    _check_counts(table.shape[0], k_ef, k_si, k_in)
    _check_conditioning(table)
    return _maxmin_lp(table, np.array([k_ef, k_si, k_in]))


def worst_case_value(
    p, g_ef, g_si, g_in, k_ef: int, k_si: int, k_in: int, *, log_gains: bool = False
) -> float:
    """The adversary's minimum of the payoff against a fixed ``p`` (an LP).

    The transportation polytope's vertices are deterministic assignments,
    so the optimum is rounded to one and its payoff evaluated exactly. Plain
    float64: meant for pools whose gains (times p) fit in it.
    """
    table = _log_gain_table(g_ef, g_si, g_in, log_gains)
    n = table.shape[0]
    _check_counts(n, k_ef, k_si, k_in)
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n,) or np.any(p < 0):
        raise ValueError(f"p must be a non-negative array of length {n}")
    coef = p[:, None] * np.exp(table) * _PAYOFF_SIGNS  # (N, 3)
    scale = np.abs(coef).max() or 1.0

    rows_s = sparse.kron(sparse.eye_array(n), np.ones((1, 3)))  # (N, 3N)
    cols_t = sparse.kron(np.ones((1, n)), sparse.eye_array(3))  # (3, 3N)
    a_eq = sparse.vstack([rows_s, cols_t]).tocsr()
    b_eq = np.concatenate([np.ones(n), [k_ef, k_si, k_in]])
    x = _highs((coef / scale).ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, 1))
    vertex = np.rint(x.reshape(n, 3))
    if np.all(vertex.sum(1) == 1) and np.array_equal(vertex.sum(0), b_eq[n:]):
        return float((coef * vertex).sum())
    return float((coef.ravel() * x).sum())


def _factor_prefix_sums(n: int, factors: Sequence[tuple[float, int]]) -> np.ndarray:
    """``C_j``, the sum of the j smallest payoff factors (value, count), (N,).

    Written per segment rather than as a running sum so that each ``C_j`` is
    one product and one sum per factor value: no drift over a million terms.
    """
    j = np.arange(1, n + 1, dtype=np.float64)
    c = np.zeros(n)
    start = 0
    for f, k in sorted(factors):
        c += f * np.clip(j - start, 0, k)
        start += k
    return c


def maxmin_exact_proportional(
    g_ef,
    *,
    a: float,
    b: float,
    k_ef: int,
    k_si: int,
    k_in: int,
    log_gains: bool = False,
) -> MaxMinPolicy:
    """The game's exact optimum when ``g_si = a g_ef`` and ``g_in = b g_ef``.

    Derivation. Write ``q_s = p_s g_ef(s)``; the payoff is ``sum_s q_s f_s``
    with the factor f = 1, a or -b. Sort q descending and the N factors
    ascending, ``C_j`` the sum of the j smallest. The adversary pairs them
    (rearrangement inequality), so with ``d_j = q_(j) - q_(j+1) >= 0``
    (Abel summation) the value of p is ``sum_j d_j C_j``, and the budget is
    ``1 = sum_s q_s / g_ef(s) = sum_j d_j H'_j``, ``H'_j`` the sum of
    ``1/g_ef`` over the sessions holding the j largest q. The value is thus
    a mean of the ``C_j / H'_j`` (weights ``d_j H'_j``), so one j takes all
    the weight: q uniform on j sessions. If some ``C_j > 0``, the best set
    minimises ``H'_j``: the j largest ``g_ef`` (the hardest sessions; ``H_j =
    sum_{s<=j} r_s^mu`` for the paper's gains). If every ``C_j < 0``
    (``k_ef + a k_si < b k_in``) it maximises it: the j smallest ``g_ef``.
    Optimum: ``j* = argmax_j C_j / H_j`` (the first on ties), ``p_s =
    (1/g_ef(s)) / H_j*`` on those j* sessions (proportional to ``r^mu`` for
    the paper's gains), value ``C_j* / H_j*``. As q is constant on the
    support, every worst assignment pays that value: Theorem 1 holds for p.

    ``k_star`` is j*; ``p`` is in the input order. ``log_gains=True`` reads
    ``g_ef`` as natural logs. Any ``a > 0``, ``b > 0`` (the paper: 1/2, 1/2).
    """
    for name, x in (("a", a), ("b", b)):
        if not (np.isfinite(x) and x > 0):
            raise ValueError(f"{name} must be a positive finite number, got {x}")
    log_g = _log_gain_table(g_ef, g_ef, g_ef, log_gains)[:, 0]
    n = log_g.size
    _check_counts(n, k_ef, k_si, k_in)
    c = _factor_prefix_sums(n, [(1.0, k_ef), (float(a), k_si), (-float(b), k_in)])

    # hardest first when some C_j > 0, else easiest first (see the derivation)
    order = np.argsort(-log_g, kind="stable")
    if not np.any(c > 0):
        order = order[::-1]
    log_inv = -log_g[order]  # log(1 / g_ef), (N,)
    log_h = np.logaddexp.accumulate(log_inv)  # log H_j
    j = _argmax_ratio(c, log_h) + 1

    log_p = np.full(n, -np.inf)
    log_p[order[:j]] = log_inv[:j]
    policy = _policy(log_p, float(c[j - 1]), float(log_h[j - 1]))
    log.debug(
        "exact proportional policy: n=%d j_star=%d value=%.6g", n, j, policy.value
    )
    return policy

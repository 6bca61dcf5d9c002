"""Module 3 of ALKDRec: which sessions to ask the LLM about (METHOD.md 6).

Difficulty under the teacher recommender, rank-based gains, the max-min
selection policy (closed form of Definition 1 and an exact linear program)
and the selection strategies of the paper's Table 2.

The game (the paper's Eq. 3): the learner picks a distribution ``p`` over
the pool, the adversary labels the instances with exactly ``k_ef``
effective, ``k_si`` similar and ``k_in`` incorrect LLM answers, and the
payoff is ``sum_s p_s * (c_ef g_ef + c_si g_si - c_in g_in)``: an incorrect
answer costs ``g_in``. All gains are positive. The closed form works with
their logarithms: ``r ** -mu`` spans ``mu * log10(N)`` orders of magnitude
(60 at N = 10^6 and mu = 10; float64 covers about 600, so larger mu or N
would leave it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import linprog
from scipy.special import expit, logsumexp
from tqdm.auto import tqdm

from alkd.data import make_batch

log = logging.getLogger(__name__)

STRATEGIES = tuple(
    "alkdrec alkdrec-exact rad-bc random easiest hardest authors".split()
)
DRAWINGS = ("algorithm1", "recompute")
NEEDS_DIFFICULTY = ("alkdrec", "alkdrec-exact", "rad-bc", "easiest", "hardest")
# the exact LP is refused beyond these (see maxmin_exact)
EXACT_MAX_POOL = 2000
EXACT_MAX_SPAN = 1e18
_PAYOFF_SIGNS = np.array([1.0, 1.0, -1.0])  # effective, similar, incorrect
_LP_OPTIONS = dict(primal_feasibility_tolerance=1e-10, dual_feasibility_tolerance=1e-10)


@torch.no_grad()
def difficulty(
    teacher_model: torch.nn.Module,
    sessions: Sequence[Sequence[int]],
    *,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """``df_s = -(1/|s|) sum_{v in s} sigmoid(Encode(s) . e_v)``, (S,) float64.

    ``s`` is the session as the model sees it: ``make_batch`` keeps the last
    10 items, and the sum and ``|s|`` run over those same items (a repeated
    item counts once per occurrence). The model (a ``SessionRecommender``
    already on ``device``) is put in eval mode and restored afterwards.
    Higher df = more difficult.
    """
    if len(sessions) == 0:
        raise ValueError("difficulty: sessions is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    was_training = teacher_model.training
    teacher_model.eval()
    try:
        table = teacher_model.item_embeddings()  # (N, d)
        out = []
        starts = range(0, len(sessions), batch_size)
        for start in tqdm(starts, desc="difficulty", disable=not progress):
            batch = make_batch(list(sessions[start : start + batch_size])).to(device)
            u = teacher_model.encode(batch)  # (B, d)
            e = table[(batch.items - 1).clamp_min(0)]  # (B, L, d); pads masked
            fit = torch.sigmoid(torch.einsum("bd,bld->bl", u, e)) * batch.mask
            df = -fit.sum(1) / batch.lengths.to(fit.dtype)  # (B,)
            out.append(df.double().cpu().numpy())
    finally:
        teacher_model.train(was_training)
    return np.concatenate(out)


@dataclass(frozen=True)
class Gains:
    """Log-gains of each pool instance, in the pool's index order.

    ``order[r - 1]`` is the pool index of rank ``r`` (1 = most difficult),
    ``rank[i]`` the rank of pool index ``i``.
    """

    log_ef: np.ndarray  # (N,)
    log_si: np.ndarray  # (N,)
    log_in: np.ndarray  # (N,)
    order: np.ndarray  # (N,) pool indices, most difficult first
    rank: np.ndarray  # (N,) 1..N


def gains(difficulty_values: np.ndarray, mu: float = 10.0) -> Gains:
    """``log g_ef = -mu log r``, ``g_si = g_in = g_ef / 2`` (METHOD.md 6).

    r = 1 is the session with the highest difficulty; ties go to the lower
    pool index first.
    """
    df = np.asarray(difficulty_values, dtype=np.float64)
    if df.ndim != 1 or df.size == 0 or not np.all(np.isfinite(df)):
        raise ValueError("difficulty_values must be a non-empty finite 1-D array")
    if not (np.isfinite(mu) and mu >= 0):
        raise ValueError(f"mu must be a finite non-negative number, got {mu}")
    order = np.argsort(-df, kind="stable")
    rank = np.empty(df.size, dtype=np.int64)
    rank[order] = np.arange(1, df.size + 1)
    log_ef = -mu * np.log(rank.astype(np.float64))
    log_half = log_ef - np.log(2.0)
    return Gains(log_ef, log_half, log_half.copy(), order, rank)


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
    ``maxmin_exact``. ``log_gains=True`` reads the inputs as natural logs.
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


def draw_algorithm1(log_p: np.ndarray, budget: int, rng: np.random.Generator):
    """Algorithm 1's loop: draw s ~ p repeatedly, keep new ones, until budget.

    The new instances arrive in the order of successive sampling without
    replacement proportional to p, which the Gumbel-top-k trick draws exactly
    in one pass (keys ``log p + Gumbel``; the sorted top ``budget``). That
    gives Algorithm 1's distribution even where p has tiny entries that the
    literal loop would wait forever for. Returns pool indices in draw order.
    """
    support = int(np.isfinite(log_p).sum())
    if budget > support:
        raise ValueError(
            f"budget {budget} exceeds the policy's support k_star={support}; "
            "Algorithm 1 cannot draw that many distinct instances"
        )
    keys = log_p + rng.gumbel(size=log_p.size)
    top = np.argpartition(-keys, budget - 1)[:budget]
    return top[np.argsort(-keys[top], kind="stable")]


def read_base_file(path: str | Path) -> np.ndarray:
    """Session ids of a release ``X_<strategy>.base`` file, one per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"selection file not found: {path}")
    ids: list[int] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if not line.strip().isdigit():
            raise ValueError(f"{path}:{lineno}: not a session id: {line.strip()!r}")
        ids.append(int(line))
    if not ids:
        raise ValueError(f"{path}: no session ids")
    out = np.asarray(ids, dtype=np.int64)
    uniq, counts = np.unique(out, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{path}: session id {uniq[counts > 1][0]} is repeated")
    return out


def _max_min_for(strategy: str, df: np.ndarray, ratios, mu: float) -> MaxMinPolicy:
    """The max-min policy of ``strategy`` on a pool with difficulties ``df``."""
    g = gains(df, mu)
    if strategy == "rad-bc":
        r = np.asarray(ratios, dtype=np.float64)
        fraction = float((r[0] + r[1]) / r.sum())  # correct = effective + similar
        return radbc_policy(g.log_ef, correct_fraction=fraction, log_gains=True)
    k_ef, k_si, k_in = ratio_counts(df.size, ratios)
    solve = maxmin_exact if strategy == "alkdrec-exact" else maxmin_policy
    return solve(
        g.log_ef, g.log_si, g.log_in, k_ef=k_ef, k_si=k_si, k_in=k_in, log_gains=True
    )


def _draw_recompute(strategy, df, budget, ratios, mu, rng) -> np.ndarray:
    """Released notebooks' variant: draw one, drop it, recompute p* on the rest.

    Ranks, gains and counts (from the ratios) are recomputed on the
    remaining pool each time.
    """
    remaining = np.arange(df.size)
    chosen = []
    for _ in range(budget):
        policy = _max_min_for(strategy, df[remaining], ratios, mu)
        i = int(np.argmax(policy.log_p + rng.gumbel(size=remaining.size)))
        chosen.append(remaining[i])
        remaining = np.delete(remaining, i)
    return np.asarray(chosen, dtype=np.int64)


def _check_select_args(strategy, pool, budget, df, authors_ids, drawing) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if drawing not in DRAWINGS:
        raise ValueError(f"unknown drawing {drawing!r}; choose one of {DRAWINGS}")
    if pool.ndim != 1 or pool.size == 0:
        raise ValueError("pool_ids is empty (or not 1-D)")
    if np.unique(pool).size != pool.size:
        raise ValueError("pool_ids contains duplicate session ids")
    if int(budget) != budget or not 1 <= budget <= pool.size:
        raise ValueError(f"budget must be an integer in 1..{pool.size}, got {budget}")
    if strategy in NEEDS_DIFFICULTY:
        if df is None:
            raise ValueError(f"strategy {strategy!r} needs difficulty")
        if df.shape != pool.shape:
            raise ValueError(f"difficulty has shape {df.shape}, pool {pool.shape}")
    if strategy == "authors" and authors_ids is None:
        raise ValueError("strategy 'authors' needs authors_ids")


def _authors(pool: np.ndarray, authors_ids, budget: int) -> np.ndarray:
    ids = np.asarray(authors_ids, dtype=np.int64)
    if ids.size < budget:
        raise ValueError(f"authors_ids has {ids.size} ids, budget is {budget}")
    chosen = ids[:budget]
    missing = np.setdiff1d(chosen, pool)
    if missing.size:
        raise ValueError(f"authors_ids: session {missing[0]} is not in pool_ids")
    if np.unique(chosen).size != budget:
        raise ValueError("authors_ids repeats a session id")
    return chosen


def select(
    strategy: str,
    pool_ids,
    budget: int,
    seed: int,
    *,
    difficulty: np.ndarray | None = None,
    authors_ids=None,
    ratios: Sequence[float] = (1, 5, 4),
    mu: float = 10.0,
    drawing: str = "algorithm1",
) -> np.ndarray:
    """Session ids chosen by ``strategy``: ``budget`` distinct ids, in order.

    ``difficulty`` is aligned with ``pool_ids``. ``easiest``/``hardest`` take
    the lowest/highest df (ties to the earlier pool entry); ``authors`` the
    first ``budget`` of ``authors_ids`` (see ``read_base_file``); the
    max-min strategies draw with ``drawing``. RAD-BC's correct fraction is
    ``(ratios[0] + ratios[1]) / sum(ratios)``. Same seed, same selection.
    """
    pool = np.asarray(pool_ids, dtype=np.int64)
    df = None if difficulty is None else np.asarray(difficulty, dtype=np.float64)
    _check_select_args(strategy, pool, budget, df, authors_ids, drawing)
    rng = np.random.default_rng(seed)
    if strategy == "authors":
        return _authors(pool, authors_ids, budget)
    if strategy == "random":
        return rng.choice(pool, size=budget, replace=False)
    if strategy in ("easiest", "hardest"):
        key = df if strategy == "easiest" else -df
        return pool[np.argsort(key, kind="stable")[:budget]]
    if drawing == "recompute":
        return pool[_draw_recompute(strategy, df, budget, ratios, mu, rng)]
    policy = _max_min_for(strategy, df, ratios, mu)
    log.info(
        "selection: strategy=%s n=%d k_star=%d", strategy, pool.size, policy.k_star
    )
    return pool[draw_algorithm1(policy.log_p, budget, rng)]


@dataclass(frozen=True)
class SelectionConfig:
    """Settings of Module 3; defaults are the paper's (METHOD.md 6).

    budget |B| = 500 (the paper uses 750 for FPMC on Games), ratios
    k_ef : k_si : k_in = 1 : 5 : 4, mu = 10, Algorithm 1's drawing.
    """

    strategy: str = "alkdrec"
    budget: int = 500
    ratios: tuple[float, float, float] = (1.0, 5.0, 4.0)
    mu: float = 10.0
    drawing: str = "algorithm1"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; one of {STRATEGIES}")
        if self.drawing not in DRAWINGS:
            raise ValueError(f"unknown drawing {self.drawing!r}; one of {DRAWINGS}")
        if int(self.budget) != self.budget or self.budget < 1:
            raise ValueError(f"budget must be a positive integer, got {self.budget}")
        if len(self.ratios) != 3:
            raise ValueError(f"ratios must have 3 entries, got {self.ratios}")
        ratio_counts(0, self.ratios)  # validates the ratios
        if not (np.isfinite(self.mu) and self.mu >= 0):
            raise ValueError(f"mu must be finite and non-negative, got {self.mu}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")

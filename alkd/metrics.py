"""Full-ranking evaluation (METHOD.md section 2) and significance tests.

Every item is ranked; the items already in the session are removed; ties
are broken against the label, so every other item scoring at least as
high as the label counts as ranked above it (an all-equal score row scores
0). recall@K is the hit rate in the top K and ndcg@K = 1/log2(rank + 1) for
a hit (one relevant item, so IDCG = 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import stats

METRICS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def label_ranks(
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
) -> torch.Tensor:
    """1-based rank of each label among the non-excluded items, (B,).

    A label that is itself excluded (it already occurs in the session) can
    not be recommended and gets rank ``n_items + 1``, a miss at any K.
    """
    scores = torch.as_tensor(scores)
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, N); got {tuple(scores.shape)}")
    b, n = scores.shape
    block = rows_per_block(scores.device, b)
    return ranks_by_block(lambda rows: scores[rows], b, n, labels, exclude, block)


def factored_label_ranks(
    sessions: torch.Tensor,
    items: torch.Tensor,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
) -> torch.Tensor:
    """``label_ranks(sessions @ items.T, ...)`` without the (B, N) matrix.

    Each block of ROW_BLOCK sessions is scored when it is ranked, so its
    scores stay in cache: at d = 10 on Games a validation pass ran about
    three times faster (benchmarks/bench_eval.py). A block's product equals
    the same rows of the whole product on the CPUs tested (a test checks it
    at the datasets' sizes), so the ranks are those of ``label_ranks``.
    """
    if sessions.dim() != 2 or items.dim() != 2 or sessions.shape[1] != items.shape[1]:
        raise ValueError(
            "sessions (B, d) and items (N, d) must share d; got "
            f"{tuple(sessions.shape)} and {tuple(items.shape)}"
        )
    items_t = items.T
    b, n = sessions.shape[0], items.shape[0]
    block = rows_per_block(sessions.device, b)

    def score_rows(rows: slice) -> torch.Tensor:
        return sessions[rows] @ items_t

    return ranks_by_block(score_rows, b, n, labels, exclude, block)


# rows per block: a block of 32 x 26,138 scores (3.3 MB) stays in cache
# while it is checked, compared and counted, where one pass over a whole
# (1024, N) batch streamed it from memory three times
ROW_BLOCK = 32


def rows_per_block(device: torch.device, b: int) -> int:
    """ROW_BLOCK on the CPU; a GPU takes the whole batch (no cache to fit)."""
    return ROW_BLOCK if device.type == "cpu" else max(b, 1)


def ranks_by_block(
    score_rows: Callable[[slice], torch.Tensor],
    b: int,
    n: int,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    exclude: Sequence[Sequence[int] | np.ndarray] | None,
    block: int = ROW_BLOCK,
) -> torch.Tensor:
    """The label ranks of B sessions whose scores ``score_rows`` gives by rows.

    Every item scoring at least as high as the label counts as above it
    (ties against the label); excluded items are taken back out. A NaN
    score raises ValueError: it would compare false and quietly lift the
    label.
    """
    if block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block}")
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if labels.shape != (b,):
        raise ValueError(
            f"scores must be (B, N) and labels (B,); got B = {b} and labels "
            f"{tuple(labels.shape)}"
        )
    if b and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"labels must lie in 0..{n - 1}")
    if exclude is None:
        ex_rows = ex_cols = np.zeros(0, np.int64)
    else:
        ex_rows, ex_cols = exclusion_index(exclude, b, n)

    ranks = torch.empty(b, dtype=torch.int64)
    for start in range(0, b, block):
        stop = min(start + block, b)
        lo, hi = np.searchsorted(ex_rows, [start, stop])  # rows come sorted
        ranks[start:stop] = block_ranks(
            score_rows(slice(start, stop)),
            labels[start:stop],
            ex_rows[lo:hi] - start,
            ex_cols[lo:hi],
        )
    return ranks


def block_ranks(
    scores: torch.Tensor,
    labels: torch.Tensor,
    ex_rows: np.ndarray,
    ex_cols: np.ndarray,
) -> torch.Tensor:
    """Ranks of one block's labels, (b,); ``ex_*`` index the block's rows."""
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    b, n = scores.shape
    labels = labels.to(scores.device)
    label_score = scores.gather(1, labels[:, None])  # (b, 1)
    ranks = (scores >= label_score).sum(1)  # the label counts itself
    if not len(ex_rows):
        return ranks.cpu()

    # take out the excluded items that scored at least as high, without a
    # (b, N) mask: gather their scores and count them per row
    rows_t = torch.from_numpy(ex_rows).to(scores.device)
    cols_t = torch.from_numpy(ex_cols).to(scores.device)
    above = scores[rows_t, cols_t] >= label_score[rows_t, 0]
    ranks = ranks - torch.bincount(rows_t[above], minlength=b)
    excluded_label = torch.zeros(b, dtype=torch.bool, device=scores.device)
    excluded_label[rows_t[cols_t == labels[rows_t]]] = True
    return torch.where(excluded_label, torch.full_like(ranks, n + 1), ranks).cpu()


def exclusion_index(
    exclude: Sequence[Sequence[int] | np.ndarray], b: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the excluded items, repeats removed."""
    if len(exclude) != b:
        raise ValueError(f"exclude has {len(exclude)} rows for {b} sessions")
    parts = []
    for row, items in enumerate(exclude):
        items = np.asarray(items)
        if items.ndim != 1:
            raise ValueError(f"exclude[{row}] must be a 1-D list of item ids")
        if items.size and not np.issubdtype(items.dtype, np.integer):
            raise ValueError(f"exclude[{row}] must hold integer item ids")
        parts.append(np.unique(items.astype(np.int64)))
    lengths = [len(p) for p in parts]
    cols = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n):
        raise ValueError(f"excluded item ids must lie in 0..{n - 1}")
    return np.repeat(np.arange(b), lengths), cols


def exclusion_mask(
    exclude: Sequence[Sequence[int] | np.ndarray] | None,
    b: int,
    n: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Boolean (B, N) mask of excluded items, built without a loop over items."""
    mask = torch.zeros((b, n), dtype=torch.bool, device=device)
    if exclude is None:
        return mask
    rows, cols = exclusion_index(exclude, b, n)
    mask[torch.from_numpy(rows), torch.from_numpy(cols)] = True
    return mask


def metrics_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = (5, 10)) -> dict:
    """recall@K and ndcg@K averaged over sessions, from 1-based ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    out = {}
    for k in ks:
        hit = ranks <= k
        gain = torch.where(hit, 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
        out[f"recall@{k}"] = float(hit.double().mean()) if len(ranks) else 0.0
        out[f"ndcg@{k}"] = float(gain.mean()) if len(ranks) else 0.0
    return out


def rank_metrics(
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
    ks: Sequence[int] = (5, 10),
) -> dict[str, float]:
    """recall@K and ndcg@K of full-ranking scores (B, N) for one batch."""
    return metrics_from_ranks(label_ranks(scores, labels, exclude), ks)


def ttest_ind(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value over seeds (NaN with fewer than 2 each)."""
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.allclose(a.std(), 0) and np.allclose(b.std(), 0):
        return 0.0 if not np.isclose(a.mean(), b.mean()) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)

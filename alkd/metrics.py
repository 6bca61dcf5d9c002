"""Full-ranking evaluation (METHOD.md section 2) and significance tests.

Every item is ranked; the items already in the session are removed; ties
are broken against the label, so every other item scoring at least as
high as the label counts as ranked above it (an all-equal score row scores
0). recall@K is the hit rate in the top K and ndcg@K = 1/log2(rank + 1) for
a hit (one relevant item, so IDCG = 1).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if scores.dim() != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"scores must be (B, N) and labels (B,); got {tuple(scores.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    b, n = scores.shape
    if b and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"labels must lie in 0..{n - 1}")

    labels = labels.to(scores.device)
    label_score = scores.gather(1, labels[:, None])  # (B, 1)
    ranks = (scores >= label_score).sum(1)  # the label counts itself
    if exclude is None:
        return ranks.cpu()

    # remove the excluded items that scored at least as high, without a
    # (B, N) mask: gather their scores and count them per row
    rows, cols = exclusion_index(exclude, b, n)
    rows_t = torch.from_numpy(rows).to(scores.device)
    cols_t = torch.from_numpy(cols).to(scores.device)
    above = scores[rows_t, cols_t] >= label_score[rows_t, 0]
    ranks = ranks - torch.bincount(rows_t[above], minlength=b)
    hit_label = torch.zeros(b, dtype=torch.bool, device=scores.device)
    hit_label[rows_t[cols_t == labels[rows_t]]] = True
    return torch.where(hit_label, torch.full_like(ranks, n + 1), ranks).cpu()


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

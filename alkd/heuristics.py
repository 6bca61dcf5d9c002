"""Two non-neural sanity rows: POP and SKNN (Jannach & Ludewig, RecSys 2017).

They bound what the neural rows should reach on the same split and
protocol: POP is the floor, and SKNN is a strong simple baseline for
session-based recommendation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse

from alkd.data import Split, session_item_sets
from alkd.metrics import label_ranks, metrics_from_ranks


def training_item_sets(train: Split) -> list[list[int]]:
    """Each training session's items together with its label."""
    return [list(s) + [int(y)] for s, y in zip(train.sessions, train.labels)]


class POP:
    """Most popular items: the count of each item in training sessions + labels."""

    name = "POP"

    def __init__(self, train: Split, n_items: int) -> None:
        items = np.concatenate([np.asarray(s) for s in training_item_sets(train)])
        self.counts = np.bincount(items, minlength=n_items).astype(np.float32)

    def scores(self, sessions: Sequence[Sequence[int]]) -> np.ndarray:
        return np.tile(self.counts, (len(sessions), 1))


class SKNN:
    """Session-based kNN with cosine similarity over binary item sets.

    ``score(s, i) = sum over the k most similar training sessions n of
    sim(s, n) * [i in n]``, with ``sim(s, n) = |s & n| / sqrt(|s| |n|)``.
    Jannach & Ludewig also sample the m most recent candidate sessions; the
    training sets here are small, so every training session is a candidate.
    """

    name = "SKNN"

    def __init__(self, train: Split, n_items: int, k: int = 100) -> None:
        if k < 1:
            raise ValueError(f"SKNN: k must be >= 1, got {k}")
        self.k, self.n_items = k, n_items
        self.memory = binary_matrix(training_item_sets(train), n_items)  # (M, N)
        self.sizes = np.asarray(self.memory.sum(1)).ravel()  # (M,)

    def scores(self, sessions: Sequence[Sequence[int]]) -> np.ndarray:
        query = binary_matrix(sessions, self.n_items)  # (B, N)
        overlap = (query @ self.memory.T).toarray()  # (B, M)
        q_sizes = np.asarray(query.sum(1)).ravel()
        sim = overlap / np.sqrt(np.outer(q_sizes, self.sizes)).clip(min=1e-12)

        # keep only each session's k nearest neighbours
        k = min(self.k, sim.shape[1])
        cut = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        kept = np.zeros_like(sim)
        np.put_along_axis(kept, cut, np.take_along_axis(sim, cut, 1), axis=1)
        return np.asarray(sparse.csr_matrix(kept) @ self.memory.toarray())


def binary_matrix(sessions: Sequence[Sequence[int]], n_items: int) -> sparse.csr_matrix:
    """A 0/1 CSR matrix with a row per session, (B, N)."""
    sets = [np.unique(np.asarray(s, dtype=np.int64)) for s in sessions]
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
    indices = np.concatenate(sets) if sets else np.zeros(0, np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(sets), n_items))


def evaluate_scorer(scorer, split: Split, *, batch_size: int = 512) -> dict[str, float]:
    """Full-ranking metrics of a non-neural scorer, session items excluded."""
    ranks = []
    for start in range(0, len(split), batch_size):
        part = split.subset(np.arange(start, min(start + batch_size, len(split))))
        scores = torch.from_numpy(np.ascontiguousarray(scorer.scores(part.sessions)))
        ranks.append(label_ranks(scores, part.labels, session_item_sets(part.sessions)))
    return metrics_from_ranks(torch.cat(ranks))

"""A hand-built tiny dataset and settings for the KD baseline smoke tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alkd.data import SessionDataset, Split
from alkd.train import TrainConfig

N_ITEMS = 40


def tiny_split(rng: np.random.Generator, n: int, first_id: int) -> Split:
    """``n`` random sessions of 2-6 distinct items with a next item."""
    sessions, labels = [], []
    for _ in range(n):
        items = rng.choice(N_ITEMS, size=int(rng.integers(3, 8)), replace=False)
        sessions.append([int(v) for v in items[:-1]])
        labels.append(int(items[-1]))
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return Split(ids, sessions, np.asarray(labels, dtype=np.int64))


def tiny_dataset(seed: int = 0) -> SessionDataset:
    """60 train / 20 valid / 20 test sessions over 40 items."""
    rng = np.random.default_rng(seed)
    train = tiny_split(rng, 60, 0)
    valid = tiny_split(rng, 20, 60)
    test = tiny_split(rng, 20, 80)
    titles = [f"item {i}" for i in range(N_ITEMS)]
    return SessionDataset(
        "tiny",
        Path("."),
        N_ITEMS,
        titles,
        [str(i) for i in range(N_ITEMS)],
        train,
        valid,
        test,
    )


# a few iterations, one validation, batches smaller than the split
TINY_CONFIG = TrainConfig(batch_size=16, max_iters=6, eval_every=3, patience=5)

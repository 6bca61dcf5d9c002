"""Shared fixtures: fixed seeds, the real data root, a tiny synthetic dataset."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from alkd.data import SessionDataset, Split, load_dataset

# ../shared/data/alkdrec beside the repository, as scripts/data_root.sh finds it
_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alkdrec"


def load_tool(name: str) -> ModuleType:
    """A script of tools/ as a module (tools/ is not a package).

    It is registered in sys.modules first: dataclasses look their module up.
    """
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def call_at_once(fn: Callable[[], object], n: int = 2) -> list:
    """Run ``fn`` in ``n`` threads started together; their results, in end order.

    For the locks around shared caches: ``flock`` locks belong to each open
    file, so threads of one process contend like separate processes.
    """
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(fn())) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    """Every test starts from the same global random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def torch_single_thread():
    """One intra-op thread for modules of tiny models.

    Tiny tensors gain nothing from threads, and on a shared machine two
    threads contending with other processes were 10-50x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _real_data_root() -> Path | None:
    """``$ALKD_DATA`` if it holds the release, else the shared folder, else None."""
    for candidate in (os.environ.get("ALKD_DATA"), _SHARED_DATA):
        if candidate and (Path(candidate) / "ML").is_dir():
            if (Path(candidate) / "Games").is_dir():
                return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding the release's ``ML/`` and ``Games/`` folders."""
    root = _real_data_root()
    if root is None:
        pytest.skip(
            f"real data absent: neither $ALKD_DATA nor {_SHARED_DATA} holds "
            "ML/ and Games/ (run `alkd fetch-data --data DIR`, set ALKD_DATA=DIR)"
        )
    return root


@pytest.fixture
def alkd_data(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$ALKD_DATA`` at the real data for this test."""
    monkeypatch.setenv("ALKD_DATA", str(data_root))
    return data_root


@pytest.fixture(scope="session")
def ml(data_root: Path) -> SessionDataset:
    return load_dataset("ML", data_root)


@pytest.fixture(scope="session")
def games(data_root: Path) -> SessionDataset:
    return load_dataset("Games", data_root)


def pattern_dataset(
    n_items: int = 30, n_sessions: int = 500, seed: int = 0, name: str = "ML"
) -> SessionDataset:
    """Sessions of consecutive items; the next item is always ``last + 1``.

    A model that learns the transition ranks the label first, while random
    scores put it in the top 5 about 5 / (n_items - len(s)) of the time.
    """
    rng = np.random.default_rng(seed)
    sessions, labels = [], []
    for _ in range(n_sessions):
        start, length = int(rng.integers(n_items)), int(rng.integers(1, 6))
        items = [(start + j) % n_items for j in range(length)]
        sessions.append(items)
        labels.append((start + length) % n_items)
    labels = np.asarray(labels, dtype=np.int64)
    n1, n2 = int(0.6 * n_sessions), int(0.8 * n_sessions)
    ids = np.arange(n_sessions, dtype=np.int64)
    parts = [
        Split(ids[a:b], sessions[a:b], labels[a:b])
        for a, b in ((0, n1), (n1, n2), (n2, n_sessions))
    ]
    titles = [f"item {i}" for i in range(n_items)]
    raw = [str(i) for i in range(n_items)]
    return SessionDataset(name, Path("."), n_items, titles, raw, *parts)


@pytest.fixture
def make_pattern_dataset() -> Callable[..., SessionDataset]:
    """Factory for :func:`pattern_dataset` (tiny, CPU-fast)."""
    return pattern_dataset

"""The two datasets in the authors' release format, the split, and batching.

Numbering reproduces the authors' exactly (METHOD.md section 1): titles are
read with ids as strings, duplicates dropped keeping the first, and the
internal item id is the row position; sessions keep only titled items, and
``session_id`` is the row position after dropping unusable rows. The split
is by position: 60 % train, 20 % valid, 20 % test.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

log = logging.getLogger(__name__)

DATASETS = ("ML", "Games")
SEQ_LEN = 10  # the authors' seq_len: inputs keep the last 10 items

# The names a pandas DataFrame pickle of lists and strings needs, and nothing
# else. numpy 1.x wrote ``numpy.core``; numpy 2 reads it as ``numpy._core``.
_PICKLE_ALLOWED = {
    ("builtins", "slice"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas", "DataFrame"),  # what pandas 3 writes
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"),
}


class DataError(ValueError):
    """A dataset file is missing, malformed or refers to unknown items."""


@dataclass(frozen=True)
class Split:
    """One part of the split: parallel session ids, sessions and labels."""

    session_ids: np.ndarray  # (n,) int64, positions in the cleaned table
    sessions: list[list[int]]  # internal item ids, untruncated
    labels: np.ndarray  # (n,) int64, the next item

    def __len__(self) -> int:
        return len(self.sessions)

    def subset(self, index: Sequence[int] | np.ndarray) -> Split:
        """The sessions at positions ``index`` (not session ids) of this split."""
        index = np.asarray(index, dtype=np.int64)
        return Split(
            session_ids=self.session_ids[index],
            sessions=[self.sessions[i] for i in index],
            labels=self.labels[index],
        )


@dataclass(frozen=True)
class SessionDataset:
    """A loaded dataset: titles indexed by internal id and the three splits."""

    name: str
    root: Path
    n_items: int
    titles: list[str]
    raw_ids: list[str]
    train: Split
    valid: Split
    test: Split

    @property
    def n_sessions(self) -> int:
        return len(self.train) + len(self.valid) + len(self.test)

    @property
    def n_interactions(self) -> int:
        """Session items plus labels, the paper's interaction count."""
        parts = (self.train, self.valid, self.test)
        return sum(sum(len(s) + 1 for s in p.sessions) for p in parts)

    def split(self, name: str) -> Split:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}; use train, valid or test")
        return getattr(self, name)

    def file(self, suffix: str) -> Path:
        """Path of a release file, e.g. ``file("_LLM_Database.data")``."""
        return self.root / self.name / f"{self.name}{suffix}"

    def find_sessions(self, session_ids: Sequence[int]) -> tuple[Split, np.ndarray]:
        """Locate session ids in any split: (rows of all splits, split code).

        Returns the sessions as one ``Split`` and, per session, 0/1/2 for
        train/valid/test. Unknown ids raise ``KeyError``.
        """
        ids = np.asarray(session_ids, dtype=np.int64)
        n_train, n_valid = len(self.train), len(self.valid)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_sessions):
            bad = ids[(ids < 0) | (ids >= self.n_sessions)][0]
            raise KeyError(f"{self.name}: no session with id {int(bad)}")
        code = (ids >= n_train).astype(np.int64) + (ids >= n_train + n_valid)
        offsets = np.array([0, n_train, n_train + n_valid])
        parts = (self.train, self.valid, self.test)
        sessions = [parts[c].sessions[i - offsets[c]] for i, c in zip(ids, code)]
        labels = np.array(
            [parts[c].labels[i - offsets[c]] for i, c in zip(ids, code)], np.int64
        )
        return Split(ids, sessions, labels), code


def resolve_root(root: str | Path | None = None) -> Path:
    """The data root: the argument, else ``$ALKD_DATA``, else ``./data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("ALKD_DATA", "data"))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: the dataset pickle may only "
                "hold a pandas DataFrame of lists and strings"
            )
        if module.startswith("numpy.core."):  # numpy 1.x pickles, read by 2.x
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def read_session_pickle(path: Path) -> pd.DataFrame:
    """Read ``X.pkl`` through an unpickler that cannot run foreign code."""
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        frame = _RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: {err}") from err
    except Exception as err:  # truncated or otherwise corrupt pickles
        raise DataError(f"{path}: not a readable dataset pickle ({err})") from err
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: expected a pandas DataFrame, got {type(frame)}")
    missing = {"session", "label"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}")
    return frame


def read_titles(path: Path) -> tuple[list[str], list[str]]:
    """Read ``X_title.csv``: (raw ids, titles) in internal-id order."""
    if not path.is_file():
        raise FileNotFoundError(f"title table not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: title table is empty (no header)") from err
    missing = {"itemID", "title"} - set(table.columns)
    if missing:
        raise DataError(f"{path}: title table lacks column(s) {sorted(missing)}")
    table = table.drop_duplicates(subset="itemID", keep="first")
    if table.empty:
        raise DataError(f"{path}: title table has no rows")
    return table["itemID"].tolist(), table["title"].tolist()


def map_sessions(
    frame: pd.DataFrame, item_index: dict[str, int], source: Path, strict: bool = False
) -> tuple[list[list[int]], np.ndarray]:
    """Map raw ids to internal ids the way the authors' code does.

    Untitled items are dropped from sessions; rows whose label is untitled
    or whose session became empty are dropped (Games: 155 items, 26 labels,
    31 rows). With ``strict`` any unknown id is an error instead.
    """
    sessions, labels, unknown = [], [], 0
    for row, (raw_session, raw_label) in enumerate(
        zip(frame["session"], frame["label"])
    ):
        label = item_index.get(str(raw_label))
        items = [item_index[str(v)] for v in raw_session if str(v) in item_index]
        missing = len(raw_session) - len(items) + (label is None)
        if strict and missing:
            raise DataError(
                f"{source}: row {row} refers to {missing} item id(s) without a title"
            )
        unknown += missing
        if label is None or not items:
            continue
        sessions.append(items)
        labels.append(label)
    if not sessions:
        raise DataError(f"{source}: no session has a titled label and items")
    if unknown:
        log.warning(
            "dropped untitled ids file=%s count=%d rows_left=%d/%d",
            source,
            unknown,
            len(sessions),
            len(frame),
        )
    return sessions, np.asarray(labels, dtype=np.int64)


def split_by_position(
    sessions: list[list[int]], labels: np.ndarray
) -> tuple[Split, Split, Split]:
    """First 60 % train, next 20 % valid, last 20 % test (by row position)."""
    n = len(sessions)
    n1, n2 = int(0.6 * n), int(0.8 * n)
    ids = np.arange(n, dtype=np.int64)
    bounds = [(0, n1), (n1, n2), (n2, n)]
    return tuple(Split(ids[a:b], sessions[a:b], labels[a:b]) for a, b in bounds)


def load_dataset(
    name: str, root: str | Path | None = None, *, strict: bool = False
) -> SessionDataset:
    """Load ``"ML"`` or ``"Games"`` from ``root/<name>/`` in the release format.

    ``strict`` refuses sessions that refer to item ids without a title; by
    default they are dropped, which reproduces the authors' numbering.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    root = resolve_root(root)
    folder = root / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset folder not found: {folder} (set --data or ALKD_DATA, "
            "or run `alkd fetch-data`)"
        )

    raw_ids, titles = read_titles(folder / f"{name}_title.csv")
    item_index = {raw: i for i, raw in enumerate(raw_ids)}
    frame = read_session_pickle(folder / f"{name}.pkl")
    sessions, labels = map_sessions(frame, item_index, folder / f"{name}.pkl", strict)

    train, valid, test = split_by_position(sessions, labels)
    log.info("loaded dataset=%s sessions=%d items=%d", name, len(sessions), len(titles))
    return SessionDataset(name, root, len(titles), titles, raw_ids, train, valid, test)


def check_sessions(split: Split, n_items: int, source: str) -> None:
    """Raise ``DataError`` if any session or label holds an unknown item id."""
    for sid, items, label in zip(split.session_ids, split.sessions, split.labels):
        if not items:
            raise DataError(f"{source}: session {sid} is empty")
        if min(items) < 0 or max(items) >= n_items or not 0 <= label < n_items:
            raise DataError(
                f"{source}: session {sid} refers to an item id outside 0..{n_items - 1}"
            )


@dataclass(frozen=True)
class SessionBatch:
    """Sessions as a left-padded tensor: ``items[b, -1]`` is the last click.

    Item ids are shifted by one so that 0 is the padding index; models hold
    ``n_items + 1`` embedding rows and row 0 stays zero.
    """

    items: torch.Tensor  # (B, L) int64, item id + 1, 0 = padding
    lengths: torch.Tensor  # (B,) int64, number of real items (>= 1)

    @property
    def mask(self) -> torch.Tensor:
        return self.items > 0  # (B, L) bool

    def to(self, device: torch.device | str) -> SessionBatch:
        return SessionBatch(self.items.to(device), self.lengths.to(device))

    def __len__(self) -> int:
        return self.items.shape[0]


def make_batch(
    sessions: Sequence[Sequence[int]], seq_len: int = SEQ_LEN, pad_to: int | None = None
) -> SessionBatch:
    """Truncate each session to its last ``seq_len`` items and left-pad.

    ``pad_to`` widens the tensor beyond the longest session (for tests that
    check that padding changes nothing).
    """
    if not sessions:
        raise ValueError("make_batch: no sessions")
    kept = [list(s)[-seq_len:] for s in sessions]
    if any(len(s) == 0 for s in kept):
        raise ValueError("make_batch: a session is empty")
    width = max(max(len(s) for s in kept), pad_to or 0)
    items = np.zeros((len(kept), width), dtype=np.int64)
    for row, s in enumerate(kept):
        items[row, width - len(s) :] = np.asarray(s) + 1
    lengths = torch.tensor([len(s) for s in kept], dtype=torch.int64)
    return SessionBatch(torch.from_numpy(items), lengths)


def session_item_sets(sessions: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """The items of each session (untruncated), to exclude at evaluation."""
    return [np.unique(np.asarray(s, dtype=np.int64)) for s in sessions]

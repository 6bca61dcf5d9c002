"""Rebuild a dataset in the release format from raw interaction logs.

For users who start from the sources (Hetrec2011-MovieLens-2k ratings with
timestamps; Amazon "Video Games" reviews plus metadata titles) rather than
from the authors' release (METHOD.md section 1). A session is one user's
interactions within one calendar day in UTC, in time order; sessions with
fewer than ``min_length`` records are dropped; the last item is the label.

Choices made here, where the method leaves them open:

- Interactions whose item has no title (absent from the title table, or a
  missing/blank title) are dropped *before* sessionising, so a session is
  never cut short by an untitled item at its end and every id in the output
  has a title, as ``alkd.data.load_dataset`` requires.
- Within a session, records are ordered by timestamp; equal timestamps keep
  their input row order (stable tie-break). Repeated items are kept.
- Sessions are ordered by their first timestamp (ties: the input row of the
  session's first record), so the loader's positional 60/20/20 split is a
  time split, as in the release.
- Naive datetimes are read as UTC; tz-aware ones are converted to UTC;
  numbers are UNIX seconds.
- The title table keeps the titled items that occur in a kept session, in
  the order of the input title table (first row of a duplicated id).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from alkd.io import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

MIN_LENGTH = 5  # sessions with fewer records are dropped (METHOD.md section 1)
PICKLE_PROTOCOL = 5


def build_sessions(
    interactions: pd.DataFrame,
    titles: pd.DataFrame,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str = "timestamp",
    min_length: int = MIN_LENGTH,
    title_item_col: str = "itemID",
    title_col: str = "title",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut raw interactions into daily sessions in the release format.

    Args:
        interactions: one row per interaction with a user, an item and a
            timestamp (UNIX seconds or pandas datetimes).
        titles: the item titles, columns ``title_item_col`` and ``title_col``.
        user_col, item_col, time_col: column names in ``interactions``.
        min_length: fewest records a session keeps (label included), >= 2.
        title_item_col, title_col: column names in ``titles``.

    Returns:
        ``(session_frame, title_frame)``: columns ``session`` (list of raw
        item ids as strings, the inputs) and ``label`` (raw id string), one
        row per session in time order; and the table ``itemID,title``.

    Raises:
        ValueError: a missing column, an empty table, missing values,
            non-numeric timestamps or ``min_length < 2`` (naming the argument).
    """
    if min_length < 2:
        raise ValueError(f"min_length must be >= 2 (inputs + label), got {min_length}")
    _require(interactions, "interactions", (user_col, item_col, time_col))
    # a missing title is allowed: that item counts as untitled
    _require(titles, "titles", (title_item_col, title_col), no_missing=())
    title_of = _title_index(titles, title_item_col, title_col)

    records = pd.DataFrame(
        {
            "user": interactions[user_col].to_numpy(),
            "item": interactions[item_col].map(str).to_numpy(dtype=object),
            "time": _utc_times(interactions[time_col], f"interactions[{time_col!r}]"),
            "row": np.arange(len(interactions)),
        }
    )
    titled = records["item"].isin(title_of.keys())
    log.info("dropping untitled interactions count=%d", int((~titled).sum()))
    records = records[titled]

    sessions = _daily_sessions(records, min_length)
    used = {v for s in sessions["session"] for v in s} | set(sessions["label"])
    title_frame = pd.DataFrame(
        {
            "itemID": pd.Series([i for i in title_of if i in used], dtype=object),
            "title": pd.Series(
                [title_of[i] for i in title_of if i in used], dtype=object
            ),
        }
    )
    log.info("built sessions=%d items=%d", len(sessions), len(title_frame))
    return sessions, title_frame


def _require(
    frame: pd.DataFrame,
    arg: str,
    columns: tuple[str, ...],
    no_missing: tuple[str, ...] | None = None,
) -> None:
    """Raise unless ``frame`` is a non-empty DataFrame holding ``columns``.

    The columns in ``no_missing`` (default: all of ``columns``) may not
    hold missing values.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{arg} must be a pandas DataFrame, got {type(frame)}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{arg} lacks column(s) {missing}; it has {list(frame.columns)}"
        )
    if frame.empty:
        raise ValueError(f"{arg} is empty (no rows)")
    for col in columns if no_missing is None else no_missing:
        if frame[col].isna().any():
            raise ValueError(f"{arg}[{col!r}] has missing values")


def _title_index(titles: pd.DataFrame, id_col: str, title_col: str) -> dict:
    """``{raw id string: title}``: first row of an id; missing/blank dropped."""
    title_of: dict[str, str] = {}
    ids, names = titles[id_col].tolist(), titles[title_col].tolist()
    for raw, title in zip(ids, names, strict=True):
        if pd.isna(raw) or pd.isna(title) or not str(title).strip():
            continue
        title_of.setdefault(str(raw), str(title))
    if not title_of:
        raise ValueError("titles has no item with a non-blank title")
    return title_of


def _utc_times(column: pd.Series, arg: str) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch, UTC."""
    if pd.api.types.is_bool_dtype(column):
        raise ValueError(f"{arg} must be UNIX seconds or datetimes, got booleans")
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        times = column.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(column):
        times = column.dt.tz_localize("UTC")  # naive datetimes are read as UTC
    elif pd.api.types.is_integer_dtype(column):
        times = pd.to_datetime(column.astype("int64"), unit="s", utc=True)
    elif pd.api.types.is_numeric_dtype(column):  # fractional seconds
        times = pd.to_datetime(column.astype("float64"), unit="s", utc=True)
    else:
        raise ValueError(
            f"{arg} must be numeric UNIX seconds or datetimes, got dtype "
            f"{column.dtype} (convert with pd.to_datetime(..., utc=True))"
        )
    return times.dt.as_unit("ns").astype("int64").to_numpy()


def _daily_sessions(records: pd.DataFrame, min_length: int) -> pd.DataFrame:
    """Group records by (user, UTC day); keep sessions of >= min_length."""
    day_ns = 86_400 * 10**9
    records = records.assign(day=records["time"] // day_ns)  # floor: UTC days
    # time order, input row order for equal timestamps
    records = records.sort_values(["time", "row"], kind="stable")

    grouped = records.groupby(["user", "day"], sort=False, dropna=False)
    items = grouped["item"].agg(list)
    first = grouped[["time", "row"]].first()
    kept = items[items.map(len) >= min_length]
    first = first.loc[kept.index].sort_values(["time", "row"], kind="stable")
    kept = kept.loc[first.index]

    if kept.empty:
        raise ValueError(
            f"interactions: no session has at least min_length={min_length} "
            "titled records"
        )
    return pd.DataFrame(
        {
            "session": pd.Series([s[:-1] for s in kept], dtype=object),
            "label": pd.Series([s[-1] for s in kept], dtype=object),
        }
    )


def write_release(
    folder: str | Path,
    name: str,
    session_frame: pd.DataFrame,
    title_frame: pd.DataFrame,
) -> tuple[Path, Path]:
    """Write ``<name>.pkl`` (pickle protocol 5) and ``<name>_title.csv``.

    Both files are written atomically. The pickle holds a plain DataFrame
    of object columns, which the loader's restricted unpickler accepts.

    Returns:
        The paths of the session pickle and the title table.
    """
    _require(session_frame, "session_frame", ("session", "label"))
    _require(title_frame, "title_frame", ("itemID", "title"))
    if not name or "/" in name:
        raise ValueError(f"name must be a plain file stem, got {name!r}")

    # object dtypes and an object column index: pandas' string dtype would
    # pickle classes the loader refuses to unpickle
    sessions = pd.DataFrame(
        {
            "session": pd.Series(
                [[str(v) for v in s] for s in session_frame["session"]], dtype=object
            ),
            "label": pd.Series(session_frame["label"].map(str).tolist(), dtype=object),
        },
        columns=pd.Index(["session", "label"], dtype=object),
    )
    folder = Path(folder)
    pkl = folder / f"{name}.pkl"
    csv = folder / f"{name}_title.csv"
    atomic_write_bytes(pkl, pickle.dumps(sessions, protocol=PICKLE_PROTOCOL))
    table = title_frame[["itemID", "title"]].astype(str)
    atomic_write_text(csv, table.to_csv(index=False))
    log.info("wrote release folder=%s name=%s sessions=%d", folder, name, len(sessions))
    return pkl, csv

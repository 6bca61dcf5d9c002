"""Tests of alkd.rawdata: daily sessions from raw logs and the release writer."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from alkd.data import load_dataset
from alkd.rawdata import build_sessions, write_release

T0 = 1_700_000_000 - 1_700_000_000 % 86_400  # a UTC midnight, UNIX seconds
MINUTE, HOUR = 60, 3_600


def log(rows: list[tuple]) -> pd.DataFrame:
    """Interactions from (user, item, timestamp) tuples."""
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


def titles_for(items) -> pd.DataFrame:
    items = sorted({str(i) for i in items})
    return pd.DataFrame({"itemID": items, "title": [f"title {i}" for i in items]})


def day_of(user, items, start, step=MINUTE) -> list[tuple]:
    return [(user, item, start + j * step) for j, item in enumerate(items)]


def as_lists(frame: pd.DataFrame) -> list[tuple[list[str], str]]:
    return list(zip(frame["session"], frame["label"], strict=True))


# ---------- sessions ----------


def test_one_session_per_user_and_day_label_is_last_item():
    rows = day_of("u", [1, 2, 3, 4, 5], T0 + HOUR) + day_of("v", [6, 7, 8, 9, 1], T0)
    sessions, titles = build_sessions(log(rows), titles_for(range(1, 10)), min_length=5)
    # ordered by first timestamp: v started at midnight, u an hour later
    assert as_lists(sessions) == [
        (["6", "7", "8", "9"], "1"),
        (["1", "2", "3", "4"], "5"),
    ]
    assert list(sessions.columns) == ["session", "label"]
    assert list(titles.columns) == ["itemID", "title"]


def test_day_boundary_is_utc_midnight():
    # one minute apart across midnight: two sessions, 23:59 and 00:00
    before = day_of("u", [1, 2, 3], T0 - 3 * MINUTE)  # 23:57, 23:58, 23:59
    after = day_of("u", [4, 5, 6], T0)  # 00:00, 00:01, 00:02
    sessions, _ = build_sessions(
        log(before + after), titles_for(range(1, 7)), min_length=3
    )
    assert as_lists(sessions) == [(["1", "2"], "3"), (["4", "5"], "6")]

    # merged across midnight they would make one session of 6 records
    with pytest.raises(ValueError, match="no session has at least min_length=4"):
        build_sessions(log(before + after), titles_for(range(1, 7)), min_length=4)


def test_tz_aware_timestamp_lands_on_the_utc_day():
    # all four on 9 March at UTC-02:00; in UTC, x is 22:00 on the 9th while
    # a, b, c are 00:10, 00:20 and 01:30 on the 10th (23:30-02:00 included)
    local = ["20:00", "22:10", "22:20", "23:30"]
    times = pd.to_datetime([f"2024-03-09 {t}-02:00" for t in local])
    frame = pd.DataFrame({"user": ["u"] * 4, "item": list("xabc"), "timestamp": times})
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
    sessions, _ = build_sessions(frame, titles_for("abcx"), min_length=3)
    assert as_lists(sessions) == [(["a", "b"], "c")]


def test_naive_datetimes_are_utc_and_seconds_equal_datetimes():
    # 1 at 23:59 alone on its day; 2 .. 6 from 00:00 (3 and 4 tie at 00:01)
    rows = day_of("u", [1, 2, 3], T0 - MINUTE) + day_of("u", [4, 5, 6], T0 + MINUTE)
    seconds = log(rows)
    naive = seconds.assign(timestamp=pd.to_datetime(seconds["timestamp"], unit="s"))
    a, _ = build_sessions(seconds, titles_for(range(1, 7)), min_length=2)
    b, _ = build_sessions(naive, titles_for(range(1, 7)), min_length=2)
    assert as_lists(a) == as_lists(b) == [(["2", "3", "4", "5"], "6")]


def test_fractional_seconds_keep_their_order():
    rows = [("u", 1, T0 + 0.75), ("u", 2, T0 + 0.25), ("u", 3, T0 + 0.5)]
    sessions, _ = build_sessions(log(rows), titles_for([1, 2, 3]), min_length=3)
    assert as_lists(sessions) == [(["2", "3"], "1")]


def test_time_order_with_stable_tie_break():
    # rows out of time order; items 3, 2, 4 share one timestamp: input order wins
    rows = [
        ("u", 5, T0 + 500),
        ("u", 3, T0 + 100),
        ("u", 2, T0 + 100),
        ("u", 1, T0 + 50),
        ("u", 4, T0 + 100),
    ]
    sessions, _ = build_sessions(log(rows), titles_for(range(1, 6)))
    assert as_lists(sessions) == [(["1", "3", "2", "4"], "5")]

    # the reverse input order of the tied rows reverses them in the session
    tied_reversed = [rows[0], rows[4], rows[2], rows[3], rows[1]]
    sessions, _ = build_sessions(log(tied_reversed), titles_for(range(1, 6)))
    assert as_lists(sessions) == [(["1", "4", "2", "3"], "5")]


def test_min_length_counts_records_including_the_label():
    rows = day_of("u", [1, 2, 3, 4], T0) + day_of("v", [1, 2, 3, 4, 5], T0 + HOUR)
    sessions, _ = build_sessions(log(rows), titles_for(range(1, 6)), min_length=5)
    assert as_lists(sessions) == [(["1", "2", "3", "4"], "5")]
    sessions, _ = build_sessions(log(rows), titles_for(range(1, 6)), min_length=4)
    assert len(sessions) == 2
    with pytest.raises(ValueError, match="min_length must be >= 2"):
        build_sessions(log(rows), titles_for(range(1, 6)), min_length=1)


def test_untitled_items_are_dropped_before_sessionising():
    # item 99 has no title, 7 a blank one and 8 a missing one: all vanish,
    # and the session's label is the last *titled* item, not cut short
    rows = day_of("u", [1, 99, 2, 7, 3, 8, 4, 99], T0)
    untitled = pd.DataFrame({"itemID": ["7", "8"], "title": ["  ", None]})
    titles = pd.concat([titles_for(range(1, 5)), untitled])
    sessions, title_frame = build_sessions(log(rows), titles, min_length=4)
    assert as_lists(sessions) == [(["1", "2", "3"], "4")]
    assert title_frame["itemID"].tolist() == ["1", "2", "3", "4"]


def test_title_table_keeps_used_items_in_input_order_first_duplicate():
    rows = day_of("u", ["b", "a", "c"], T0)
    titles = pd.DataFrame(
        {"itemID": ["c", "z", "a", "b", "a"], "title": ["C", "Z", "A", "B", "A2"]}
    )
    sessions, title_frame = build_sessions(log(rows), titles, min_length=3)
    assert title_frame.values.tolist() == [["c", "C"], ["a", "A"], ["b", "B"]]


def test_custom_column_names_and_integer_ids_as_strings():
    frame = pd.DataFrame(
        {"uid": [1, 1, 1], "mid": [10, 20, 30], "t": [T0, T0 + 1, T0 + 2]}
    )
    titles = pd.DataFrame({"movie": [10, 20, 30], "name": ["x", "y", "z"]})
    sessions, title_frame = build_sessions(
        frame,
        titles,
        user_col="uid",
        item_col="mid",
        time_col="t",
        min_length=3,
        title_item_col="movie",
        title_col="name",
    )
    assert as_lists(sessions) == [(["10", "20"], "30")]
    assert title_frame["itemID"].tolist() == ["10", "20", "30"]


# ---------- errors ----------


def test_missing_columns_name_the_argument():
    rows = log(day_of("u", [1, 2], T0))
    with pytest.raises(ValueError, match=r"interactions lacks column\(s\) \['ts'\]"):
        build_sessions(rows, titles_for([1, 2]), time_col="ts")
    with pytest.raises(ValueError, match=r"titles lacks column\(s\) \['title'\]"):
        build_sessions(rows, titles_for([1, 2]).rename(columns={"title": "name"}))


def test_empty_tables_name_the_argument():
    with pytest.raises(ValueError, match="interactions is empty"):
        build_sessions(log([]), titles_for([1]))
    with pytest.raises(ValueError, match="titles is empty"):
        build_sessions(log(day_of("u", [1], T0)), titles_for([]))


def test_non_numeric_timestamps_are_refused():
    rows = log(day_of("u", [1, 2], T0)).astype({"timestamp": str})
    with pytest.raises(
        ValueError, match=r"interactions\['timestamp'\] must be numeric"
    ):
        build_sessions(rows, titles_for([1, 2]), min_length=2)
    flags = log(day_of("u", [1, 2], T0)).assign(timestamp=[True, False])
    with pytest.raises(ValueError, match="booleans"):
        build_sessions(flags, titles_for([1, 2]), min_length=2)


def test_missing_values_and_no_surviving_session():
    rows = log(day_of("u", [1, 2], T0))
    rows.loc[1, "timestamp"] = np.nan
    with pytest.raises(ValueError, match=r"interactions\['timestamp'\] has missing"):
        build_sessions(rows, titles_for([1, 2]), min_length=2)
    with pytest.raises(ValueError, match="no session has at least min_length=5"):
        build_sessions(log(day_of("u", [1, 2], T0)), titles_for([1, 2]))


# ---------- the release writer ----------


def build_small_release():
    rows = (
        day_of("u", ["a", "b", "c", "d", "e"], T0)
        + day_of("v", ["e", "a", "f", "b", "c", "d"], T0 + 2 * HOUR)
        + day_of("u", ["f", "e", "d", "c", "b"], T0 + 86_400)
        + day_of("w", ["c", "a", "b", "e", "f"], T0 + 2 * 86_400)
        + day_of("w", ["a", "b", "c", "d", "e"], T0 + 3 * 86_400)
    )
    titles = pd.DataFrame(
        {
            "itemID": list("abcdef"),
            "title": ["A, the first", 'B "quoted"', "NA", "D", "E", "F"],
        }
    )
    return build_sessions(log(rows), titles)


def test_round_trip_through_write_release_and_load_dataset(tmp_path):
    sessions, titles = build_small_release()
    pkl, csv = write_release(tmp_path / "ML", "ML", sessions, titles)
    assert (pkl.name, csv.name) == ("ML.pkl", "ML_title.csv")
    assert sorted(p.name for p in (tmp_path / "ML").iterdir()) == [
        "ML.pkl",
        "ML_title.csv",
    ]  # no temporary file left
    assert pkl.read_bytes()[:2] == b"\x80\x05"  # pickle protocol 5

    ds = load_dataset("ML", tmp_path)
    assert ds.raw_ids == list("abcdef")
    assert ds.titles == ["A, the first", 'B "quoted"', "NA", "D", "E", "F"]
    parts = (ds.train, ds.valid, ds.test)
    got = [
        ([ds.raw_ids[i] for i in s], ds.raw_ids[y])
        for p in parts
        for s, y in zip(p.sessions, p.labels, strict=True)
    ]
    assert got == as_lists(sessions)
    assert got[0] == (list("abcd"), "e") and got[-1] == (list("abcd"), "e")
    assert [len(p) for p in parts] == [3, 1, 1]  # time split by position


def test_write_release_loads_with_the_stock_loader(tmp_path):
    sessions, titles = build_small_release()
    write_release(tmp_path / "ML", "ML", sessions, titles)
    assert load_dataset("ML", tmp_path).n_sessions == 5


def test_write_release_pickle_holds_only_plain_objects(tmp_path):
    sessions, titles = build_small_release()
    pkl, _ = write_release(tmp_path, "Games", sessions, titles)
    frame = pickle.loads(pkl.read_bytes())
    assert frame["session"].dtype == object and frame["label"].dtype == object
    assert all(isinstance(v, str) for s in frame["session"] for v in s)


def test_write_release_validates_its_arguments(tmp_path):
    sessions, titles = build_small_release()
    with pytest.raises(
        ValueError, match=r"session_frame lacks column\(s\) \['label'\]"
    ):
        write_release(tmp_path, "ML", sessions[["session"]], titles)
    with pytest.raises(ValueError, match="title_frame is empty"):
        write_release(tmp_path, "ML", sessions, titles.iloc[:0])
    with pytest.raises(ValueError, match="plain file stem"):
        write_release(tmp_path, "a/b", sessions, titles)
    assert list(tmp_path.iterdir()) == []

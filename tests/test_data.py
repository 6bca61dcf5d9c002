"""Tests of alkd.data: the release numbering, the split, the safe unpickler,
clear errors for broken files, and batching."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from alkd.data import (
    DataError,
    Split,
    check_sessions,
    load_dataset,
    make_batch,
    read_session_pickle,
    session_item_sets,
)
from alkd.teachers.parse import read_llm_records

ABSENT = 25  # the recorded position meaning "label not in the list"

# ---------- the real release ----------


@pytest.mark.parametrize(
    "name, sessions, items, interactions",
    [("ML", 12_323, 8_475, 112_034), ("Games", 20_091, 26_138, 132_677)],
)
def test_release_statistics(alkd_data, name, sessions, items, interactions):
    ds = load_dataset(name)  # through $ALKD_DATA, set by the fixture
    assert (ds.n_sessions, ds.n_items, ds.n_interactions) == (
        sessions,
        items,
        interactions,
    )
    assert len(ds.titles) == len(ds.raw_ids) == items


@pytest.mark.parametrize("name", ["ML", "Games"])
def test_split_is_positional_60_20_20(request, name):
    ds = request.getfixturevalue(name.lower())
    n = ds.n_sessions
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (
        int(0.6 * n),
        int(0.8 * n) - int(0.6 * n),
        n - int(0.8 * n),
    )
    ids = np.concatenate(
        [ds.train.session_ids, ds.valid.session_ids, ds.test.session_ids]
    )
    np.testing.assert_array_equal(ids, np.arange(n))
    check_sessions(ds.train, ds.n_items, name)
    check_sessions(ds.test, ds.n_items, name)


@pytest.mark.parametrize("name, n_records", [("ML", 4_992), ("Games", 5_359)])
def test_numbering_proof_llm_database(request, name, n_records):
    """Each recorded position is the first index of the label, else 25."""
    ds = request.getfixturevalue(name.lower())
    records = read_llm_records(ds.file("_LLM_Database.data"))
    assert len(records) == n_records

    ids = np.fromiter(records, dtype=np.int64)
    assert ids.max() < len(ds.train)  # all in the train split
    agree = 0
    for sid, record in records.items():
        label = int(ds.train.labels[sid])
        ranking = record.ranking
        # lists can be empty or longer than 25; repeats: the first index counts
        expected = ranking.index(label) if label in ranking else ABSENT
        agree += record.label_position == expected
    assert agree == n_records


def test_numbering_proof_fails_with_shifted_numbering(ml):
    """The proof is sharp: numbering off by one agrees on almost no record."""
    records = read_llm_records(ml.file("_LLM_Database.data"))
    present = [(sid, r) for sid, r in records.items() if r.label_position != ABSENT]
    shifted = sum(
        r.ranking.index(int(ml.train.labels[sid + 1])) == r.label_position
        for sid, r in present
        if sid + 1 < len(ml.train) and int(ml.train.labels[sid + 1]) in r.ranking
    )
    assert len(present) > 2_000
    assert shifted < 0.05 * len(present)


def test_find_sessions_across_splits(ml):
    n_train, n_valid = len(ml.train), len(ml.valid)
    ids = [n_train + n_valid, 0, n_train, ml.n_sessions - 1]
    found, code = ml.find_sessions(ids)
    np.testing.assert_array_equal(code, [2, 0, 1, 2])
    assert found.sessions[1] == ml.train.sessions[0]
    assert found.labels[2] == ml.valid.labels[0]
    assert found.sessions[3] == ml.test.sessions[-1]
    with pytest.raises(KeyError, match=str(ml.n_sessions)):
        ml.find_sessions([ml.n_sessions])


# ---------- small release folders written by the tests ----------


def write_release_folder(
    root: Path, frame: pd.DataFrame | bytes, titles: str, name: str = "ML"
) -> Path:
    """``root/<name>/<name>.pkl`` and ``<name>_title.csv`` from raw content."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    data = frame if isinstance(frame, bytes) else release_pickle(frame)
    (folder / f"{name}.pkl").write_bytes(data)
    (folder / f"{name}_title.csv").write_text(titles)
    return folder


def release_pickle(obj: object) -> bytes:
    """Pickle ``obj`` naming pandas classes by module path, as the release does.

    pandas >= 3 writes ``pandas.DataFrame``; the release (older pandas) has
    ``pandas.core.frame.DataFrame``. pickle names a class by its
    ``__module__``, so that is set back to the defining module meanwhile.
    """
    classes = (pd.DataFrame, pd.Index, pd.RangeIndex)
    saved = [cls.__module__ for cls in classes]
    try:
        pd.DataFrame.__module__ = "pandas.core.frame"
        pd.Index.__module__ = "pandas.core.indexes.base"
        pd.RangeIndex.__module__ = "pandas.core.indexes.range"
        return pickle.dumps(obj, protocol=5)
    finally:
        for cls, module in zip(classes, saved, strict=True):
            cls.__module__ = module


def release_frame(sessions: list[list[str]], labels: list[str]) -> pd.DataFrame:
    """A session table shaped like the release (object columns)."""
    return pd.DataFrame(
        {
            "session": pd.Series(sessions, dtype=object),
            "label": pd.Series(labels, dtype=object),
        },
        columns=pd.Index(["session", "label"], dtype=object),
    )


class _RunsCode:
    """Unpickling this calls ``os.system``: the loader must never do it."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class _Execs:
    def __reduce__(self):
        return (exec, ("open('SENTINEL', 'w').close()",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsCode(sentinel)))
    with pytest.raises(DataError, match="refusing to load") as err:
        read_session_pickle(path)
    assert str(path) in str(err.value)
    assert not sentinel.exists()


def test_code_hidden_inside_a_dataframe_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = release_frame([["1"]], ["2"])
    frame.loc[0, "label"] = _Execs()
    write_release_folder(tmp_path, frame, "itemID,title\n1,a\n2,b\n")
    with pytest.raises(DataError, match="refusing to load builtins.exec") as err:
        load_dataset("ML", tmp_path)
    assert "ML.pkl" in str(err.value)
    assert not (tmp_path / "SENTINEL").exists()


def test_dataframe_pickled_by_installed_pandas_loads(tmp_path):
    frame = release_frame([["1", "2"], ["2"]], ["2", "1"])
    write_release_folder(
        tmp_path, pickle.dumps(frame, protocol=5), "itemID,title\n1,a\n2,b\n"
    )
    ds = load_dataset("ML", tmp_path)
    assert ds.n_sessions == 2


def test_truncated_pickle_is_a_clear_error(tmp_path, ml):
    good = ml.file(".pkl").read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated") as err:
        read_session_pickle(path)
    assert str(path) in str(err.value)


def test_pickle_of_wrong_type_or_columns(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(slice(1, 2)))
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        read_session_pickle(path)


def test_missing_dataset_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_dataset("ML", tmp_path)
    (tmp_path / "ML").mkdir()
    with pytest.raises(FileNotFoundError, match="ML_title.csv"):
        load_dataset("ML", tmp_path)
    (tmp_path / "ML" / "ML_title.csv").write_text("itemID,title\n1,a\n")
    with pytest.raises(FileNotFoundError, match=r"ML\.pkl"):
        load_dataset("ML", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'Books'"):
        load_dataset("Books", tmp_path)


def test_title_table_without_required_columns(tmp_path):
    write_release_folder(tmp_path, release_frame([["1"]], ["1"]), "id,name\n1,a\n")
    with pytest.raises(
        DataError, match=r"ML_title\.csv.*lacks column\(s\) \['itemID', 'title'\]"
    ):
        load_dataset("ML", tmp_path)


def test_title_table_with_zero_rows(tmp_path):
    write_release_folder(tmp_path, release_frame([["1"]], ["1"]), "itemID,title\n")
    with pytest.raises(DataError, match=r"ML_title\.csv: title table has no rows"):
        load_dataset("ML", tmp_path)


def test_empty_title_file_names_the_file(tmp_path):
    write_release_folder(tmp_path, release_frame([["1"]], ["1"]), "")
    with pytest.raises(DataError, match=r"ML_title\.csv"):
        load_dataset("ML", tmp_path)


def test_session_pickle_with_zero_rows(tmp_path):
    write_release_folder(tmp_path, release_frame([], []), "itemID,title\n1,a\n")
    with pytest.raises(DataError, match=r"ML\.pkl: no session has a titled label"):
        load_dataset("ML", tmp_path)


def test_numbering_on_a_hand_sized_release(tmp_path):
    # duplicated id "b" keeps its first title; "zz" has no title and is dropped;
    # row 2 loses its label, row 3 its only item, so the table keeps rows 0, 1, 4
    titles = "itemID,title\na,A\nb,B\nc,C\nb,B again\nd,NA\n"
    frame = release_frame(
        [["a", "b"], ["zz", "c", "a"], ["a"], ["zz"], ["d", "d"]],
        ["c", "b", "zz", "a", "a"],
    )
    write_release_folder(tmp_path, frame, titles)
    ds = load_dataset("ML", tmp_path)
    assert ds.titles == ["A", "B", "C", "NA"]  # "NA" stays a string
    assert ds.raw_ids == ["a", "b", "c", "d"]
    parts = (ds.train, ds.valid, ds.test)
    sessions = [s for p in parts for s in p.sessions]
    labels = [int(y) for p in parts for y in p.labels]
    assert sessions == [[0, 1], [2, 0], [3, 3]]
    assert labels == [2, 1, 0]
    assert ds.n_interactions == 3 + 3 + 3
    assert [len(p) for p in parts] == [1, 1, 1]  # int(1.8) = 1, int(2.4) = 2


def test_strict_loading_refuses_unknown_ids_and_names_the_file(tmp_path):
    titles = "itemID,title\na,A\nb,B\nc,C\n"
    frame = release_frame([["a", "b"], ["zz", "c"]], ["c", "a"])
    write_release_folder(tmp_path, frame, titles)
    lenient = load_dataset("ML", tmp_path)  # the authors' rule: drop them
    assert lenient.n_sessions == 2
    with pytest.raises(DataError, match=r"ML\.pkl: row 1 refers to 1 item id"):
        load_dataset("ML", tmp_path, strict=True)


def test_check_sessions_flags_unknown_ids():
    """``check_sessions`` guards splits built outside the release loader."""
    good = Split(np.array([0, 1]), [[0, 1], [2]], np.array([2, 0]))
    check_sessions(good, 3, "good")
    outside = Split(np.array([0, 7]), [[0, 1], [2, 3]], np.array([2, 0]))
    with pytest.raises(
        DataError, match=r"bad: session 7 refers to an item id outside 0\.\.2"
    ):
        check_sessions(outside, 3, "bad")
    bad_label = Split(np.array([4]), [[0]], np.array([-1]))
    with pytest.raises(DataError, match="session 4"):
        check_sessions(bad_label, 3, "bad")
    empty = Split(np.array([5]), [[]], np.array([0]))
    with pytest.raises(DataError, match="session 5 is empty"):
        check_sessions(empty, 3, "bad")


def test_split_subset_and_unknown_split_name(ml):
    part = ml.train.subset([3, 1])
    assert part.sessions == [ml.train.sessions[3], ml.train.sessions[1]]
    np.testing.assert_array_equal(part.session_ids, [3, 1])
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ml.split("dev")


# ---------- batching ----------


def test_make_batch_truncates_and_left_pads():
    batch = make_batch([[4, 5, 6], [7]], seq_len=2, pad_to=4)
    expected = torch.tensor([[0, 0, 6, 7], [0, 0, 0, 8]])
    torch.testing.assert_close(batch.items, expected)
    torch.testing.assert_close(batch.lengths, torch.tensor([2, 1]))
    torch.testing.assert_close(batch.mask, expected > 0)
    assert len(batch) == 2


def test_make_batch_refuses_empty_input():
    with pytest.raises(ValueError, match="no sessions"):
        make_batch([])
    with pytest.raises(ValueError, match="a session is empty"):
        make_batch([[1], []])


def test_session_item_sets_are_unique_and_untruncated():
    sets = session_item_sets([[3, 1, 3] + list(range(20, 32))])
    np.testing.assert_array_equal(sets[0], [1, 3] + list(range(20, 32)))

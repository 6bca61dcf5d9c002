"""Tests of alkd.experiments (cells, keys, resume) and alkd.runstate."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import alkd.experiments
from alkd import runstate
from alkd.experiments import (
    RUNNERS,
    Cell,
    Context,
    backbone_cells,
    get_profile,
    paper_table,
    recommender_cell,
    run_cell,
    run_cells,
)
from alkd.train import TrainConfig

# ---------- cells ----------


@pytest.fixture
def counting_runner(monkeypatch):
    """Register a runner of kind ``fake`` that counts its calls."""
    calls = []

    def fake(cell, ctx):
        calls.append(cell.key)
        return {"metrics": {"recall@10": 0.5 + cell.config["x"]}}

    monkeypatch.setitem(RUNNERS, "fake", fake)
    return calls


def test_run_cell_writes_config_metrics_and_provenance(tmp_path, counting_runner):
    ctx = Context(results_dir=tmp_path)
    cell = Cell("fake", "ML", {"x": 0.25})
    record = run_cell(cell, ctx)

    path = tmp_path / "cells" / f"{cell.key}.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file
    stored = json.loads(path.read_text())
    assert stored == record
    assert stored["config"] == {"x": 0.25}
    assert stored["metrics"] == {"recall@10": 0.75}
    assert (stored["kind"], stored["dataset"], stored["key"]) == (
        "fake",
        "ML",
        cell.key,
    )
    assert stored["seconds"] >= 0
    prov = stored["provenance"]
    assert prov["versions"]["torch"] and prov["versions"]["numpy"]
    assert prov["python"].count(".") == 2
    assert "git_commit" in prov


def test_provenance_records_the_commit_loaded_not_the_current_head(
    tmp_path, counting_runner, monkeypatch
):
    import alkd.experiments as experiments

    loaded = experiments.LOADED_CODE
    # a commit made while a long run is going on moves HEAD
    monkeypatch.setattr(experiments, "git_commit", lambda: "f" * 40)
    monkeypatch.setattr(experiments, "git_dirty", lambda: False)
    record = run_cell(Cell("fake", "ML", {"x": 0.5}), Context(results_dir=tmp_path))
    assert record["provenance"]["git_commit"] == loaded[0]
    assert record["provenance"]["git_dirty"] == loaded[1]


def test_git_commit_is_this_checkout_head():
    import subprocess

    from alkd.experiments import git_commit, git_dirty

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    assert git_commit() == head
    assert isinstance(git_dirty(), bool)


def test_second_run_reads_the_stored_cell(tmp_path, counting_runner):
    ctx = Context(results_dir=tmp_path)
    cell = Cell("fake", "ML", {"x": 0.0})
    first = run_cell(cell, ctx)
    second = run_cell(cell, ctx)
    assert second == first
    assert counting_runner == [cell.key]  # computed once

    records = run_cells([cell, Cell("fake", "ML", {"x": 0.1})], ctx)
    assert [r["config"]["x"] for r in records] == [0.0, 0.1]
    assert len(counting_runner) == 2  # only the missing cell ran


def test_computed_and_stored_records_list_metrics_in_the_same_order(
    tmp_path, monkeypatch
):
    """Tables iterate the metrics dict: a resumed run must see the same order."""

    def unsorted(cell, ctx):
        return {"metrics": {"recall@5": 0.1, "ndcg@5": 0.2, "recall@10": 0.3}}

    monkeypatch.setitem(RUNNERS, "unsorted", unsorted)
    ctx = Context(results_dir=tmp_path)
    cell = Cell("unsorted", "ML", {})
    computed = run_cell(cell, ctx)
    read_back = run_cell(cell, ctx)
    assert list(computed["metrics"]) == list(read_back["metrics"])
    assert list(computed) == list(read_back)


def test_a_failing_runner_stores_nothing(tmp_path, monkeypatch):
    def broken(cell, ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(RUNNERS, "broken", broken)
    with pytest.raises(RuntimeError, match="boom"):
        run_cell(Cell("broken", "ML", {}), Context(results_dir=tmp_path))
    assert not (tmp_path / "cells").exists() or not any((tmp_path / "cells").iterdir())


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no runner for cell kind 'nope'"):
        run_cell(Cell("nope", "ML", {}), Context(results_dir=tmp_path))


def test_keys_are_stable_and_differ_with_the_config():
    a = Cell("fake", "ML", {"x": 1, "y": [1, 2]})
    assert a.key == Cell("fake", "ML", {"y": [1, 2], "x": 1}).key  # key order
    assert a.key.startswith("fake-ML-")
    variants = [
        Cell("fake", "ML", {"x": 2, "y": [1, 2]}),
        Cell("fake", "ML", {"x": 1, "y": [2, 1]}),
        Cell("fake", "Games", {"x": 1, "y": [1, 2]}),
        Cell("other", "ML", {"x": 1, "y": [1, 2]}),
        Cell("fake", "ML", {"x": 1, "y": [1, 2], "z": None}),
    ]
    assert len({a.key, *(v.key for v in variants)}) == 6


def test_keys_are_the_same_in_a_fresh_interpreter():
    """No per-process hashing: a resumed run finds the cells of the last one."""
    cell = recommender_cell("ML", "stamp", 10, 0, TrainConfig(max_iters=40))
    code = (
        "from alkd.experiments import recommender_cell;"
        "from alkd.train import TrainConfig;"
        "print(recommender_cell('ML', 'stamp', 10, 0, TrainConfig(max_iters=40)).key)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.strip() == cell.key


def test_config_entries_cannot_collide_with_cell_fields():
    try:
        shadow = Cell("k", "ML", {"dataset": "ML"})
    except ValueError:
        return  # refusing the name is a fix too
    assert shadow.key != Cell("k", "ML", {}).key


def test_recommender_cells_key_the_training_config():
    a = recommender_cell("ML", "stamp", 10, 0, TrainConfig())
    b = recommender_cell("ML", "stamp", 10, 0, TrainConfig(max_iters=40))
    assert a.key != b.key
    assert a.config["train"]["max_iters"] == 10_000


def test_backbone_cells_cover_the_profile():
    profile = get_profile("paper")
    cells = backbone_cells(profile)
    heuristic = [c for c in cells if c.kind == "heuristic"]
    recommender = [c for c in cells if c.kind == "recommender"]
    assert len(heuristic) == 2 * 2  # POP, SKNN per dataset
    assert len(recommender) == 2 * 3 * 5 * 2  # datasets, backbones, seeds, dims
    assert len({c.key for c in cells}) == len(cells)
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        get_profile("huge")


def test_heuristic_cell_on_the_real_data(tmp_path, data_root, monkeypatch):
    ctx = Context(data_root=data_root, results_dir=tmp_path, progress=False)
    record = run_cell(alkd.experiments.heuristic_cell("ML", "POP"), ctx)
    m = record["metrics"]
    assert set(m) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    assert 0 < m["ndcg@10"] <= m["recall@10"] < 0.2  # POP is the floor


def test_paper_tables_use_short_names():
    t1 = paper_table("table1")
    assert set(t1["dataset"]) == {"ML", "Games"}
    assert set(t1["backbone"]) <= {"fpmc", "stamp", "attmix"}
    with pytest.raises(ValueError, match="unknown paper table"):
        paper_table("table9")


# ---------- runstate ----------


@pytest.fixture
def notebook(tmp_path: Path):
    src = tmp_path / "nb.ipynb"
    src.write_text('{"cells": []}')
    out = tmp_path / "results" / "nb.ipynb"
    out.parent.mkdir()
    out.write_text("executed")
    results = tmp_path / "results"
    (results / "cells").mkdir()
    (results / "cells" / "a.json").write_text("{}")
    return src, out, results


def state(action: str, src: Path, out: Path, results: Path, profile="smoke") -> int:
    return runstate.main([action, str(out), str(src), profile, str(results)])


def test_runstate_mark_then_current(notebook):
    src, out, results = notebook
    assert state("current", src, out, results) == 1  # never marked
    assert state("mark", src, out, results) == 0
    assert (out.parent / ".nb.stamp").is_file()
    assert state("current", src, out, results) == 0
    assert state("current", src, out, results, profile="paper") == 1


def test_runstate_invalidated_by_cells_source_or_missing_output(notebook):
    src, out, results = notebook
    state("mark", src, out, results)
    (results / "cells" / "b.json").write_text("{}")
    assert state("current", src, out, results) == 1  # the cells set changed
    state("mark", src, out, results)
    (results / "cells" / "a.json").unlink()
    assert state("current", src, out, results) == 1

    state("mark", src, out, results)
    src.write_text('{"cells": [1]}')
    assert state("current", src, out, results) == 1  # the notebook changed

    state("mark", src, out, results)
    out.unlink()
    assert state("current", src, out, results) == 1


def read_as_a_notebook(results: Path, asked: Path, *keys: str) -> None:
    """What a notebook's run_cell/stored_cells note while it reads ``keys``."""
    os.environ[alkd.experiments.ASKED_ENV] = str(asked)
    try:
        for key in keys:
            path = results / "cells" / f"{key}.json"
            data = path.read_bytes() if path.is_file() else None
            alkd.experiments.note_asked(key, data)
    finally:
        del os.environ[alkd.experiments.ASKED_ENV]


def mark_with(asked: Path, src: Path, out: Path, results: Path) -> int:
    return runstate.main(
        ["mark", str(out), str(src), "smoke", str(results), str(asked)]
    )


def test_runstate_with_asked_cells_ignores_other_cells(notebook):
    # the stamp covers the cells the notebook asked for: another profile's
    # new cell leaves it current, a change to an asked cell does not
    src, out, results = notebook
    asked = out.parent / ".nb.asked"
    read_as_a_notebook(results, asked, "a", "later", "a")  # "later" not stored
    assert mark_with(asked, src, out, results) == 0

    (results / "cells" / "other.json").write_text("{}")
    assert state("current", src, out, results) == 0

    (results / "cells" / "a.json").write_text('{"metrics": 1}')
    assert state("current", src, out, results) == 1  # an asked cell changed
    (results / "cells" / "a.json").write_text("{}")
    assert state("current", src, out, results) == 0

    (results / "cells" / "later.json").write_text("{}")
    assert state("current", src, out, results) == 1  # an asked cell appeared


def test_runstate_stamps_what_the_notebook_read_not_what_is_there_at_mark(
    notebook,
):
    # another process rewrote a cell after the notebook read it: the
    # notebook shows the old content, so it must not be stamped current
    src, out, results = notebook
    asked = out.parent / ".nb.asked"
    read_as_a_notebook(results, asked, "a")
    (results / "cells" / "a.json").write_text('{"metrics": 2}')
    mark_with(asked, src, out, results)
    assert state("current", src, out, results) == 1


def test_runstate_cell_read_twice_with_different_content_is_stale(notebook):
    src, out, results = notebook
    asked = out.parent / ".nb.asked"
    read_as_a_notebook(results, asked, "a")
    (results / "cells" / "a.json").write_text('{"metrics": 3}')
    read_as_a_notebook(results, asked, "a")
    mark_with(asked, src, out, results)
    assert state("current", src, out, results) == 1


def test_runstate_without_an_asked_file_covers_every_stored_cell(notebook):
    # a notebook that read no cell, or whose kernel did not see the
    # variable, writes no file: then any new or removed cell makes it stale
    src, out, results = notebook
    absent = out.parent / ".nb.asked"
    mark_with(absent, src, out, results)
    assert state("current", src, out, results) == 0
    (results / "cells" / "b.json").write_text("{}")
    assert state("current", src, out, results) == 1


def test_runstate_notebook_whose_kernel_read_no_cell_depends_on_code_only(
    notebook, monkeypatch
):
    # the kernel imported alkd.experiments with the variable set (the file's
    # header) and read no cell: new cells leave it current
    src, out, results = notebook
    asked = out.parent / ".nb.asked"
    monkeypatch.setenv(alkd.experiments.ASKED_ENV, str(asked))
    alkd.experiments._announce_listing()
    monkeypatch.delenv(alkd.experiments.ASKED_ENV)
    assert asked.read_text().startswith("#")

    mark_with(asked, src, out, results)
    (results / "cells" / "b.json").write_text("{}")
    assert state("current", src, out, results) == 0
    src.write_text('{"cells": [2]}')
    assert state("current", src, out, results) == 1


def test_runstate_stamp_of_the_old_layout_is_stale(notebook):
    src, out, results = notebook
    runstate.stamp_path(out).write_text("0" * 64 + "\n")  # a bare digest
    assert state("current", src, out, results) == 1


def test_cells_asked_are_listed_stored_or_not(tmp_path, monkeypatch):
    asked = tmp_path / "asked"
    monkeypatch.setenv(alkd.experiments.ASKED_ENV, str(asked))
    ctx = Context(results_dir=tmp_path, progress=False)
    stored = Cell("x", "ML", {"n": 1})
    missing = Cell("x", "ML", {"n": 2})
    ctx.cell_path(stored).parent.mkdir(parents=True)
    ctx.cell_path(stored).write_text('{"metrics": {}}')

    alkd.experiments.stored_cells([stored, missing], ctx)
    run_cell(stored, ctx)
    noted = [line.split() for line in asked.read_text().splitlines()]
    digest = hashlib.sha256(ctx.cell_path(stored).read_bytes()).hexdigest()
    assert noted == [[stored.key, digest], [missing.key, "-"], [stored.key, digest]]

    monkeypatch.delenv(alkd.experiments.ASKED_ENV)
    run_cell(stored, ctx)
    assert len(asked.read_text().splitlines()) == 3  # nothing noted without it


def test_runstate_usage_errors(capsys):
    assert runstate.main(["current"]) == 2
    assert runstate.main(["stamp", "a", "b", "c", "d"]) == 2
    assert "Usage" in capsys.readouterr().err


def test_quick_is_one_seed_and_a_part_of_seeds3_and_paper():
    # issue 6: the default run uses one seed; the three-seed profile and
    # the paper profile must reuse every quick cell (same configuration,
    # same key), so a finished quick run is a head start for both
    from alkd import ablation, figures, maintable, tuning

    quick, seeds3, paper = (get_profile(n) for n in ("quick", "seeds3", "paper"))
    assert quick.distill_seeds == (0,) and quick.seeds == (0,)
    assert seeds3.distill_seeds == (0, 1, 2) and seeds3.rec_seed == 0

    def keys(profile):
        grid = figures.GRIDS[profile.name]
        cells = (
            backbone_cells(profile)
            + ablation.table2_cells(profile)
            + [c for _, _, c in tuning.tuning_cells(profile)]
            + maintable.main_cells(profile)
            + figures.distill_cells(profile, grid)
        )
        return {c.key for c in cells}

    quick_keys = keys(quick)
    assert quick_keys < keys(seeds3)
    assert len(keys(seeds3)) > len(quick_keys)
    table2 = {c.key for c in ablation.table2_cells(quick)}
    assert table2 <= keys(paper)  # seed 0 with the seed-0 recommenders


def test_a_cell_computes_with_one_thread_whatever_the_caller_set(tmp_path, monkeypatch):
    # a float sum's order follows the thread count, so a cell's numbers
    # would depend on --jobs and OMP_NUM_THREADS if it used the caller's
    seen = []

    def fake(cell, ctx):
        seen.append(torch.get_num_threads())
        return {"metrics": {"recall@10": 0.5}}

    monkeypatch.setitem(RUNNERS, "fake", fake)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        record = run_cell(Cell("fake", "ML", {"x": 1}), Context(results_dir=tmp_path))
        assert torch.get_num_threads() == 2  # the caller's setting is back
    finally:
        torch.set_num_threads(before)

    assert seen == [1]
    assert record["provenance"]["torch_threads"] == 1

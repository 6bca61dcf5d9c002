"""Tests of the ``alkd`` command line through ``alkd.cli.main``."""

from __future__ import annotations

import json
import shutil

import pytest

import alkd.cli
import alkd.fetch
from alkd.cli import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def stats_rows(text: str) -> dict[str, list[int]]:
    """``{dataset: [sessions, items, interactions, train, valid, test]}``."""
    lines = text.strip().splitlines()
    assert lines[0].split() == [
        "dataset",
        "sessions",
        "items",
        "interactions",
        "train",
        "valid",
        "test",
    ]
    rows = {}
    for line in lines[1:]:
        name, *values = line.split()
        rows[name] = [int(v.replace(",", "")) for v in values]
    return rows


def test_stats_prints_the_release_numbers(data_root, capsys):
    assert main(["stats", "--data", str(data_root)]) == 0
    rows = stats_rows(capsys.readouterr().out)
    assert rows["ML"][:3] == [12_323, 8_475, 112_034]
    assert rows["Games"][:3] == [20_091, 26_138, 132_677]
    for sessions, _, _, train, valid, test in rows.values():
        assert train + valid + test == sessions
        assert train == int(0.6 * sessions)


def test_stats_reads_alkd_data_and_one_dataset(alkd_data, capsys):
    assert main(["stats", "--datasets", "ML"]) == 0
    assert list(stats_rows(capsys.readouterr().out)) == ["ML"]


def test_a_missing_data_folder_is_exit_code_2(tmp_path, caplog):
    assert main(["stats", "--data", str(tmp_path), "--datasets", "Games"]) == 2
    assert "dataset folder not found" in caplog.text
    assert str(tmp_path / "Games") in caplog.text


def test_unknown_arguments_exit_with_usage():
    with pytest.raises(SystemExit) as err:
        main(["train", "--dataset", "Books", "--backbone", "stamp"])
    assert err.value.code == 2


def test_fetch_data_from_a_file_url(tmp_path, data_root, monkeypatch):
    site = tmp_path / "datasets"
    (site / "ML").mkdir(parents=True)
    shutil.copyfile(data_root / "ML/ML_random.base", site / "ML/ML_random.base")
    pins = {"ML/ML_random.base": alkd.fetch.pinned_checksums()["ML/ML_random.base"]}
    monkeypatch.setattr(alkd.fetch, "pinned_checksums", lambda: pins)

    dest = tmp_path / "data"
    assert main(["fetch-data", "--data", str(dest), "--url", site.as_uri()]) == 0
    got = (dest / "ML/ML_random.base").read_bytes()
    assert got == (data_root / "ML/ML_random.base").read_bytes()


def test_fetch_data_checksum_mismatch_is_exit_code_2(tmp_path, monkeypatch, caplog):
    site = tmp_path / "datasets"
    (site / "ML").mkdir(parents=True)
    (site / "ML/ML_random.base").write_text("0\n1\n")
    monkeypatch.setattr(
        alkd.fetch, "pinned_checksums", lambda: {"ML/ML_random.base": "0" * 64}
    )
    dest = tmp_path / "data"
    assert main(["fetch-data", "--data", str(dest), "--url", site.as_uri()]) == 2
    assert "does not match pinned" in caplog.text
    assert not (dest / "ML/ML_random.base").exists()


def test_train_prints_json_on_a_tiny_dataset(
    make_pattern_dataset, tmp_path, capsys, monkeypatch
):
    ds = make_pattern_dataset()
    monkeypatch.setattr(alkd.cli, "load_dataset", lambda name, root=None: ds)
    argv = ["train", "--dataset", "ML", "--backbone", "fpmc", "--dim", "8"]
    argv += ["--max-iters", "20", "--work", str(tmp_path), "--device", "cpu"]
    assert main([*argv, "--no-progress", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["backbone"], result["dim"], result["seed"]) == ("fpmc", 8, 3)
    assert result["best_iter"] == 20
    assert result["valid"].keys() == result["test"].keys()


# a few seconds on one thread; with two threads contending on a shared
# 2-core machine it took 20-30 s (hence the module's single-thread fixture)
def test_train_smoke_budget_prints_test_metrics(data_root, tmp_path, capsys):
    argv = [
        "train",
        "--dataset",
        "ML",
        "--backbone",
        "stamp",
        "--dim",
        "10",
        "--max-iters",
        "40",
        "--data",
        str(data_root),
        "--work",
        str(tmp_path),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["dataset"], result["backbone"], result["dim"]) == ("ML", "stamp", 10)
    assert set(result["test"]) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    assert 0 < result["test"]["recall@10"] < 1
    assert result["best_iter"] in (20, 40)
    assert list((tmp_path / "models" / "ML").glob("stamp-d10-seed0-*.pt"))


def test_cells_command_filters_datasets_and_partitions_shards(monkeypatch, tmp_path):
    import alkd.experiments

    seen: dict[str, list[str]] = {}

    def fake_run_cell(cell, ctx):
        seen.setdefault(shard, []).append(cell.key)
        assert cell.dataset == "ML"

    monkeypatch.setattr(alkd.experiments, "run_cell", fake_run_cell)
    for shard in ("0/2", "1/2"):
        code = main(
            [
                "cells",
                "--profile",
                "smoke",
                "--tables",
                "table2",
                "--datasets",
                "ML",
                "--shard",
                shard,
                "--results",
                str(tmp_path),
            ]
        )
        assert code == 0
    both = seen["0/2"] + seen["1/2"]
    assert len(both) == len(set(both)) > 0  # disjoint shards
    from alkd import ablation
    from alkd.experiments import get_profile

    want = {c.key for c in ablation.table2_cells(get_profile("smoke"), datasets=["ML"])}
    assert set(both) == want


def test_cells_missing_lists_what_is_left_and_computes_nothing(
    monkeypatch, tmp_path, capsys
):
    import alkd.experiments
    from alkd import ablation
    from alkd.experiments import Context, get_profile

    def refuse(cell, ctx):
        raise AssertionError("--missing must not compute")

    monkeypatch.setattr(alkd.experiments, "run_cell", refuse)
    cells = ablation.table2_cells(get_profile("smoke"), datasets=["ML"])
    stored = Context(results_dir=tmp_path).cell_path(cells[0])
    stored.parent.mkdir(parents=True)
    stored.write_text("{}")

    argv = ["cells", "--missing", "--profile", "smoke", "--tables", "table2"]
    assert main(argv + ["--datasets", "ML", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"table2: {len(cells) - 1} of {len(cells)} cells missing" in out
    lines = out.splitlines()
    # smoke has one seed, so every (backbone, strategy) group holds one cell
    for i, cell in enumerate(cells):
        label = f"  ML {cell.config['backbone']} {cell.config['strategy']}: 1"
        assert (label in lines) == (i > 0)


def listed_keys(monkeypatch, tmp_path, tables: list[str], profile="smoke") -> list[str]:
    """The keys ``alkd cells --tables ...`` would compute, in both shards."""
    import alkd.experiments

    keys: list[str] = []
    monkeypatch.setattr(alkd.experiments, "run_cell", lambda c, ctx: keys.append(c.key))
    for shard in ("0/2", "1/2"):
        argv = ["cells", "--profile", profile, "--tables", *tables]
        assert main(argv + ["--shard", shard, "--results", str(tmp_path)]) == 0
    return keys


def test_figure_and_quality_shards_list_the_cells_their_notebooks_read(
    monkeypatch, tmp_path
):
    # a shard list that drifts from what the notebook asks for wastes the
    # parallel work and leaves the notebook computing alone, so compare them
    from alkd import figures
    from alkd import teacher_quality as tq
    from alkd.experiments import get_profile

    profile = get_profile("quick")
    grid = figures.GRIDS["quick"]
    asked: list[str] = []

    def record(cells, ctx):
        cells = list(cells)
        asked.extend(c.key for c in cells)
        return [{"config": {"seed": 0}, "metrics": {"ndcg@10": 0.0}} for _ in cells]

    monkeypatch.setattr(figures, "run_cells", record)
    for draw in (figures.figure2a, figures.figure2b, figures.figure3, figures.figure4):
        draw(profile, None, grid)
    students = {c.key for c in figures.recommender_cells(profile, grid)}
    distilled = set(listed_keys(monkeypatch, tmp_path, ["figures"], "quick"))
    assert students | distilled == set(asked)
    assert not students & distilled
    assert len(distilled) == len(set(asked)) - len(grid.dims)

    recommenders = set(listed_keys(monkeypatch, tmp_path, ["backbones"], "quick"))
    assert students <= recommenders  # trained in the first phase, before any figure

    quality = listed_keys(monkeypatch, tmp_path, ["quality"], "quick")
    assert sorted(quality) == sorted(c.key for c in tq.quality_cells(profile))


def test_local_teacher_shards_list_table2_on_ml_with_the_local_teacher(
    monkeypatch, tmp_path
):
    from alkd import ablation
    from alkd.experiments import get_profile

    keys = listed_keys(monkeypatch, tmp_path, ["table2-local"])
    want = ablation.table2_cells(get_profile("smoke"), datasets=["ML"], teacher="local")
    assert sorted(keys) == sorted(c.key for c in want)
    recorded = ablation.table2_cells(get_profile("smoke"), datasets=["ML"])
    assert not set(keys) & {c.key for c in recorded}


def test_local_table1_shards_add_only_dllm2rec_cells_to_the_recorded_table1(
    monkeypatch, tmp_path
):
    # the local Table 1 reuses every KD-baseline cell that does not ask the LLM
    from alkd import maintable
    from alkd.experiments import get_profile

    keys = set(listed_keys(monkeypatch, tmp_path, ["table1-local"]))
    recorded = maintable.main_cells(get_profile("smoke"), datasets=["ML"])
    same = {c.key for c in recorded if c.config["method"] != "dllm2rec"}
    llm = {c.key for c in recorded if c.config["method"] == "dllm2rec"}
    assert same < keys
    assert not llm & keys
    assert len(keys - same) == len(llm) > 0


def test_processes_sharing_claims_split_the_missing_cells_as_they_go(tmp_path):
    from alkd import ablation
    from alkd.cli import claimed_cells
    from alkd.experiments import Context, get_profile

    ctx = Context(results_dir=tmp_path)
    cells = ablation.table2_cells(get_profile("smoke"), datasets=["ML"])
    stored = ctx.cell_path(cells[-1])
    stored.parent.mkdir(parents=True)
    stored.write_text("{}")
    claims = tmp_path / "claims"
    claims.mkdir()

    # b computes one cell while a, three times as fast, computes three; then
    # b is stuck and a finishes the queue. Fixed shards would leave b half
    fast, slow = claimed_cells(cells, ctx, claims), claimed_cells(cells, ctx, claims)
    got_fast = [next(fast) for _ in range(3)]
    got_slow = [next(slow)]
    got_fast += list(fast)
    missing = {c.key for c in cells} - {cells[-1].key}
    fast_keys = {c.key for c in got_fast} - {cells[-1].key}
    slow_keys = {c.key for c in got_slow} - {cells[-1].key}
    assert fast_keys | slow_keys == missing and not fast_keys & slow_keys
    assert len(slow_keys) == 1 and len(fast_keys) == len(missing) - 1
    assert cells[-1] in got_fast  # a stored cell is read by whoever meets it


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--claims", "NOWHERE"], "--claims NOWHERE: no such folder"),
        (["--claims", ".", "--shard", "1/2"], "give one"),
    ],
)
def test_cells_claims_errors_name_the_argument(tmp_path, caplog, extra, message):
    argv = ["cells", "--profile", "smoke", "--tables", "table2"]
    extra = [str(tmp_path / e) if e == "NOWHERE" else e for e in extra]
    message = message.replace("NOWHERE", str(tmp_path / "NOWHERE"))
    assert main(argv + extra + ["--results", str(tmp_path)]) == 2
    assert message in caplog.text

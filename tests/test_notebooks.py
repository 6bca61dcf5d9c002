"""The notebooks: thin, parameterised, and what the smoke run wrote.

The output checks read the results of ``bash run_all.sh --profile smoke``;
``.ci/run`` runs it first and points ``ALKD_SMOKE_RESULTS`` at its folder.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import load_tool
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMOKE = os.environ.get("ALKD_SMOKE_RESULTS")
needs_smoke = pytest.mark.skipif(
    not SMOKE, reason="ALKD_SMOKE_RESULTS unset: run after `run_all.sh --profile smoke`"
)


def test_every_notebook_is_run_by_run_all():
    script = (ROOT / "run_all.sh").read_text()
    line = next(x for x in script.splitlines() if x.startswith("notebooks=("))
    listed = set(line.split("(", 1)[1].rstrip(")").split())
    assert listed == {p.stem for p in NOTEBOOKS}


def _generated_notebooks() -> dict:
    return load_tool("make_notebooks").NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_what_the_generator_writes(path):
    # hand edits to notebooks/ are lost the next time the generator runs
    generated = _generated_notebooks()[path.stem]
    committed = nbformat.read(path, as_version=4)

    def cells(nb):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]

    assert cells(committed) == cells(generated)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_a_clean_parameterised_source(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
            ast.parse(cell.source)  # every code cell is valid Python


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_parameters_keep_their_types(path):
    nb = load_notebook_node(str(path))  # as papermill reads it
    params = {"profile": "smoke", "datasets": ["ML"], "seeds": [0, 1], "device": "cpu"}
    injected = parameterize_notebook(nb, params)
    cell = next(
        c for c in injected.cells if "injected-parameters" in c.metadata.get("tags", [])
    )
    namespace: dict = {}
    exec(cell.source, namespace)  # noqa: S102 - our own generated assignments
    assert namespace["datasets"] == ["ML"] and namespace["seeds"] == [0, 1]
    assert isinstance(namespace["seeds"], list)


@needs_smoke
@pytest.mark.parametrize(
    "name, columns",
    [
        (
            "table1_backbones.csv",
            {"dataset", "backbone", "role", "seed", "metric", "value"},
        ),
        ("table1_backbones_vs_paper.csv", {"mean", "std", "paper"}),
        (
            "table2_ablation.csv",
            {
                "strategy",
                "metric",
                "mean",
                "std",
                "paper",
                "effective",
                "similar",
                "incorrect",
            },
        ),
        ("dataset_stats.csv", {"sessions", "items", "interactions"}),
        (
            "teacher_quality.csv",
            {"dataset", "teacher", "score", "candidates", "hit@5", "ndcg@25"},
        ),
        (
            "efficiency_llm_cost.csv",
            {"teacher", "seconds_per_call", "minutes_selected", "minutes_all"},
        ),
        ("efficiency_params.csv", {"student_params", "teacher_params"}),
        ("efficiency_latency.csv", {"role", "ms_per_session_batched"}),
        ("table1_main.csv", {"dataset", "backbone", "method", "metric", "mean"}),
        ("table1_tuning.csv", {"method", "options", "valid_recall@10", "best"}),
    ],
)
def test_smoke_tables_have_their_columns(name, columns):
    frame = pd.read_csv(Path(SMOKE) / name)
    assert columns <= set(frame.columns)
    assert len(frame) > 0
    if "value" in frame:
        assert frame["value"].between(0, 1).all()


@needs_smoke
def test_smoke_tuning_chose_one_setting_per_complete_grid():
    grid = pd.read_csv(Path(SMOKE) / "table1_tuning.csv")
    assert set(grid["method"]) == {"ftd"} and len(grid) == 3
    assert grid["best"].sum() == 1
    best = grid.loc[grid["best"], "valid_recall@10"].iloc[0]
    assert best == grid["valid_recall@10"].max()


@needs_smoke
def test_smoke_figures_are_real_pictures():
    figures = sorted((Path(SMOKE) / "figures").glob("*.png"))
    assert figures, "no figures written"
    for fig in figures:
        data = fig.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, fig


@needs_smoke
def test_smoke_notebooks_were_executed_without_errors():
    executed = sorted((Path(SMOKE) / "notebooks").glob("*.ipynb"))
    assert {p.stem for p in executed} == {p.stem for p in NOTEBOOKS}
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bogus"], "unknown argument --bogus"),
        (["--local-teacher", "--profile", "huge"], "unknown profile 'huge'"),
        (["--jobs", "0"], "--jobs wants a positive whole number, not '0'"),
        (["--jobs", "two"], "--jobs wants a positive whole number, not 'two'"),
    ],
)
def test_run_all_refuses_bad_arguments_before_any_work(argv, message, tmp_path):
    # --local-teacher is accepted, so the bad profile is what stops the run
    import subprocess

    run = subprocess.run(
        ["bash", str(ROOT / "run_all.sh"), *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ALKD_RESULTS": str(tmp_path / "r")},
    )
    assert run.returncode == 2
    assert message in run.stderr
    assert not (tmp_path / "r").exists()


def test_out_dir_takes_the_tables_and_figures_away_from_the_store(data_root, tmp_path):
    # how the paper profile keeps the quick tables: same store, own out_dir
    import papermill

    store, out = tmp_path / "store", tmp_path / "out"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "data.ipynb"),
        str(tmp_path / "data.ipynb"),
        parameters={
            "profile": "smoke",
            "data_dir": str(data_root),
            "results_dir": str(store),
            "out_dir": str(out),
        },
        kernel_name="python3",
        progress_bar=False,
        cwd=str(ROOT),
    )
    stats = pd.read_csv(out / "dataset_stats.csv")
    assert set(stats["dataset"]) == {"ML", "Games"}
    assert (out / "figures" / "session_lengths.png").stat().st_size > 1000
    assert not store.exists() or not list(store.rglob("*.csv"))


def test_default_jobs_count_the_cores_whatever_omp_num_threads_says():
    # GNU nproc reports OMP_NUM_THREADS as the core count; the README tells
    # users to set it to 1, which must not turn the default parallel processes off
    script = (ROOT / "run_all.sh").read_text()
    lines = [x for x in script.splitlines() if x.startswith(("cores=", "jobs="))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_THREAD_LIMIT": "1"}
    out = subprocess.run(
        ["bash", "-c", "\n".join([*lines, 'echo "$jobs"'])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == min(len(os.sched_getaffinity(0)), 4)

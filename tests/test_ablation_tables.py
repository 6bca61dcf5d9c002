"""Table 2 built from stored cells only (a long run still in progress)."""

import json

import pytest

from alkd.experiments import Context, get_profile

QUICK = get_profile("quick")


@pytest.fixture
def ctx(tmp_path):
    return Context(results_dir=tmp_path / "results", work_dir=tmp_path / "runs")


def test_table2_without_compute_reads_only_stored_cells(ctx, monkeypatch):
    import alkd.ablation as ablation

    def refuse(*args, **kwargs):
        raise AssertionError("compute=False must not run a cell")

    monkeypatch.setattr(ablation, "run_cells", refuse)
    cells = ablation.table2_cells(QUICK, datasets=["ML"], backbones=["stamp"])
    record = {
        "key": cells[0].key,
        "kind": "distill",
        "dataset": "ML",
        "config": cells[0].config,
        "metrics": {"recall@10": 0.01},
        "pool_size": 10,
    }
    path = ctx.cell_path(cells[0])
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))

    metrics, _ = ablation.table2(
        QUICK, ctx, compute=False, datasets=["ML"], backbones=["stamp"]
    )
    assert set(metrics["strategy"]) == {cells[0].config["strategy"]}
    assert list(metrics["value"]) == [0.01]

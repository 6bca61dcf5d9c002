"""Table 2 built from stored cells only (a long run still in progress)."""

import json

import pytest

from alkd.experiments import Context, get_profile

SEEDS3 = get_profile("seeds3")  # three distillation seeds


@pytest.fixture
def ctx(tmp_path):
    return Context(results_dir=tmp_path / "results", work_dir=tmp_path / "runs")


def test_table2_without_compute_reads_only_stored_cells(ctx, monkeypatch):
    import alkd.ablation as ablation

    def refuse(*args, **kwargs):
        raise AssertionError("compute=False must not run a cell")

    monkeypatch.setattr(ablation, "run_cells", refuse)
    cells = ablation.table2_cells(SEEDS3, datasets=["ML"], backbones=["stamp"])
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
        SEEDS3, ctx, compute=False, datasets=["ML"], backbones=["stamp"]
    )
    assert set(metrics["strategy"]) == {cells[0].config["strategy"]}
    assert list(metrics["value"]) == [0.01]


def test_table2_marks_cells_whose_distillation_kept_the_student(ctx, monkeypatch):
    import alkd.ablation as ablation
    from alkd import report

    cells = ablation.table2_cells(
        SEEDS3, datasets=["ML"], backbones=["fpmc"], strategies=["random"]
    )
    for cell, best_iter in zip(cells[:2], [0, 40]):
        record = {
            "key": cell.key,
            "kind": "distill",
            "dataset": "ML",
            "config": cell.config,
            "metrics": {"recall@10": 0.01, "ndcg@10": 0.005},
            "fit": {"best_iter": best_iter},
            "diagnostics": {
                "effective": 0.2,
                "similar": 0.3,
                "incorrect": 0.5,
                "difficulty_percentile": 50.0,
            },
        }
        path = ctx.cell_path(cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))

    metrics, diag = ablation.table2(
        SEEDS3,
        ctx,
        compute=False,
        datasets=["ML"],
        backbones=["fpmc"],
        strategies=["random"],
    )
    assert sorted(diag["kept_student"]) == [0.0, 1.0]

    side = report.table2_vs_paper(metrics, diag)
    assert set(side["kept_student"]) == {0.5}  # one of the two seeds

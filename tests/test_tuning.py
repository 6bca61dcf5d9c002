"""The validation tuning record of the KD baselines (alkd.tuning)."""

import json

import pytest

from alkd.baselines import tuning_grid
from alkd.experiments import Context, get_profile
from alkd.maintable import main_cells
from alkd.tuning import (
    best_options,
    override_beyond_defaults,
    tuned_methods,
    tuning_cells,
    tuning_table,
)

QUICK = get_profile("quick")


def test_tuned_methods_are_those_with_a_grid():
    assert tuned_methods() == ("de", "ftd", "htd")


def test_default_entries_are_dropped_from_overrides():
    assert override_beyond_defaults("de", {"n_experts": 30, "kd_weight": 0.01}) == {}
    assert override_beyond_defaults("de", {"n_experts": 5, "kd_weight": 0.01}) == {
        "n_experts": 5
    }


def test_the_default_setting_is_the_table1_cell():
    table1 = {c.key for c in main_cells(QUICK, backbones=["fpmc"])}
    for method in tuned_methods():
        entries = [e for e in tuning_cells(QUICK) if e[0] == method]
        assert len(entries) == len(tuning_grid(method))
        shared = [cell for _, options, cell in entries if cell.key in table1]
        assert len(shared) == 1, method
        assert shared[0].config["options"] == {}


def _store(ctx, cell, valid_recall, test_recall):
    record = {
        "key": cell.key,
        "kind": cell.kind,
        "dataset": cell.dataset,
        "config": cell.config,
        "valid": {"recall@10": valid_recall, "ndcg@10": 0.0},
        "metrics": {"recall@10": test_recall, "ndcg@10": 0.0},
    }
    path = ctx.cell_path(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.fixture
def ctx(tmp_path):
    return Context(results_dir=tmp_path / "results", work_dir=tmp_path / "runs")


def test_best_is_chosen_on_validation_not_test(ctx):
    ftd = [e for e in tuning_cells(QUICK) if e[0] == "ftd"]
    # the last setting wins on test, the first on validation
    for i, (_, _, cell) in enumerate(ftd):
        _store(ctx, cell, valid_recall=0.3 - 0.1 * i, test_recall=0.1 * i)

    table = tuning_table(QUICK, ctx, compute=False)
    best = table[table.best]
    assert list(best.method) == ["ftd"]
    assert best.iloc[0].key == ftd[0][2].key
    assert best_options(table) == {"ftd": ftd[0][1]}


def test_a_tie_goes_to_the_default_setting(ctx):
    htd = [e for e in tuning_cells(QUICK) if e[0] == "htd"]
    assert htd[0][1] != {}  # the default is not first, so order cannot decide
    for _, _, cell in htd:
        _store(ctx, cell, valid_recall=0.25, test_recall=0.1)

    table = tuning_table(QUICK, ctx, compute=False)
    assert best_options(table) == {"htd": {}}


def test_an_incomplete_grid_chooses_nothing(ctx):
    de = [e for e in tuning_cells(QUICK) if e[0] == "de"]
    for _, _, cell in de[:-1]:
        _store(ctx, cell, 0.2, 0.2)

    table = tuning_table(QUICK, ctx, compute=False)
    assert len(table) == len(de) - 1
    assert not table.best.any()
    assert best_options(table) == {}


def test_table1_runs_the_chosen_setting():
    tuned = {"htd": {"kd_weight": 0.01}}
    cells = main_cells(QUICK, datasets=["Games"], methods=["htd", "dsl"], tuned=tuned)
    for cell in cells:
        expected = tuned.get(cell.config["method"], {})
        assert cell.config["options"] == expected


def test_smoke_tunes_one_method_only():
    smoke = get_profile("smoke")
    assert {method for method, _, _ in tuning_cells(smoke)} == {"ftd"}

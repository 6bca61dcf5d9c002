"""Figures 2-4: which cells each profile asks for, and how seeds are averaged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from alkd import figures
from alkd.experiments import get_profile

REPO = Path(__file__).resolve().parents[1]


def cells_by_figure(profile_name: str) -> dict[str, list]:
    profile = get_profile(profile_name)
    grid = figures.GRIDS[profile_name]
    return {
        "2a": figures.figure2a_cells(profile, grid),
        "2b": figures.figure2b_cells(profile, grid),
        "3": figures.figure3_cells(profile, grid),
        "4": figures.figure4_cells(profile, grid),
    }


def point_and_seed(figure: str, entry: tuple) -> tuple[tuple, int]:
    """(the grid point, the distillation seed) of one figure entry."""
    cell = entry[2] if figure == "2a" else entry[-1]
    point = tuple(entry[:1]) if figure == "2a" else tuple(entry[:-1])
    return point, cell.config["seed"]


@pytest.mark.parametrize(
    ("profile_name", "seeds"),
    [("smoke", {0}), ("quick", {0}), ("seeds3", {0}), ("paper", {0, 1, 2, 3, 4})],
)
def test_every_grid_point_has_one_cell_per_figure_seed(profile_name, seeds):
    for figure, entries in cells_by_figure(profile_name).items():
        by_point: dict[tuple, list[int]] = {}
        for entry in entries:
            point, seed = point_and_seed(figure, entry)
            by_point.setdefault(point, []).append(seed)
        for point, got in by_point.items():
            assert sorted(got) == sorted(seeds), (figure, point)


def test_paper_figure_students_come_from_each_seed_s_recommenders():
    # the paper profile retrains the recommenders with every seed, so Figure
    # 2a's plain student and ALKDRec's teacher at seed s are seed s's models
    for dim, student, alkdrec in cells_by_figure("paper")["2a"]:
        seed = alkdrec.config["seed"]
        assert student.config["seed"] == seed
        assert alkdrec.config["rec_seed"] == seed
        assert student.config["dim"] == dim


def test_reduced_profiles_keep_the_seed_zero_recommenders():
    for _, student, alkdrec in cells_by_figure("seeds3")["2a"]:
        assert student.config["seed"] == 0 == alkdrec.config["rec_seed"]


@pytest.mark.parametrize("profile_name", ["quick", "seeds3"])
def test_the_committed_store_holds_every_cell_of_the_reduced_profiles(
    profile_name,
):
    # a change to how the figures (or any table) build their cells that
    # changed a key would orphan the committed cells and make run_all
    # recompute them; the local-teacher tables are committed only in part
    from alkd.cli import cell_listings
    from alkd.experiments import Context

    ctx = Context(results_dir=REPO / "results", progress=False)
    listing = cell_listings(get_profile(profile_name), ctx)
    missing = {}
    for table, cells in listing.items():
        if table.endswith("-local"):
            continue
        absent = [c.key for c in cells() if not ctx.cell_path(c).is_file()]
        if absent:
            missing[table] = absent[:3]
    assert not missing


def test_a_figure_frame_holds_every_seed_for_the_plot_to_average(monkeypatch):
    profile = get_profile("paper")
    grid = figures.GRIDS["paper"]

    def fake_run(cells, ctx):
        return [
            {"config": c.config, "metrics": {"ndcg@10": float(c.config["seed"])}}
            for c in cells
        ]

    monkeypatch.setattr(figures, "run_cells", fake_run)
    frame = figures.figure4(profile, None, grid)
    assert Counter(frame["budget"]) == {b: 5 for b in grid.budgets}
    means = frame.groupby("budget")["ndcg@10"].mean()
    assert (means == 2.0).all()  # the mean of seeds 0-4, one row per seed

    fig = figures.plot_lines(frame, "budget", "ndcg@10", None, "Figure 4")
    assert fig.axes[0].lines  # seaborn drew the mean line

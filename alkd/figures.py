"""Figures 2-4 of the paper: the cells they need and the plots.

All figures use FPMC on ML with the recorded GPT-4 teacher, as the paper's
Figure 2a does; the grids are the profile's (reduced in ``quick`` and ``seeds3``),
and so are the seeds (``Profile.figure_distill_seeds``: the first distillation
seed in the reduced profiles, all five in ``paper``, where each point is the
mean over seeds and the plots draw its spread).

- Figure 2a: ndcg@10 against the student's latent dimension, Student vs
  ALKDRec.
- Figure 2b: ALKDRec vs RAD-BC over the assumed rate c of correct LLM
  answers. Definition used here: both policies are told that a fraction c
  of the pool will be answered correctly; ALKDRec splits it 1:5 into
  effective and similar (ratios c/6 : 5c/6 : 1 - c), RAD-BC takes c as its
  correct fraction.
- Figure 3: ndcg@10 over a grid of effective and similar ratios (incorrect
  = 1 - effective - similar).
- Figure 4: ndcg@5 and ndcg@10 against the number of distilled sessions |B|.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are written, never shown

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from alkd.ablation import distill_cell  # noqa: E402
from alkd.distill import DistillConfig  # noqa: E402
from alkd.experiments import (  # noqa: E402
    Cell,
    Context,
    Profile,
    recommender_cell,
    run_cells,
)


@dataclass(frozen=True)
class FigureGrid:
    dims: tuple[int, ...] = (5, 10, 20, 50)
    correct_rates: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    effective: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    similar: tuple[float, ...] = (0.3, 0.5, 0.6)
    budgets: tuple[int, ...] = (100, 250, 500, 1000, 2000)


GRIDS = {
    "smoke": FigureGrid(
        dims=(5, 10),
        correct_rates=(0.6,),
        effective=(0.1,),
        similar=(0.5,),
        budgets=(100,),
    ),
    "quick": FigureGrid(),
    "seeds3": FigureGrid(),
    "paper": FigureGrid(
        dims=(5, 10, 20, 50, 100),
        correct_rates=(0.1, 0.2, 0.4, 0.6, 0.8, 0.9),
        effective=(0.05, 0.1, 0.2, 0.3, 0.4),
        similar=(0.1, 0.3, 0.5, 0.6),
        budgets=(100, 250, 500, 750, 1000, 2000, 4000),
    ),
}


def _cell(profile: Profile, strategy: str, seed: int, backbone: str = "fpmc", **kw):
    return distill_cell(
        "ML",
        backbone,
        strategy,
        seed,
        rec_seed=profile.rec_seed,
        train=profile.train,
        distill_config=DistillConfig(train=profile.distill_train),
        **kw,
    )


def _frame(records, **labels) -> pd.DataFrame:
    return pd.DataFrame(
        [{**labels, "seed": r["config"]["seed"], **r["metrics"]} for r in records]
    )


def figure2a_cells(
    profile: Profile, grid: FigureGrid, backbone: str = "fpmc"
) -> list[tuple[int, Cell, Cell]]:
    """(dim, the plain student's cell, ALKDRec's cell): each dimension, seed."""
    out = []
    for seed in profile.figure_distill_seeds:
        rec_seed = seed if profile.rec_seed is None else profile.rec_seed
        for dim in grid.dims:
            student = recommender_cell("ML", backbone, dim, rec_seed, profile.train)
            alkdrec = _cell(
                profile, "alkdrec", seed, backbone=backbone, student_dim=dim
            )
            out.append((dim, student, alkdrec))
    return out


def figure2b_cells(
    profile: Profile, grid: FigureGrid, backbone: str = "fpmc"
) -> list[tuple[float, str, Cell]]:
    """(correct rate c, method, cell): both policies told the same c."""
    out = []
    for seed in profile.figure_distill_seeds:
        for c in grid.correct_rates:
            ratios = (c / 6, 5 * c / 6, 1 - c)
            for strategy, name in (("alkdrec", "ALKDRec"), ("rad-bc", "RAD-BC")):
                cell = _cell(profile, strategy, seed, backbone=backbone, ratios=ratios)
                out.append((c, name, cell))
    return out


def figure3_cells(
    profile: Profile, grid: FigureGrid, backbone: str = "fpmc"
) -> list[tuple[float, float, Cell]]:
    """(effective, similar, cell) over the grid and seeds; incorrect: the rest."""
    return [
        (
            ef,
            si,
            _cell(
                profile,
                "alkdrec",
                seed,
                backbone=backbone,
                ratios=(ef, si, 1 - ef - si),
            ),
        )
        for seed in profile.figure_distill_seeds
        for ef in grid.effective
        for si in grid.similar
        if ef + si < 1
    ]


def figure4_cells(
    profile: Profile, grid: FigureGrid, backbone: str = "fpmc"
) -> list[tuple[int, Cell]]:
    """(|B|, ALKDRec's cell) for each budget and seed."""
    return [
        (budget, _cell(profile, "alkdrec", seed, backbone=backbone, budget=budget))
        for seed in profile.figure_distill_seeds
        for budget in grid.budgets
    ]


def recommender_cells(
    profile: Profile, grid: FigureGrid, backbone: str = "fpmc"
) -> list[Cell]:
    """The plain students of Figure 2a (trained before any distillation)."""
    return [student for _, student, _ in figure2a_cells(profile, grid, backbone)]


def distill_cells(
    profile: Profile, grid: FigureGrid, backbone: str = "fpmc"
) -> list[Cell]:
    """Every distillation cell of Figures 2-4, each once, in figure order.

    What ``alkd cells --tables figures`` computes in parallel processes
    before the figures notebook, which then reads them stored.
    """
    cells = [c for _, _, c in figure2a_cells(profile, grid, backbone)]
    cells += [c for _, _, c in figure2b_cells(profile, grid, backbone)]
    cells += [c for _, _, c in figure3_cells(profile, grid, backbone)]
    cells += [c for _, c in figure4_cells(profile, grid, backbone)]
    return list({c.key: c for c in cells}.values())


def figure2a(
    profile: Profile, ctx: Context, grid: FigureGrid, backbone: str = "fpmc"
) -> pd.DataFrame:
    """ndcg@10 vs student dimension: the plain student and ALKDRec."""
    frames = []
    for dim, student, alkdrec in figure2a_cells(profile, grid, backbone):
        frames.append(_frame(run_cells([student], ctx), dim=dim, method="Student"))
        frames.append(_frame(run_cells([alkdrec], ctx), dim=dim, method="ALKDRec"))
    return pd.concat(frames, ignore_index=True)


def figure2b(
    profile: Profile, ctx: Context, grid: FigureGrid, backbone: str = "fpmc"
) -> pd.DataFrame:
    frames = [
        _frame(run_cells([cell], ctx), correct_rate=c, method=name)
        for c, name, cell in figure2b_cells(profile, grid, backbone)
    ]
    return pd.concat(frames, ignore_index=True)


def figure3(
    profile: Profile, ctx: Context, grid: FigureGrid, backbone: str = "fpmc"
) -> pd.DataFrame:
    frames = [
        _frame(run_cells([cell], ctx), effective=ef, similar=si)
        for ef, si, cell in figure3_cells(profile, grid, backbone)
    ]
    return pd.concat(frames, ignore_index=True)


def figure4(
    profile: Profile, ctx: Context, grid: FigureGrid, backbone: str = "fpmc"
) -> pd.DataFrame:
    frames = [
        _frame(run_cells([cell], ctx), budget=budget)
        for budget, cell in figure4_cells(profile, grid, backbone)
    ]
    return pd.concat(frames, ignore_index=True)


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    plt.close(fig)
    return path


def plot_lines(frame: pd.DataFrame, x: str, y, hue: str | None, title: str):
    """A seaborn line plot (mean over seeds with its spread) of one or more y."""
    ys = [y] if isinstance(y, str) else list(y)
    fig, axes = plt.subplots(1, len(ys), figsize=(4.5 * len(ys), 3.4), squeeze=False)
    for ax, col in zip(axes[0], ys):
        sns.lineplot(data=frame, x=x, y=col, hue=hue, marker="o", ax=ax)
        ax.set_title(f"{title}: {col}")
    fig.tight_layout()
    return fig


def plot_heatmap(frame: pd.DataFrame, title: str, value: str = "ndcg@10"):
    table = frame.groupby(["effective", "similar"])[value].mean().unstack()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    sns.heatmap(table, annot=True, fmt=".4f", cmap="viridis", ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig

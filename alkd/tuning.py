"""The validation tuning record of the KD baselines (issue #5, BASELINES.md).

Where BASELINES.md gives a grid for a method's distillation weight (DE:
{5, 30} experts x {1e-3, 1e-2}; FTD, HTD: lambda x {0.1, 1, 10}), each
setting is one baseline cell trained on one (dataset, backbone, seed),
Games with FPMC and the profile's first distillation seed, and compared on
the validation split only, by the metric early stopping selects on
(recall@10). The winner per method is what Table 1 then runs on test for
every dataset and backbone. A tie goes to BASELINES.md's default setting.

Why Games/FPMC: it is the configuration whose d = 10 students train well
here (Student recall@10 0.026 on test). On ML/FPMC, seed 0, every DE and
FTD setting measured stopped at iteration 60 with the same validation
recall (0.0012), so that grid could not tell the settings apart.

Why one tuning configuration, not one per Table 1 cell: a grid per
(dataset, backbone) would multiply the KD cost by the grid size (4 for DE).
This is a shortcoming for the other rows, whose best weight may differ; it
is stated in the README's method notes.

A setting equal to the method's defaults is stored as ``options = {}``, so
it is the very cell Table 1 already holds (nothing computed twice).
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from alkd.baselines import make_options, tuning_grid
from alkd.experiments import Cell, Context, Profile, run_cells, stored_cells
from alkd.maintable import METHODS, baseline_cell
from alkd.train import TrainConfig

TUNING_DATASET, TUNING_BACKBONE = "Games", "fpmc"


def override_beyond_defaults(method: str, override: dict) -> dict:
    """The entries of ``override`` that differ from the method's defaults."""
    defaults = asdict(make_options(method))
    return {k: v for k, v in override.items() if defaults.get(k) != v}


def tuned_methods() -> tuple[str, ...]:
    """The KD methods that have a grid of more than one setting."""
    return tuple(m for m in METHODS if len(tuning_grid(m)) > 1)


def tuning_cells(
    profile: Profile,
    methods=None,
    dataset: str = TUNING_DATASET,
    backbone: str = TUNING_BACKBONE,
) -> list[tuple[str, dict, Cell]]:
    """(method, options, cell) for every setting of every tuned method."""
    seed = profile.distill_seeds[0]
    out = []
    for method in methods or profile.tuning_methods or tuned_methods():
        for override in tuning_grid(method):
            options = override_beyond_defaults(method, override)
            cell = baseline_cell(
                dataset,
                backbone,
                method,
                seed,
                rec_seed=profile.rec_seed,
                train=profile.train,
                options=options,
                title_llm=profile.title_llm,
            )
            out.append((method, options, cell))
    return out


def tuning_table(profile: Profile, ctx: Context, compute: bool = True) -> pd.DataFrame:
    """One row per setting: its options and validation metrics, best marked.

    ``compute=False`` reads only stored cells; a method whose grid is not
    complete then has no ``best`` row (a partial grid chooses nothing).
    """
    entries = tuning_cells(profile)
    if not entries:
        return pd.DataFrame(columns=["method", "options", "overrides", "best"])
    fetch = run_cells if compute else stored_cells
    by_key = {r["key"]: r for r in fetch([c for _, _, c in entries], ctx)}
    select_metric = TrainConfig(**entries[0][2].config["train"]).select_metric

    rows = []
    for method, options, cell in entries:
        record = by_key.get(cell.key)
        if record is None:
            continue
        rows.append(
            {
                "method": method,
                "options": _options_label(method, options),
                "overrides": options,
                "dataset": cell.dataset,
                "backbone": cell.config["backbone"],
                "seed": cell.config["seed"],
                "key": cell.key,
                **{f"valid_{k}": v for k, v in record["valid"].items()},
                **{f"test_{k}": v for k, v in record["metrics"].items()},
            }
        )
    table = pd.DataFrame(rows)
    table["best"] = False
    if table.empty:
        return table

    column = f"valid_{select_metric}"
    for method, part in table.groupby("method"):
        if len(part) == len(tuning_grid(method)):
            table.loc[_best_row(part, column), "best"] = True
    return table


def _best_row(part: pd.DataFrame, column: str):
    """The index of the highest ``column``; on a tie, the default setting."""
    top = part[part[column] == part[column].max()]
    defaults = top[[not o for o in top["overrides"]]]
    return (defaults if len(defaults) else top).index[0]


def best_options(table: pd.DataFrame) -> dict[str, dict]:
    """Method -> the option overrides of its best validation setting."""
    if table.empty:
        return {}
    best = table[table["best"]]
    return {row.method: dict(row.overrides) for row in best.itertuples()}


def chosen_options(
    profile: Profile, ctx: Context, compute: bool = True
) -> dict[str, dict]:
    """Method -> overrides chosen so far; ``compute=False`` trains nothing."""
    return best_options(tuning_table(profile, ctx, compute=compute))


def _options_label(method: str, overrides: dict) -> str:
    opts = asdict(make_options(method, overrides))
    keys = sorted(tuning_grid(method)[0])
    return ", ".join(f"{k}={opts[k]:g}" for k in keys)

"""Tables for people: means over seeds beside the paper's values, CSV files.

Everything here works on the long tables built from cells (one row per
configuration, seed and metric); nothing here trains or evaluates.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alkd.experiments import paper_table
from alkd.io import atomic_write_text

PAPER_METHOD = {"Student": "Student", "Teacher": "Teacher"}


def save_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as CSV atomically (no index)."""
    return atomic_write_text(path, frame.to_csv(index=False))


def mean_std(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, sample std and number of seeds of ``value`` per group."""
    grouped = table.groupby(by, sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def backbones_vs_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Student/Teacher/POP/SKNN means beside the paper's Student/Teacher rows."""
    ours = mean_std(table, ["dataset", "backbone", "role", "metric"])
    paper = paper_table("table1").rename(columns={"method": "role", "value": "paper"})
    side = ours.merge(paper, on=["dataset", "backbone", "role", "metric"], how="left")
    side["ours/paper"] = side["mean"] / side["paper"]
    return side

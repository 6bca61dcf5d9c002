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


# paper spelling of the Table 2 variants, by our strategy names
PAPER_VARIANT = {
    "tr": "TR",
    "random": "Random",
    "easiest": "Easiest",
    "hardest": "Hardest",
    "rad-bc": "RAD-BC",
    "alkdrec": "ALKDRec",
}


def table2_vs_paper(metrics: pd.DataFrame, diag: pd.DataFrame) -> pd.DataFrame:
    """Table 2: mean/std over seeds of recall@10 and ndcg@10, the paper beside.

    Strategies the paper does not have (``alkdrec-exact``, the authors' own
    selection files) get an empty paper column. Diagnostics (shares of
    effective / similar / incorrect instances, difficulty percentile, the
    share of seeds whose distillation kept the starting Student) are averaged
    over seeds and joined per strategy.
    """
    keep = metrics[metrics["metric"].isin(["recall@10", "ndcg@10"])]
    ours = mean_std(keep, ["dataset", "backbone", "strategy", "metric"])
    paper = paper_table("table2").rename(columns={"value": "paper"})
    ours["variant"] = ours["strategy"].map(PAPER_VARIANT)
    side = ours.merge(
        paper, on=["dataset", "backbone", "metric", "variant"], how="left"
    ).drop(columns="variant")
    if len(diag):
        cols = ["effective", "similar", "incorrect", "difficulty_percentile"]
        cols = [c for c in [*cols, "kept_student"] if c in diag.columns]
        d = diag.groupby(["dataset", "backbone", "strategy"])[cols].mean().reset_index()
        side = side.merge(d, on=["dataset", "backbone", "strategy"], how="left")
    return side


def alkdrec_row_vs_paper(metrics: pd.DataFrame, strategy: str = "alkdrec"):
    """Table 1's ALKDRec row (all four metrics) beside the paper's."""
    rows = metrics[metrics["strategy"] == strategy]
    ours = mean_std(rows, ["dataset", "backbone", "metric"])
    paper = paper_table("table1")
    paper = paper[paper["method"] == "ALKDRec"].drop(columns="method")
    return ours.merge(
        paper.rename(columns={"value": "paper"}),
        on=["dataset", "backbone", "metric"],
        how="left",
    )


def dataset_stats(ctx, datasets) -> pd.DataFrame:
    """Sessions, items, interactions and split sizes per dataset."""
    rows = []
    for name in datasets:
        ds = ctx.dataset(name)
        rows.append(
            {
                "dataset": name,
                "sessions": ds.n_sessions,
                "items": ds.n_items,
                "interactions": ds.n_interactions,
                "train": len(ds.train),
                "valid": len(ds.valid),
                "test": len(ds.test),
            }
        )
    return pd.DataFrame(rows)


def session_lengths(ctx, datasets) -> pd.DataFrame:
    """One row per session: dataset, split and untruncated length."""
    rows = []
    for name in datasets:
        ds = ctx.dataset(name)
        for split in ("train", "valid", "test"):
            rows += [
                {"dataset": name, "split": split, "length": len(s)}
                for s in ds.split(split).sessions
            ]
    return pd.DataFrame(rows)


def plot_lengths(lengths: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    clipped = lengths.assign(length=lengths["length"].clip(upper=30))
    g = sns.displot(
        clipped,
        x="length",
        hue="split",
        col="dataset",
        discrete=True,
        stat="proportion",
        common_norm=False,
        element="step",
        height=3.2,
    )
    g.set_axis_labels("session length (clipped at 30)", "share of sessions")
    return g.figure


def save_figure(fig, path):
    from alkd.figures import save_figure as _save

    return _save(fig, path)


def table1_vs_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1: mean/std over seeds per method beside the paper's value."""
    ours = mean_std(table, ["dataset", "backbone", "method", "metric"])
    paper = paper_table("table1").rename(columns={"value": "paper"})
    side = ours.merge(paper, on=["dataset", "backbone", "method", "metric"], how="left")
    side["ours/paper"] = side["mean"] / side["paper"]
    return side

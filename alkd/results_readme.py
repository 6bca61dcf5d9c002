"""Write ``results/README.md`` from the CSV files and figures a run produced.

Usage: ``python -m alkd.results_readme RESULTS_DIR PROFILE [COMMAND]``.
Every number is read from the CSV files under RESULTS_DIR (which the
notebooks built from cells); nothing is typed in. COMMAND is what produced
them when it was not ``bash run_all.sh`` with that profile (a part of a
profile executed from the cells stored so far, say).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from alkd.io import atomic_write_text


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table (no extra dependency)."""

    def fmt(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(fmt(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body])


def side_by_side(frame: pd.DataFrame, index: list[str], col: str) -> pd.DataFrame:
    """Ours (mean ± std) and the paper's value per metric, one row per index."""
    frame = frame.copy()
    # one seed has no spread: its std (0 in the CSV) is not shown as one
    seeds = frame["n_seeds"] if "n_seeds" in frame else [2] * len(frame)
    frame["ours"] = [
        f"{m:.4f} ± {s:.4f}" if n > 1 else f"{m:.4f}"
        for m, s, n in zip(frame["mean"], frame["std"], seeds)
    ]
    frame["paper_s"] = ["" if pd.isna(p) else f"{p:.4f}" for p in frame["paper"]]
    wide = frame.pivot_table(
        index=index, columns=col, values=["ours", "paper_s"], aggfunc="first"
    )
    wide.columns = [
        f"{metric} {'ours' if kind == 'ours' else 'paper'}"
        for kind, metric in wide.columns
    ]
    return wide[sorted(wide.columns, key=lambda c: (c.split()[0], c))].reset_index()


SECTIONS = [
    (
        "table1_backbones_vs_paper.csv",
        "Table 1: Student and Teacher rows (with POP, SKNN)",
        ["dataset", "backbone", "role"],
        "metric",
    ),
    (
        "table1_main.csv",
        "Table 1: ALKDRec against the KD baselines",
        ["dataset", "backbone", "method"],
        "metric",
    ),
    (
        "table1_main_local.csv",
        "Table 1 with the local LLM teacher (ML; SmolLM2-135M, LoRA, offline)",
        ["dataset", "backbone", "method"],
        "metric",
    ),
    (
        "table2_ablation.csv",
        "Table 2: ablations (recorded GPT-4 teacher)",
        ["dataset", "backbone", "strategy"],
        "metric",
    ),
    (
        "table2_ablation_local.csv",
        "Table 2 with the local LLM teacher (SmolLM2-135M, LoRA, offline)",
        ["dataset", "backbone", "strategy"],
        "metric",
    ),
]


PAPER_SIX = ("tr", "random", "easiest", "hardest", "rad-bc", "alkdrec")


def table2_summary(frame: pd.DataFrame) -> list[str]:
    """Plain statements computed from Table 2: who wins, ours vs the paper."""
    lines = []
    for metric in ("recall@10", "ndcg@10"):
        part = frame[(frame["metric"] == metric) & frame["strategy"].isin(PAPER_SIX)]
        groups = list(part.groupby(["dataset", "backbone"]))
        ours = [g.loc[g["mean"].idxmax(), "strategy"] for _, g in groups]
        paper = [g.loc[g["paper"].idxmax(), "strategy"] for _, g in groups]
        agree = sum(a == b for a, b in zip(ours, paper))
        wins = sum(w == "alkdrec" for w in ours)
        ratio = (part["mean"] / part["paper"]).median()
        lines.append(
            f"- {metric}: ALKDRec has the best mean of the paper's six variants in "
            f"{wins} of {len(groups)} dataset-backbone cells (the paper: "
            f"{sum(w == 'alkdrec' for w in paper)}); our best variant is the "
            f"paper's best in {agree} of {len(groups)}; median ours/paper "
            f"= {ratio:.2f}."
        )
    lines += kept_student_lines(frame)
    exact = frame[frame["strategy"].isin(["alkdrec", "alkdrec-exact"])]
    wide = exact.pivot_table(
        index=["dataset", "backbone", "metric"], columns="strategy", values="mean"
    )
    if {"alkdrec", "alkdrec-exact"} <= set(wide.columns):
        better = int((wide["alkdrec-exact"] > wide["alkdrec"]).sum())
        lines.append(
            f"- the exact max-min optimum beats the closed form in {better} "
            f"of {len(wide)} dataset-backbone-metric cells."
        )
    return lines


def kept_student_lines(frame: pd.DataFrame) -> list[str]:
    """How often distillation left the student as it was (best iteration 0)."""
    if "kept_student" not in frame.columns:
        return []
    cells = frame.drop_duplicates(["dataset", "backbone", "strategy"]).dropna(
        subset=["kept_student"]
    )
    kept = (cells["kept_student"] * cells["n_seeds"]).round().astype(int)
    per_group = (
        cells.assign(kept=kept)
        .groupby(["dataset", "backbone"])[["kept", "n_seeds"]]
        .sum()
    )
    groups = ", ".join(
        f"{d}/{b} {int(r.kept)} of {int(r.n_seeds)}"
        for (d, b), r in per_group.iterrows()
    )
    return [
        f"- distillation kept the starting Student in {int(kept.sum())} of "
        f"{int(cells['n_seeds'].sum())} strategy-seed cells (no evaluation of the "
        "fine-tuning beat it on validation, so early stopping returned it and the "
        f"cell's test values are the Student's): {groups}."
    ]


def wins(frame: pd.DataFrame) -> tuple[int, int, int]:
    """(cells where ALKDRec's mean beats the best KD baseline's, of them with
    a star, all dataset-backbone-metric cells) of a Table 1 CSV."""
    sig = frame.dropna(subset=["best_baseline"]).drop_duplicates(
        ["dataset", "backbone", "metric"]
    )
    ahead = int((sig["alkdrec_mean"] > sig["best_baseline_mean"]).sum())
    return ahead, int(sig["star"].astype(bool).sum()), len(sig)


def table1_summary(frame: pd.DataFrame) -> list[str]:
    """ALKDRec vs the best KD baseline, and how complete the table is."""
    ahead, stars, n_cells = wins(frame)
    kd = frame[frame["method"].isin(["DE", "FTD", "HTD", "unKD", "DSL", "DLLM2Rec"])]
    # the profile's seed count is the most any row has; fewer is a run in progress
    full = int(kd["n_seeds"].max()) if len(kd) else 0
    thin = kd[kd["n_seeds"] < full]
    if full > 1:
        significance = (
            ", significantly (Welch t-test over seeds, p < 0.05) in "
            f"{stars} (the paper: 19 of 24)."
        )
    else:
        significance = (
            " (the paper: 19 of 24 significantly). One seed a row: no spread "
            "and no t-test; `--profile seeds3` or `paper` has both."
        )
    lines = [
        "What the table says (computed from it):",
        "",
        f"- ALKDRec is ahead of the best KD baseline in {ahead} of {n_cells} "
        f"dataset-backbone-metric cells{significance}",
    ]
    if len(thin):
        groups = thin.drop_duplicates(["dataset", "backbone", "method"])
        lines.append(
            f"- {len(groups)} KD-baseline "
            + ("row has" if len(groups) == 1 else "rows have")
            + f" fewer than {full} seeds stored "
            "(the run is still in progress): "
            + ", ".join(
                f"{r.dataset}/{r.backbone}/{r.method} ({r.n_seeds})"
                for r in groups.itertuples()
            )
            + "."
        )
    from alkd.maintable import KD_BASELINES

    six = set(KD_BASELINES)
    for (d, b), part in kd.groupby(["dataset", "backbone"]):
        absent = sorted(six - set(part["method"]))
        if absent:
            lines.append(
                f"- {d}/{b}: no cells yet for {', '.join(absent)} (the best "
                "baseline there is the best of the others)."
            )
    missing = {
        (d, b) for d in frame["dataset"].unique() for b in ("fpmc", "stamp", "attmix")
    } - set(zip(kd["dataset"], kd["backbone"]))
    if missing:
        lines.append(
            "- no KD-baseline cells yet for "
            + ", ".join(f"{d}/{b}" for d, b in sorted(missing))
            + "."
        )
    return [*lines, ""]


def summary_lines(name: str, frame: pd.DataFrame, results: Path) -> list[str]:
    """Computed statements under a table: agreement with the paper."""
    if name == "table1_main.csv":
        return table1_summary(frame) + _paper_ratio(frame)
    if name == "table2_ablation.csv":
        return [
            "What the table says (computed from it):",
            "",
            *table2_summary(frame),
            "",
        ]
    if name == "table1_main_local.csv":
        recorded = results / "table1_main.csv"
        recorded = pd.read_csv(recorded) if recorded.is_file() else None
        return local_table1_lines(frame, recorded) + _paper_ratio(frame)
    if name == "table2_ablation_local.csv":
        recorded = results / "table2_ablation.csv"
        recorded = pd.read_csv(recorded) if recorded.is_file() else None
        return local_table2_lines(frame, recorded) + _paper_ratio(frame)
    return _paper_ratio(frame)


LLM_ROWS = ("DLLM2Rec", "ALKDRec", "ALKDRec-exact")


def local_table1_lines(
    frame: pd.DataFrame, recorded: pd.DataFrame | None = None
) -> list[str]:
    """ALKDRec vs the KD baselines with the local teacher, and what changed
    against the recorded GPT-4 answers (strictly higher means)."""
    ahead, stars, n_cells = wins(frame)
    lines = [
        "What the table says (computed from it):",
        "",
        "- Only DLLM2Rec and ALKDRec use the LLM teacher; the other rows are "
        "the same cells as in Table 1 above (the KD settings are those the "
        "tuning grids chose with the recorded teacher). The paper column is "
        "the paper's GPT-4-turbo value.",
        f"- ALKDRec with the local teacher is ahead of the best KD baseline in "
        f"{ahead} of {n_cells} dataset-backbone-metric cells, significantly "
        f"(Welch t-test over seeds, p < 0.05) in {stars}.",
    ]
    if recorded is not None:
        keys = ["dataset", "backbone", "method", "metric"]
        both = frame.merge(recorded[keys + ["mean"]], on=keys, suffixes=("", "_gpt"))
        for method in LLM_ROWS:
            rows = both[both["method"] == method]
            if len(rows):
                higher = int((rows["mean"] > rows["mean_gpt"]).sum())
                lines.append(
                    f"- {method}: the local teacher's mean is above the recorded "
                    f"GPT-4 answers' in {higher} of {len(rows)} "
                    "backbone-metric values."
                )
    return [*lines, ""]


def local_table2_lines(
    frame: pd.DataFrame, recorded: pd.DataFrame | None = None
) -> list[str]:
    """What the local-teacher table covers and says; its paper column is GPT-4's."""
    cover = frame.groupby(["dataset", "backbone", "strategy"])["n_seeds"].max()
    done = ", ".join(f"{d}/{b}/{s} ({n})" for (d, b, s), n in cover.items())
    return [
        f"- Cells computed (seeds): {done}. The local teacher's pool is every "
        "train session; the paper column is the paper's GPT-4-turbo value.",
        *local_alkdrec_lines(frame, recorded),
        *kept_student_lines(frame),
        "",
    ]


def local_alkdrec_lines(
    frame: pd.DataFrame, recorded: pd.DataFrame | None
) -> list[str]:
    """ALKDRec with the local teacher against the other strategies it ran
    and against ALKDRec with the recorded GPT-4 answers (strictly higher
    means; a tie counts as not higher)."""
    lines = []
    for metric in ("recall@10", "ndcg@10"):
        wide = frame[frame["metric"] == metric].pivot_table(
            index=["dataset", "backbone"], columns="strategy", values="mean"
        )
        rivals = [s for s in PAPER_SIX if s != "alkdrec" and s in wide.columns]
        if "alkdrec" not in wide.columns or not rivals:
            continue
        ours = wide["alkdrec"]
        best = int((ours > wide[rivals].max(axis=1)).sum())
        above_tr = int((ours > wide["tr"]).sum()) if "tr" in wide.columns else None
        text = (
            f"- {metric}: with the local teacher ALKDRec has the highest mean of "
            f"{', '.join(['alkdrec', *rivals])} in {best} of {len(wide)} "
            "dataset-backbone cells"
        )
        if above_tr is not None:
            text += f", and is above TR in {above_tr} of {len(wide)}"
        if recorded is not None:
            gpt = recorded[
                (recorded["metric"] == metric) & (recorded["strategy"] == "alkdrec")
            ].set_index(["dataset", "backbone"])["mean"]
            both = ours.to_frame("local").join(gpt.rename("gpt"), how="inner")
            text += (
                "; it is above ALKDRec with the recorded GPT-4 answers in "
                f"{int((both['local'] > both['gpt']).sum())} of {len(both)}"
            )
        lines.append(text + ".")
    return lines


def _paper_ratio(frame: pd.DataFrame) -> list[str]:
    known = frame.dropna(subset=["paper"])
    if known.empty:
        return []
    ratio = (known["mean"] / known["paper"]).median()
    below = int((known["mean"] < known["paper"]).sum())
    return [
        f"Over the {len(known)} values the paper reports here, ours are below "
        f"the paper's in {below}; median ours/paper = {ratio:.2f}.",
        "",
    ]


def build(results: Path, profile: str, command: str | None = None) -> str:
    if command is None:
        command = "bash run_all.sh" + (
            "" if profile == "quick" else f" --profile {profile}"
        )
    parts = [
        f"# Results ({profile} profile)",
        "",
        f"Generated by `{command}`"
        + " from the experiment cells of the shared cell store (`results/cells/` "
        "unless `ALKD_RESULTS` moves it); every value is mean ± std over seeds "
        "(n_seeds in the CSV files), the paper's value beside it. Executed "
        "notebooks are in `notebooks/`.",
        "",
    ]
    for name, title, index, col in SECTIONS:
        path = results / name
        if not path.is_file():
            continue
        frame = pd.read_csv(path)
        parts += [
            f"## {title}",
            "",
            f"From `{name}`.",
            "",
            markdown_table(side_by_side(frame, index, col)),
            "",
        ]
        parts += summary_lines(name, frame, results)
    diag = results / "table2_ablation.csv"
    if diag.is_file():
        frame = pd.read_csv(diag)
        cols = [
            "dataset",
            "backbone",
            "strategy",
            "effective",
            "similar",
            "incorrect",
            "difficulty_percentile",
        ]
        if set(cols) <= set(frame.columns):
            shown = [*cols, "kept_student"] if "kept_student" in frame else cols
            d = frame[shown].drop_duplicates().dropna(subset=cols)
            parts += [
                "## What each strategy selected",
                "",
                "Shares of the selected sessions that were effective, similar "
                "or incorrect for the recorded GPT-4 teacher, their mean "
                "difficulty percentile (100 = hardest), and the share of seeds "
                "whose distillation kept the starting Student (`kept_student`).",
                "",
                markdown_table(d, 3),
                "",
            ]
    parts += tuning_section(results)
    parts += teacher_quality_section(results)
    parts += efficiency_section(results)
    parts += figures_section(results)
    return "\n".join(parts) + "\n"


def figures_section(results: Path) -> list[str]:
    """The figures, with how many seeds each point averages."""
    figures = sorted((results / "figures").glob("*.png"))
    if not figures:
        return []
    lines = ["## Figures", ""]
    table = results / "figure2a.csv"
    frame = pd.read_csv(table) if table.is_file() else None
    if frame is not None and "seed" in frame:
        n = frame["seed"].nunique()
        band = (
            ", the band seaborn's bootstrap 95% confidence interval of that mean"
            if n > 1
            else ""
        )
        lines += [
            "FPMC on ML with the recorded GPT-4 teacher (`figure*.csv`); each "
            f"point is the mean over {n} seed{'s' if n > 1 else ''}{band}.",
            "",
            *figure2a_lines(frame),
        ]
    return lines + [f"![{f.stem}](figures/{f.name})" for f in figures]


def figure2a_lines(frame: pd.DataFrame, metric: str = "ndcg@10") -> list[str]:
    """Figure 2a in words: ALKDRec against the plain student at each dimension."""
    if not {"dim", "seed", "method", metric} <= set(frame.columns):
        return []
    wide = frame.pivot_table(index=["dim", "seed"], columns="method", values=metric)
    if not {"ALKDRec", "Student"} <= set(wide.columns):
        return []
    # only seeds with both points compare (a cell still missing, or a
    # profile whose students all come from one recommender seed)
    wide = wide.dropna(subset=["ALKDRec", "Student"])
    lines = []
    for dim, rows in wide.groupby(level="dim"):
        diff = rows["ALKDRec"] - rows["Student"]
        lines.append(
            f"- Figure 2a, d = {dim}: ALKDRec {rows['ALKDRec'].mean():.4f} vs "
            f"Student {rows['Student'].mean():.4f} ({metric}); ALKDRec ahead in "
            f"{int((diff > 0).sum())} of {len(diff)} seed{'s' if len(diff) > 1 else ''}"
            ", equal in "
            f"{int((diff == 0).sum())}."
        )
    return lines + [""]


def tuning_section(results: Path) -> list[str]:
    path = results / "table1_tuning.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    cols = ["method", "options", "dataset", "backbone", "seed", "valid_recall@10"]
    cols += ["valid_ndcg@10", "test_recall@10", "best"]
    frame = frame[[c for c in cols if c in frame.columns]]
    chosen = frame[frame["best"]]
    settled = ", ".join(f"{r.method}: {r.options}" for r in chosen.itertuples())
    open_ = sorted(set(frame["method"]) - set(chosen["method"]))
    lines = [
        "## KD baseline tuning (validation only)",
        "",
        "From `table1_tuning.csv`: each grid setting of BASELINES.md trained once; "
        "the best by validation recall@10 is what Table 1 runs on test.",
        "",
        markdown_table(frame, 4),
        "",
        f"- Chosen: {settled or 'none yet'}.",
    ]
    if open_:
        lines.append(
            f"- Grid incomplete for {', '.join(open_)}: Table 1 runs its defaults."
        )
    return lines + [""]


def teacher_quality_section(results: Path) -> list[str]:
    path = results / "teacher_quality.csv"
    if not path.is_file():
        return []
    from alkd.teacher_quality import verdict

    frame = pd.read_csv(path)
    cols = ["dataset", "teacher", "score", "candidates", "hit@1", "hit@5", "hit@10"]
    cols += ["hit@25", "ndcg@25", "label_in_candidates", "n_sessions"]
    return [
        "## Teacher quality (train sessions with a recorded GPT-4 answer)",
        "",
        "From `teacher_quality.csv`. The FPMC teacher recommender was trained on "
        "these sessions, so its own order is an optimistic reference.",
        "",
        markdown_table(frame[cols], 3),
        "",
        *[f"- {line}" for line in verdict(frame).splitlines()],
        "",
    ]


def efficiency_section(results: Path) -> list[str]:
    path = results / "efficiency_llm_cost.csv"
    if not path.is_file():
        return []
    from alkd.efficiency import PAPER_COST

    cost = pd.read_csv(path)
    parts = [
        "## Efficiency",
        "",
        "LLM cost for |B| sessions vs every train session, from the local "
        "teacher's measured time per answer on this machine "
        "(`efficiency_llm_cost.csv`). The paper, GPT-4-turbo on Games: "
        f"{PAPER_COST['minutes_selected']:.0f} vs {PAPER_COST['minutes_all']:.0f} "
        f"minutes, {PAPER_COST['seconds_per_call']} s a call.",
        "",
        markdown_table(cost, 2),
        "",
    ]
    params = results / "efficiency_params.csv"
    if params.is_file():
        parts += ["Parameters:", "", markdown_table(pd.read_csv(params), 1), ""]
    return parts


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    results = Path(argv[0])
    command = argv[2] if len(argv) == 3 else None
    atomic_write_text(results / "README.md", build(results, argv[1], command))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write the source notebooks of ``notebooks/`` from the specs below.

The notebooks are thin: a Colab install cell, a tagged ``parameters`` cell,
and calls into ``alkd``. Keeping their text here makes them reviewable as
code; run ``python tools/make_notebooks.py`` after editing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

COLAB = """\
# On Colab, install the project first (elsewhere this cell does nothing).
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    repo = os.environ.get("ALKD_GIT_URL", "https://github.com/alkd-project/alkd")
    subprocess.run(["git", "clone", "--depth", "1", repo, "alkd"], check=True)
    subprocess.run(["bash", "alkd/scripts/setup_env.sh", "--system"], check=True)
    os.chdir("alkd")"""

SETUP = """\
import logging

import pandas as pd

from alkd import experiments as ex
from alkd import report

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
pd.set_option("display.width", 200, "display.max_columns", 40)"""

COMMON_PARAMS = """\
profile = "smoke"  # smoke (CI) | quick (one seed) | seeds3 (3 seeds) | paper (5)
data_dir = None  # None: $ALKD_DATA, else ./data
results_dir = "results"  # the cell store (cells, hints) shared by the profiles
out_dir = None  # where this run's tables and figures go; None: results_dir
work_dir = "runs"  # trained models and caches
device = "auto"  # auto | cpu | cuda
progress = False  # tqdm bars inside the notebook"""

CONTEXT = """\
prof = ex.get_profile(profile)
out_dir = out_dir or results_dir
ctx = ex.Context(data_root=data_dir, results_dir=results_dir, work_dir=work_dir,
                 device=device, progress=progress)"""


def notebook(title: str, purpose: str, params: str, body: list[tuple[str, str]]):
    cells = [
        new_markdown_cell(f"# {title}\n\n{purpose}"),
        new_code_cell(COLAB),
        new_code_cell(SETUP),
    ]
    p = new_code_cell(COMMON_PARAMS + ("\n" + params if params else ""))
    p.metadata["tags"] = ["parameters"]
    cells += [p, new_code_cell(CONTEXT)]
    for heading, code in body:
        cells += [new_markdown_cell(heading), new_code_cell(code)]
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating changes nothing
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS = {
    "table1_backbones": notebook(
        "Table 1, Student and Teacher rows, with POP and SKNN",
        "Trains every backbone (FPMC, STAMP, AttMix) as the paper's Teacher (d = 100)"
        " and Student (d = 10) on both datasets, evaluates them with full ranking, "
        "and sets them beside the paper's rows and two non-neural sanity rows.",
        'datasets = ["ML", "Games"]  # any of ML, Games\n'
        'backbones = ["fpmc", "stamp", "attmix"]\n'
        "seeds = None  # None: the profile's seeds",
        [
            (
                "## 1. Compute (or reuse) the cells",
                "table = ex.table1_backbones(prof, ctx, datasets=datasets, "
                "backbones=backbones,\n"
                "                            seeds=seeds)\n"
                "table.head()",
            ),
            (
                "## 2. Ours beside the paper (mean over seeds)",
                "side = report.backbones_vs_paper(table)\nside",
            ),
            (
                "## 3. Record the results",
                'report.save_csv(table, f"{out_dir}/table1_backbones.csv")\n'
                'report.save_csv(side, f"{out_dir}/table1_backbones_vs_paper.csv")',
            ),
        ],
    ),
    "table2_ablation": notebook(
        "Table 2: the ablations of ALKDRec, with the recorded GPT-4 teacher",
        "Distills the recorded GPT-4-turbo rankings of |B| selected train sessions "
        "(500; 750 for FPMC on Games) into the student with Eq. 1, for each "
        "selection strategy of the paper's Table 2, plus the exact max-min optimum "
        "(`alkdrec-exact`) and the authors' own selected sessions. The pool is the "
        "train sessions with a non-empty recorded answer (ML 4,991; Games 5,207). "
        "Per strategy it also reports what the selected instances were: effective "
        "(GPT-4's 25 hold the next item, the student's top 25 do not), similar "
        "(both hold it), incorrect (GPT-4's 25 do not), and their mean difficulty "
        "percentile (100 = hardest).",
        'datasets = ["ML", "Games"]\n'
        'backbones = ["fpmc", "stamp", "attmix"]\n'
        "strategies = None  # None: the profile's strategies\n"
        "seeds = None  # None: the profile's distillation seeds\n"
        'teacher = "recorded"  # recorded (GPT-4 answers) | local (SmolLM2)\n'
        "compute = True  # False: only the cells already stored (a run in progress)",
        [
            (
                "## 1. Compute (or reuse) the cells",
                "from alkd import ablation\n\n"
                "metrics, diag = ablation.table2(prof, ctx, datasets=datasets, "
                "backbones=backbones,\n"
                "                                strategies=strategies, seeds=seeds, "
                "teacher=teacher,\n"
                "                                compute=compute)\n"
                "metrics.head()",
            ),
            (
                "## 2. Table 2 beside the paper (mean and std over seeds)",
                "side = report.table2_vs_paper(metrics, diag)\nside",
            ),
            (
                "## 3. Table 1's ALKDRec row",
                "row = report.alkdrec_row_vs_paper(metrics)\nrow",
            ),
            (
                "## 4. Record the results",
                'suffix = "" if teacher == "recorded" else f"_{teacher}"\n'
                'report.save_csv(side, f"{out_dir}/table2_ablation{suffix}.csv")\n'
                'report.save_csv(metrics, f"{out_dir}/table2_cells{suffix}.csv")\n'
                'report.save_csv(row, f"{out_dir}/table1_alkdrec{suffix}.csv")',
            ),
        ],
    ),
    "data": notebook(
        "The two datasets",
        "Statistics of Hetrec2011-ML and Amazon-Games as this project numbers "
        "them (they must equal the paper's), and the distribution of session "
        "lengths per split.",
        'datasets = ["ML", "Games"]',
        [
            ("## 1. Statistics", "stats = report.dataset_stats(ctx, datasets)\nstats"),
            (
                "## 2. Session lengths",
                "lengths = report.session_lengths(ctx, datasets)\n"
                "fig = report.plot_lengths(lengths)\n"
                'report.save_figure(fig, f"{out_dir}/figures/session_lengths.png")',
            ),
            (
                "## 3. Record the results",
                'report.save_csv(stats, f"{out_dir}/dataset_stats.csv")',
            ),
        ],
    ),
    "figures": notebook(
        "Figures 2-4: dimension, correct-answer rate, ratios, budget",
        "FPMC on ML with the recorded GPT-4 teacher, as in the paper's Figure 2a. "
        "Figure 2b's x axis is the rate c of correct LLM answers both policies are "
        "told to expect: ALKDRec splits it 1:5 into effective and similar "
        "(ratios c/6 : 5c/6 : 1 - c), RAD-BC takes it as its correct fraction.",
        'backbone = "fpmc"  # the paper uses FPMC; any of fpmc, stamp, attmix',
        [
            (
                "## 1. Grids of this profile",
                "from alkd import figures\n\ngrid = figures.GRIDS[profile]\ngrid",
            ),
            (
                "## 2. Figure 2a: student latent dimension",
                "f2a = figures.figure2a(prof, ctx, grid, backbone)\n"
                'fig = figures.plot_lines(f2a, "dim", "ndcg@10", "method", '
                '"Figure 2a")\n'
                'figures.save_figure(fig, f"{out_dir}/figures/figure2a_dim.png")\n'
                "f2a",
            ),
            (
                "## 3. Figure 2b: rate of correct LLM answers",
                "f2b = figures.figure2b(prof, ctx, grid, backbone)\n"
                'fig = figures.plot_lines(f2b, "correct_rate", "ndcg@10", "method", '
                '"Figure 2b")\n'
                "figures.save_figure(\n"
                '    fig, f"{out_dir}/figures/figure2b_correct_rate.png")\n'
                "f2b",
            ),
            (
                "## 4. Figure 3: effective and similar ratios",
                "f3 = figures.figure3(prof, ctx, grid, backbone)\n"
                'fig = figures.plot_heatmap(f3, "Figure 3: ndcg@10")\n'
                "figures.save_figure(\n"
                '    fig, f"{out_dir}/figures/figure3_ratios.png")\n'
                "f3",
            ),
            (
                "## 5. Figure 4: number of distilled sessions |B|",
                "f4 = figures.figure4(prof, ctx, grid, backbone)\n"
                'fig = figures.plot_lines(f4, "budget", ["ndcg@5", "ndcg@10"], None, '
                '"Figure 4")\n'
                "figures.save_figure(\n"
                '    fig, f"{out_dir}/figures/figure4_budget.png")\n'
                "f4",
            ),
            (
                "## 6. Record the results",
                'frames = {"figure2a": f2a, "figure2b": f2b, "figure3": f3, '
                '"figure4": f4}\n'
                "for name, frame in frames.items():\n"
                '    report.save_csv(frame, f"{out_dir}/{name}.csv")',
            ),
        ],
    ),
    "table1_main": notebook(
        "Table 1: ALKDRec against six KD baselines",
        "Student, Teacher, DE, FTD, HTD, unKD, DSL, DLLM2Rec and ALKDRec (with the "
        "exact max-min optimum as `ALKDRec-exact`) for three backbones on both "
        "datasets, with POP and SKNN as sanity rows; mean and std over seeds, the "
        "improvement of ALKDRec over the best KD baseline and a Welch t-test over "
        "seeds (a star when p < 0.05 and ALKDRec is ahead, the paper's rule). "
        "ALKDRec and DLLM2Rec use the recorded GPT-4 answers; their pool is the "
        "train sessions with a non-empty recorded answer.",
        'datasets = ["ML", "Games"]\n'
        'backbones = ["fpmc", "stamp", "attmix"]\n'
        "methods = None  # None: all six KD baselines\n"
        "seeds = None  # None: the profile's distillation seeds\n"
        'teacher = "recorded"\n'
        "compute = True  # False: only the cells already stored (a run in progress)",
        [
            (
                "## 1. Tuning on validation\n\n"
                "DE, FTD and HTD have a tuning grid in BASELINES.md (DE: the number of "
                "experts and the distillation weight; FTD, HTD: the weight). Each "
                "setting is trained once (Games, FPMC, the first seed) and compared "
                "on validation recall@10; the best setting per method is what the "
                "rows below run on test.",
                "from alkd import tuning\n\n"
                "grid = tuning.tuning_table(prof, ctx, compute=compute)\n"
                'grid.drop(columns=["overrides", "key"], errors="ignore")',
            ),
            (
                "## 2. Compute (or reuse) the cells",
                "from alkd import maintable\n\n"
                "table = maintable.table1_main(prof, ctx, datasets=datasets, "
                "backbones=backbones,\n"
                "                              methods=methods, seeds=seeds, "
                "teacher=teacher,\n"
                "                              compute=compute)\n"
                '(table.groupby(["dataset", "backbone", "method"]).seed.nunique()\n'
                ' .unstack(0).rename_axis(columns="seeds per dataset"))',
            ),
            (
                "## 3. Table 1 beside the paper",
                "side = report.table1_vs_paper(table)\n"
                'side.pivot_table(index=["dataset", "backbone", "method"], '
                'columns="metric",\n'
                '                 values=["mean", "paper"]).round(5)',
            ),
            (
                "## 4. ALKDRec vs the best KD baseline",
                "sig = maintable.significance(table)\n"
                "ahead = int((sig.alkdrec_mean > sig.best_baseline_mean).sum())\n"
                'print(f"ALKDRec ahead of the best KD baseline in {ahead} of '
                '{len(sig)} cells,"\n'
                '      f" significantly in {int(sig.star.sum())}")\n'
                "sig",
            ),
            (
                "## 5. Record the results",
                'suffix = "" if teacher == "recorded" else f"_{teacher}"\n'
                'keys = ["dataset", "backbone", "metric"]\n'
                'report.save_csv(side.merge(sig, how="left", on=keys),\n'
                '                f"{out_dir}/table1_main{suffix}.csv")\n'
                'report.save_csv(table, f"{out_dir}/table1_cells{suffix}.csv")\n'
                'report.save_csv(grid.drop(columns=["overrides"], errors="ignore"),\n'
                '                f"{out_dir}/table1_tuning.csv")',
            ),
        ],
    ),
    "teacher_quality": notebook(
        "Teacher quality: how well each teacher ranks the next item",
        "On the same train sessions (those with a recorded GPT-4-turbo answer, minus "
        "the sessions LoRA tunes on), every teacher returns 25 of the session's "
        "candidates (the FPMC teacher recommender's top 50, as they are or with the "
        "true item forced in); hit@1/5/10/25 and ndcg@25 of the true next item. "
        "The recommender was trained on these sessions, so its own order is an "
        "optimistic reference, not a fair competitor.",
        'datasets = ["ML", "Games"]\n'
        "n_sessions = None  # None: the profile's count (300 but in smoke)\n"
        "compute = True  # False: only the cells already stored (a run in progress)",
        [
            (
                "## 1. Compute (or reuse) the cells",
                "from alkd import teacher_quality as tq\n\n"
                "quality = tq.teacher_quality(prof, ctx, datasets=datasets, "
                "n_sessions=n_sessions,\n"
                "                             compute=compute)\n"
                "quality.round(4)",
            ),
            (
                "## 2. hit@5 by teacher",
                'wide = quality.pivot_table(index=["teacher", "score", '
                '"candidates"],\n'
                '                           columns="dataset", values="hit@5")\n'
                "wide.round(4)",
            ),
            (
                "## 3. Is the local teacher at least as good as GPT-4-turbo at hit@5?",
                "print(tq.verdict(quality))",
            ),
            (
                "## 4. Record the results",
                'report.save_csv(quality, f"{out_dir}/teacher_quality.csv")',
            ),
        ],
    ),
    "efficiency": notebook(
        "Efficiency: LLM cost of |B| sessions vs all, model sizes, latency",
        "The local teacher's measured cost per answer (ranking only, from the "
        "teacher-quality cells) scaled to |B| and to every train session, beside "
        "the paper's GPT-4-turbo figures on Games (about 44 vs 1,782 minutes); "
        "Student vs Teacher parameter counts and scoring latency on this machine.",
        'datasets = ["ML", "Games"]\n'
        'backbones = ["fpmc", "stamp", "attmix"]\n'
        "compute = True  # False: only the teacher-quality cells already stored",
        [
            (
                "## 1. LLM cost per answer, for |B| and for all train sessions",
                "from alkd import efficiency\n"
                "from alkd import teacher_quality as tq\n\n"
                "quality = tq.teacher_quality(prof, ctx, datasets=datasets, "
                "compute=compute)\n"
                "cost = efficiency.llm_cost(quality, ctx)\n"
                "print('paper:', efficiency.PAPER_COST)\n"
                "cost.round(3)",
            ),
            (
                "## 2. Student and Teacher sizes",
                "params = efficiency.parameter_counts(ctx, datasets, backbones)\n"
                "params",
            ),
            (
                "## 3. Scoring latency (full catalogue)",
                "latency = efficiency.inference_latency(prof, ctx, datasets, "
                "backbones)\n"
                "latency.round(3)",
            ),
            (
                "## 4. Record the results",
                'report.save_csv(cost, f"{out_dir}/efficiency_llm_cost.csv")\n'
                'report.save_csv(params, f"{out_dir}/efficiency_params.csv")\n'
                'report.save_csv(latency, f"{out_dir}/efficiency_latency.csv")',
            ),
        ],
    ),
}


def main(names: list[str]) -> None:
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    for name, nb in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nbformat.write(nb, out / f"{name}.ipynb")


if __name__ == "__main__":
    main(sys.argv[1:])

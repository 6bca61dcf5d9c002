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
profile = "smoke"  # smoke (CI, minutes) | quick (one seed) | paper (five seeds)
data_dir = None  # None: $ALKD_DATA, else ./data
results_dir = "results"  # where cells, tables and figures go
work_dir = "runs"  # trained models and caches
device = "auto"  # auto | cpu | cuda
progress = False  # tqdm bars inside the notebook"""

CONTEXT = """\
prof = ex.get_profile(profile)
ctx = ex.Context(data_root=data_dir, results_dir=results_dir, work_dir=work_dir,
                 device=device, progress=progress)"""


def notebook(title: str, purpose: str, params: str, body: list[tuple[str, str]]):
    cells = [new_markdown_cell(f"# {title}\n\n{purpose}"), new_code_cell(COLAB),
             new_code_cell(SETUP)]
    p = new_code_cell(COMMON_PARAMS + ("\n" + params if params else ""))
    p.metadata["tags"] = ["parameters"]
    cells += [p, new_code_cell(CONTEXT)]
    for heading, code in body:
        cells += [new_markdown_cell(heading), new_code_cell(code)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
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
            ("## 1. Compute (or reuse) the cells",
             "table = ex.table1_backbones(prof, ctx, datasets=datasets, "
             "backbones=backbones, seeds=seeds)\n"
             "table.head()"),
            ("## 2. Ours beside the paper (mean over seeds)",
             "side = report.backbones_vs_paper(table)\nside"),
            ("## 3. Record the results",
             'report.save_csv(table, f"{results_dir}/table1_backbones.csv")\n'
             'report.save_csv(side, f"{results_dir}/table1_backbones_vs_paper.csv")'),
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
        'teacher = "recorded"  # recorded (GPT-4 answers) | local (SmolLM2)',
        [
            ("## 1. Compute (or reuse) the cells",
             "from alkd import ablation\n\n"
             "metrics, diag = ablation.table2(prof, ctx, datasets=datasets, "
             "backbones=backbones,\n"
             "                                strategies=strategies, seeds=seeds, "
             "teacher=teacher)\n"
             "metrics.head()"),
            ("## 2. Table 2 beside the paper (mean and std over seeds)",
             "side = report.table2_vs_paper(metrics, diag)\nside"),
            ("## 3. Table 1's ALKDRec row",
             "row = report.alkdrec_row_vs_paper(metrics)\nrow"),
            ("## 4. Record the results",
             'suffix = "" if teacher == "recorded" else f"_{teacher}"\n'
             'report.save_csv(side, f"{results_dir}/table2_ablation{suffix}.csv")\n'
             'report.save_csv(metrics, f"{results_dir}/table2_cells{suffix}.csv")\n'
             'report.save_csv(row, f"{results_dir}/table1_alkdrec{suffix}.csv")'),
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

"""Table 1: the six KD baselines beside Student, Teacher and ALKDRec.

A baseline cell trains one KD student (d = 10) with ``alkd.baselines`` from
the same teacher recommender (d = 100) the distillation cells use, under
the plain student's training budget and early stopping. DLLM2Rec gets the
teacher's LLM rankings of the same number of sessions ALKDRec distills
(500; 750 for FPMC on Games), drawn at random from the teacher's pool,
since DLLM2Rec itself has no selection.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from alkd.ablation import make_teacher, paper_budget, table2_cells
from alkd.baselines import BASELINES, train_baseline
from alkd.experiments import (
    Cell,
    Context,
    Profile,
    backbone_cells,
    long_table,
    run_cells,
    runner,
    stored_cells,
)
from alkd.llm.embeddings import standardise
from alkd.metrics import METRICS, ttest_ind
from alkd.selection import select
from alkd.train import TrainConfig, evaluate, train_or_load

log = logging.getLogger(__name__)

METHODS = ("de", "ftd", "htd", "unkd", "dsl", "dllm2rec")
# DLLM2Rec's title vectors: z-scored per dimension (alkd.llm.embeddings) or
# as the LLM gives them; chosen on Games/FPMC validation, see README
TITLE_SCALINGS = ("standardise", "raw")


def baseline_cell(
    dataset: str,
    backbone: str,
    method: str,
    seed: int,
    *,
    rec_seed: int | None,
    train: TrainConfig,
    teacher: str = "recorded",
    options: dict | None = None,
    title_llm: str | None = None,
    title_scaling: str = "standardise",
) -> Cell:
    """One KD baseline run; DLLM2Rec's ED uses ``title_llm``'s title vectors
    (``None``: RD only), standardised per dimension or ``"raw"``."""
    if title_scaling not in TITLE_SCALINGS:
        raise ValueError(
            f"title_scaling must be one of {TITLE_SCALINGS}, got {title_scaling!r}"
        )
    config = {
        "backbone": backbone,
        "method": method,
        "seed": seed,
        "rec_seed": seed if rec_seed is None else rec_seed,
        "train": asdict(train),
        "options": options or {},
    }
    if method == "dllm2rec":
        config |= {
            "teacher": teacher,
            "budget": paper_budget(dataset, backbone),
            "title_llm": title_llm,
        }
        # "raw" writes nothing: cells made before scaling existed used raw
        # vectors, and their keys stay valid
        if title_llm and title_scaling != "raw":
            config["title_scaling"] = title_scaling
    return Cell("baseline", dataset, config)


@runner("baseline")
def _run_baseline(cell: Cell, ctx: Context) -> dict:
    ds, cfg = ctx.dataset(cell.dataset), cell.config
    train = TrainConfig(**cfg["train"])
    teacher_model = train_or_load(
        ds,
        cfg["backbone"],
        100,
        cfg["rec_seed"],
        ctx.work_dir,
        train,
        device=ctx.device,
        progress=ctx.progress,
    )[0]
    rankings = None
    if cfg["method"] == "dllm2rec":
        llm, pool = make_teacher(cfg["teacher"], ds, teacher_model, ctx)
        chosen = select("random", pool, cfg["budget"], cfg["seed"])
        rankings = llm.rank(chosen)

    options = dict(cfg["options"])
    if cfg.get("title_llm"):
        titles = dataset_title_embeddings(cfg["title_llm"], ds, ctx)
        if cfg.get("title_scaling") == "standardise":
            titles = standardise(titles)
        options["item_title_embeddings"] = titles

    result = train_baseline(
        cfg["method"],
        ds,
        cfg["backbone"],
        teacher=teacher_model,
        llm_rankings=rankings,
        seed=cfg["seed"],
        config=train,
        options=options or None,
        device=ctx.device,
        progress=ctx.progress,
    )
    extras = {k: v for k, v in result.extras.items() if _jsonable(v)}
    return {
        "metrics": evaluate(result.model, ds.test),
        "valid": result.fit.valid,
        "fit": asdict(result.fit),
        "extras": extras,
    }


def dataset_title_embeddings(spec: str, ds, ctx: Context) -> np.ndarray:
    """The LLM's title vectors of ``ds``'s items, cached under the work dir."""
    from alkd.llm.embeddings import cached_title_embeddings

    folder = Path(ctx.work_dir) / "title_embeddings"
    return cached_title_embeddings(
        spec, ds.titles, folder, ds.name, device=ctx.device, progress=ctx.progress
    )


def _jsonable(value) -> bool:
    return isinstance(value, (int, float, str, bool, list, dict, type(None)))


def main_cells(
    profile: Profile,
    datasets=None,
    backbones=None,
    methods=None,
    seeds=None,
    teacher: str = "recorded",
    tuned: dict[str, dict] | None = None,
) -> list[Cell]:
    """The KD baseline cells; ``tuned`` maps a method to its option
    overrides chosen on validation (``alkd.tuning``; absent: defaults)."""
    tuned = tuned or {}
    cells = []
    for ds in datasets or profile.datasets:
        for bb in backbones or profile.backbones:
            for method in methods or METHODS:
                for seed in seeds or profile.distill_seeds:
                    cells.append(
                        baseline_cell(
                            ds,
                            bb,
                            method,
                            seed,
                            rec_seed=profile.rec_seed,
                            train=profile.train,
                            teacher=teacher,
                            options=tuned.get(method),
                            title_llm=profile.title_llm,
                        )
                    )
    return cells


def table1_main(
    profile: Profile,
    ctx: Context,
    datasets=None,
    backbones=None,
    methods=None,
    seeds=None,
    teacher: str = "recorded",
    compute: bool = True,
) -> pd.DataFrame:
    """Every row of Table 1 as a long table (method, seed, metric, value).

    ``compute=False`` reads only the cells already stored (a table of a run
    still in progress; ``n_seeds`` then tells how complete each value is).
    The baselines run with the settings ``alkd.tuning`` chose on validation.
    """
    from alkd.tuning import chosen_options

    select_ = {"datasets": datasets, "backbones": backbones}
    seeds = seeds or profile.distill_seeds
    fetch = run_cells if compute else stored_cells
    tuned = chosen_options(profile, ctx, compute=compute)
    base_cells = main_cells(
        profile, methods=methods, seeds=seeds, teacher=teacher, tuned=tuned, **select_
    )
    base = fetch(base_cells, ctx)
    ours = fetch(
        table2_cells(
            profile,
            strategies=("alkdrec", "alkdrec-exact"),
            seeds=seeds,
            teacher=teacher,
            **select_,
        ),
        ctx,
    )
    rec_seeds = seeds if profile.rec_seed is None else (profile.rec_seed,)
    recs = fetch(backbone_cells(profile, seeds=rec_seeds, **select_), ctx)

    def labels(rec):
        cfg = rec["config"]
        if rec["kind"] == "baseline":
            method = BASELINES[cfg["method"]].name
        elif rec["kind"] == "distill":
            method = {"alkdrec": "ALKDRec", "alkdrec-exact": "ALKDRec-exact"}[
                cfg["strategy"]
            ]
        elif rec["kind"] == "heuristic":
            return {
                "dataset": rec["dataset"],
                "backbone": "-",
                "method": cfg["method"],
                "seed": 0,
            }
        else:
            method = "Teacher" if cfg["dim"] == 100 else "Student"
        return {
            "dataset": rec["dataset"],
            "backbone": cfg["backbone"],
            "method": method,
            "seed": cfg["seed"],
        }

    return long_table(base + ours + recs, labels)


KD_BASELINES = ("DE", "FTD", "HTD", "unKD", "DSL", "DLLM2Rec")


def significance(table: pd.DataFrame, ours: str = "ALKDRec") -> pd.DataFrame:
    """Per cell: ALKDRec vs the best KD baseline (by mean), gain and t-test."""
    rows = []
    for (ds, bb, metric), part in table.groupby(["dataset", "backbone", "metric"]):
        means = part.groupby("method")["value"].mean()
        kd = means[means.index.isin(KD_BASELINES)]
        if ours not in means or kd.empty:
            continue
        best = kd.idxmax()
        a = part.loc[part["method"] == ours, "value"].to_numpy()
        b = part.loc[part["method"] == best, "value"].to_numpy()
        p = ttest_ind(a, b)
        rows.append(
            {
                "dataset": ds,
                "backbone": bb,
                "metric": metric,
                "best_baseline": best,
                "best_baseline_mean": kd.max(),
                "alkdrec_mean": means[ours],
                "improvement": means[ours] / kd.max() - 1 if kd.max() else np.nan,
                "p_value": p,
                "star": bool(p < 0.05 and means[ours] > kd.max()),
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        out["metric"] = pd.Categorical(out["metric"], METRICS, ordered=True)
        out = out.sort_values(["dataset", "backbone", "metric"])
    return out

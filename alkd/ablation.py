"""Distillation cells: Table 2's ablations and Table 1's ALKDRec row.

A cell trains (or reuses) the teacher recommender (d = 100) and the student
(d = 10), selects ``budget`` sessions from the teacher's pool with a
strategy, asks the teacher for their rankings, distills them with Eq. 1
and evaluates the student on the test split. It also records who was
selected and what kind of instances they were (effective, similar,
incorrect), which shows whether the policy does what the paper claims.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from alkd.distill import DistillConfig, distill
from alkd.experiments import (
    Cell,
    Context,
    Profile,
    long_table,
    run_cells,
    runner,
    stored_cells,
)
from alkd.selection import difficulty, read_base_file, select
from alkd.teachers.recommender import RecommenderTeacher, top_items
from alkd.train import TrainConfig, evaluate, train_or_load

log = logging.getLogger(__name__)

# release files of the authors' own selections, by our strategy name
AUTHORS_FILES = {
    "alkdrec": "_ALKERec.base",
    "rad-bc": "_RAD-BC.base",
    "random": "_random.base",
    "easiest": "_easiest.base",
    "hardest": "_hardest.base",
}
TABLE2_STRATEGIES = (
    "tr",
    "random",
    "easiest",
    "hardest",
    "rad-bc",
    "alkdrec",
    "alkdrec-exact",
)
DISPLAY = {
    "tr": "TR",
    "random": "Random",
    "easiest": "Easiest",
    "hardest": "Hardest",
    "rad-bc": "RAD-BC",
    "alkdrec": "ALKDRec",
    "alkdrec-exact": "ALKDRec-exact",
    "authors:alkdrec": "ALKDRec (authors' B)",
}


def paper_budget(dataset: str, backbone: str) -> int:
    """|B| = 500, 750 for FPMC on Games (the paper's settings)."""
    return 750 if (dataset, backbone) == ("Games", "fpmc") else 500


def distill_cell(
    dataset: str,
    backbone: str,
    strategy: str,
    seed: int,
    *,
    teacher: str = "recorded",
    budget: int | None = None,
    rec_seed: int | None = None,
    ratios=(1, 5, 4),
    mu: float = 10.0,
    drawing: str = "algorithm1",
    train: TrainConfig | None = None,
    distill_config: DistillConfig | None = None,
    student_dim: int = 10,
) -> Cell:
    """One distillation run; ``rec_seed`` picks the trained teacher/student."""
    config = {
        "backbone": backbone,
        "strategy": strategy,
        "teacher": teacher,
        "seed": seed,
        "rec_seed": seed if rec_seed is None else rec_seed,
        "budget": budget or paper_budget(dataset, backbone),
        "ratios": list(ratios),
        "mu": mu,
        "drawing": drawing,
        "train": asdict(train or TrainConfig()),
        "student_dim": student_dim,
        "distill": asdict(distill_config or DistillConfig()),
    }
    return Cell("distill", dataset, config)


def make_teacher(kind: str, ds, teacher_model, ctx: Context):
    """The LLM-side teacher of a cell, with its selection pool."""
    if kind == "recorded":
        from alkd.teachers.recorded import RecordedTeacher

        t = RecordedTeacher(ds)
        return t, t.pool()
    if kind == "local":
        from alkd.local_teacher import LocalTeacherConfig, build_local_teacher

        return build_local_teacher(
            ds,
            teacher_model,
            LocalTeacherConfig(),
            results_dir=ctx.results_dir,
            work_dir=ctx.work_dir,
            device=ctx.device,
            progress=ctx.progress,
        )
    if kind == "api":
        from alkd.remote_teacher import build_api_teacher

        return build_api_teacher(
            ds,
            teacher_model,
            results_dir=ctx.results_dir,
            work_dir=ctx.work_dir,
            progress=ctx.progress,
        )
    raise ValueError(f"unknown teacher {kind!r}; choose recorded, local or api")


def choose_sessions(cfg: dict, ds, pool: np.ndarray, df: np.ndarray) -> np.ndarray:
    strategy = cfg["strategy"]
    if strategy.startswith("authors:"):
        name = strategy.split(":", 1)[1]
        if name not in AUTHORS_FILES:
            raise ValueError(f"no authors' selection file for {name!r}")
        authors = read_base_file(ds.file(AUTHORS_FILES[name]))
        authors = authors[np.isin(authors, pool)]  # answered sessions only
        return select("authors", pool, cfg["budget"], cfg["seed"], authors_ids=authors)
    return select(
        strategy,
        pool,
        cfg["budget"],
        cfg["seed"],
        difficulty=df,
        ratios=cfg["ratios"],
        mu=cfg["mu"],
        drawing=cfg["drawing"],
    )


def diagnostics(selected, rankings, ds, student, pool, df) -> dict:
    """Shares of effective / similar / incorrect instances, difficulty percentile.

    effective: the teacher's 25 hold the next item and the student's top 25
    do not; similar: both hold it; incorrect: the teacher's 25 do not.
    """
    split, _ = ds.find_sessions(selected)
    student_top = top_items(student, split.sessions, 25)
    teacher_hit = np.array(
        [y in rankings[int(s)] for s, y in zip(split.session_ids, split.labels)]
    )
    student_hit = (student_top == split.labels[:, None]).any(1)
    pct = 100.0 * (np.argsort(np.argsort(df, kind="stable"), kind="stable") + 0.5)
    pct = dict(zip(pool.tolist(), pct / len(df)))
    return {
        "effective": float((teacher_hit & ~student_hit).mean()),
        "similar": float((teacher_hit & student_hit).mean()),
        "incorrect": float((~teacher_hit).mean()),
        "student_only": float((~teacher_hit & student_hit).mean()),
        "difficulty_percentile": float(np.mean([pct[int(s)] for s in selected])),
    }


@runner("distill")
def _run_distill(cell: Cell, ctx: Context) -> dict:
    ds, cfg = ctx.dataset(cell.dataset), cell.config
    train = TrainConfig(**cfg["train"])

    def trained(dim: int):
        return train_or_load(
            ds,
            cfg["backbone"],
            dim,
            cfg["rec_seed"],
            ctx.work_dir,
            train,
            device=ctx.device,
            progress=ctx.progress,
        )[0]

    teacher_model, student = trained(100), trained(cfg["student_dim"])

    if cfg["strategy"] == "tr":  # the teacher recommender on all train sessions
        selected = ds.train.session_ids
        rankings = RecommenderTeacher(teacher_model, ds).rank(selected)
        extra = {}
    else:
        teacher, pool = make_teacher(cfg["teacher"], ds, teacher_model, ctx)
        df = difficulty(teacher_model, ds.find_sessions(pool)[0].sessions)
        selected = choose_sessions(cfg, ds, pool, df)
        rankings = teacher.rank(selected)
        extra = {
            "pool_size": int(len(pool)),
            "diagnostics": diagnostics(selected, rankings, ds, student, pool, df),
        }

    dcfg = DistillConfig(
        rank_weights=tuple(map(tuple, cfg["distill"]["rank_weights"])),
        train=TrainConfig(**cfg["distill"]["train"]),
    )
    model, fit = distill(
        student, ds, rankings, cfg["seed"], dcfg, progress=ctx.progress
    )
    return {
        "metrics": evaluate(model, ds.test),
        "valid": fit.valid,
        "student_test": evaluate(student, ds.test),
        "fit": asdict(fit),
        "selected": [int(s) for s in selected] if cfg["strategy"] != "tr" else [],
        **extra,
    }


def table2_cells(
    profile: Profile,
    datasets=None,
    backbones=None,
    strategies=None,
    seeds=None,
    teacher: str = "recorded",
) -> list[Cell]:
    """The cells of Table 2 (and Table 1's ALKDRec row) for a profile."""
    cells = []
    for ds in datasets or profile.datasets:
        for bb in backbones or profile.backbones:
            for st in strategies or profile.strategies:
                for seed in seeds or profile.distill_seeds:
                    cells.append(
                        distill_cell(
                            ds,
                            bb,
                            st,
                            seed,
                            teacher=teacher,
                            rec_seed=profile.rec_seed,
                            train=profile.train,
                            distill_config=DistillConfig(train=profile.distill_train),
                        )
                    )
    return cells


def table2(
    profile: Profile, ctx: Context, compute: bool = True, **select
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test metrics (long) and per-selection diagnostics of the distillation cells.

    ``compute=False`` reads only the cells already stored (``n_seeds`` in the
    table then says how complete each value is).
    """
    fetch = run_cells if compute else stored_cells
    records = fetch(table2_cells(profile, **select), ctx)

    def labels(rec):
        cfg = rec["config"]
        return {
            "dataset": rec["dataset"],
            "backbone": cfg["backbone"],
            "strategy": cfg["strategy"],
            "teacher": cfg["teacher"],
            "seed": cfg["seed"],
            "budget": cfg["budget"],
            "pool_size": rec.get("pool_size"),
        }

    metrics = long_table(records, labels)
    diag = pd.DataFrame([{**labels(r), **selection_facts(r)} for r in records])
    return metrics, diag


def selection_facts(record: dict) -> dict:
    """What a cell selected, and whether distilling it changed the student.

    ``kept_student`` is 1 when no evaluation of the distillation beat the
    starting Student on validation (best iteration 0), so the cell's test
    values are the Student's own.
    """
    facts = dict(record.get("diagnostics") or {})
    fit = record.get("fit")
    if fit is not None:
        facts["kept_student"] = float(fit["best_iter"] == 0)
    return facts

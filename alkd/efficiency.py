"""The efficiency claim: LLM cost of |B| sessions vs all, and model sizes.

The paper (METHOD.md section 7) asks GPT-4-turbo about |B| selected
sessions on Games instead of all of them: about 44 min and 8.6 USD
instead of 1,782 min and 347 USD, at 5.3 s a call. We measure the local
teacher's cost per answer (the teacher-quality cells time the ranking of
each session, without loading or tuning) and scale it by |B| and by the
number of train sessions, the pool a teacher without selection would have
to answer. Student and teacher parameter counts and inference latency
come from the trained backbones.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from alkd.ablation import paper_budget
from alkd.data import make_batch
from alkd.experiments import STUDENT_DIM, TEACHER_DIM, Context, Profile
from alkd.models import build_model
from alkd.train import train_or_load

log = logging.getLogger(__name__)

# METHOD.md section 7: GPT-4-turbo on Games, |B| vs every session
PAPER_COST = {
    "dataset": "Games",
    "seconds_per_call": 5.3,
    "minutes_selected": 44.0,
    "minutes_all": 1782.0,
    "usd_selected": 8.6,
    "usd_all": 347.0,
}


def llm_cost(quality: pd.DataFrame, ctx: Context, backbone: str = "fpmc"):
    """Minutes and tokens for |B| and for all train sessions, per LLM teacher.

    ``quality`` is :func:`alkd.teacher_quality.teacher_quality`'s table; one
    row per (dataset, LLM teacher) is kept (the cost does not depend on
    the score or the candidate set, which share one pass).
    """
    llm_rows = quality.dropna(subset=["answer_seconds_per_session"])
    llm_rows = llm_rows.drop_duplicates(["dataset", "teacher"])
    out = []
    for row in llm_rows.itertuples():
        n_train = len(ctx.dataset(row.dataset).train)
        budget = paper_budget(row.dataset, backbone)
        per = float(row.answer_seconds_per_session)
        out.append(
            {
                "dataset": row.dataset,
                "teacher": row.teacher,
                "seconds_per_call": per,
                "tokens_per_call": float(row.tokens_per_session),
                "budget": budget,
                "train_sessions": n_train,
                "minutes_selected": per * budget / 60,
                "minutes_all": per * n_train / 60,
                "tokens_selected": row.tokens_per_session * budget,
                "tokens_all": row.tokens_per_session * n_train,
                "saving": n_train / budget,
            }
        )
    return pd.DataFrame(out)


def parameter_counts(ctx: Context, datasets, backbones) -> pd.DataFrame:
    """Trainable parameters of every backbone as Student and as Teacher."""
    rows = []
    for name in datasets:
        n_items = ctx.dataset(name).n_items
        for backbone in backbones:
            counts = {}
            for role, dim in (("student", STUDENT_DIM), ("teacher", TEACHER_DIM)):
                model = build_model(backbone, n_items, dim)
                counts[role] = sum(p.numel() for p in model.parameters())
            rows.append(
                {
                    "dataset": name,
                    "backbone": backbone,
                    "student_params": counts["student"],
                    "teacher_params": counts["teacher"],
                    "teacher_over_student": counts["teacher"] / counts["student"],
                }
            )
    return pd.DataFrame(rows)


@torch.inference_mode()
def scoring_latency(model, sessions, batch_size: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per session to score every item."""
    model.eval()
    device = next(model.parameters()).device
    batches = [
        make_batch(sessions[i : i + batch_size]).to(device)
        for i in range(0, len(sessions), batch_size)
    ]
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            model.scores(batch)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(sessions)


def inference_latency(
    profile: Profile,
    ctx: Context,
    datasets,
    backbones,
    n_sessions: int = 512,
) -> pd.DataFrame:
    """Full-catalogue scoring time of trained Students and Teachers.

    One session at a time (serving latency) and in batches of 256
    (throughput), on the first ``n_sessions`` test sessions.
    """
    rows = []
    seed = profile.rec_seed if profile.rec_seed is not None else profile.seeds[0]
    for name in datasets:
        ds = ctx.dataset(name)
        sessions = ds.test.sessions[:n_sessions]
        for backbone in backbones:
            for role, dim in (("student", STUDENT_DIM), ("teacher", TEACHER_DIM)):
                model = train_or_load(
                    ds,
                    backbone,
                    dim,
                    seed,
                    ctx.work_dir,
                    profile.train,
                    device=ctx.device,
                    progress=ctx.progress,
                )[0]
                rows.append(
                    {
                        "dataset": name,
                        "backbone": backbone,
                        "role": role,
                        "ms_per_session_single": scoring_latency(
                            model, sessions[:64], 1
                        ),
                        "ms_per_session_batched": scoring_latency(model, sessions, 256),
                    }
                )
    return pd.DataFrame(rows)

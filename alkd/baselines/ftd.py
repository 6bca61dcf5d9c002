"""FTD, Full Topology Distillation (Kang et al., KDD 2021; BASELINES.md 2).

The student (d = 10) is trained from scratch on L_rec + lambda * L_FTD / B.
L_FTD = sum_{a,b} (C_T[a,b] - C_S[a,b])^2, the squared difference of the
cosine-similarity matrices of the batch's entities X = [sessions ; I_B]
(session-session, item-item and session-item pairs), where
I_B = unique(targets) U unique(one uniform negative per instance, drawn
outside its session and label). Representations: u(s) and the output
item table E.

Deviations from BASELINES.md: none intended. The summed L_FTD is divided by
the batch size B (section 0's rule for a batch-mean L_rec).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from alkd.baselines.common import (
    STUDENT_DIM,
    BaselineOptions,
    BaselineResult,
    Context,
    FrozenTeacher,
    Instances,
    LossLog,
    non_negative,
    prepare_teacher,
    rec_loss,
    run_fit,
)
from alkd.baselines.topology import full_topology_loss, stack_entities
from alkd.models import SessionRecommender, build_model
from alkd.train import Objective

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FTDOptions(BaselineOptions):
    """FTD settings; lambda_TD from the official notebook (BASELINES.md 2)."""

    kd_weight: float = 1e-3  # lambda_TD, for summed losses

    def __post_init__(self) -> None:
        non_negative("FTDOptions.kd_weight", self.kd_weight)


def kd_items(pos: torch.Tensor, kd_neg: np.ndarray) -> torch.Tensor:
    """I_B = unique(targets) U unique(KD negatives), sorted ids."""
    neg = torch.as_tensor(kd_neg, device=pos.device)
    return torch.unique(torch.cat([pos, neg]))


def make_objective(
    instances: Instances,
    teacher: FrozenTeacher,
    options: FTDOptions,
    losses: LossLog,
) -> Objective:
    """L_rec + lambda * L_FTD / B over a batch of training instances."""

    def objective(model: SessionRecommender, index: np.ndarray, rng, step: int):
        device = next(model.parameters()).device
        batch = instances.batch(index, device)
        pos = instances.positives(index, device)
        u, e_s = model.encode(batch), model.item_embeddings()
        l_rec = rec_loss(u, e_s, pos, instances.rec_negatives(index, rng, device))

        items = kd_items(pos, instances.kd_negatives(index, rng))
        u_t, e_t = teacher.view(index)
        l_kd = full_topology_loss(
            stack_entities(u, e_s, items), stack_entities(u_t, e_t, items)
        ) / len(index)
        loss = l_rec + options.kd_weight * l_kd
        losses.record(rec=l_rec, kd=l_kd, total=loss, entities=len(index) + len(items))
        return loss

    return objective


def train(ctx: Context, options: FTDOptions) -> BaselineResult:
    """Train a d = 10 student from scratch with FTD (no extra modules)."""
    instances = Instances(ctx.dataset.train, ctx.dataset.n_items, ctx.config)
    teacher = FrozenTeacher(prepare_teacher(ctx), instances, ctx.device)
    student = build_model(ctx.backbone, ctx.dataset.n_items, STUDENT_DIM)
    student = student.to(ctx.device)

    losses = LossLog()
    objective = make_objective(instances, teacher, options, losses)
    result = run_fit(ctx, student, objective, len(instances))
    extras = {"options": options.summary(), "loss_last": losses.last}
    return BaselineResult(student.eval(), result, extras)

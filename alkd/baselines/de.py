"""DE, Distillation Experts (Kang et al., CIKM 2020; BASELINES.md section 1).

The student (d = 10) is trained from scratch on L_rec + lambda * L_DE / B.
L_DE reconstructs the frozen teacher's representations (d = 100) from the
student's through M experts picked by a Gumbel-softmax selection net on the
teacher vector, annealed from T = 1 to 1e-10 over the iteration budget:

    L_DE = sum_s l(u_S(s), u_T(s))
           + 0.5 * [sum_{i in targets} l(E_S[i], E_T[i])
                    + sum_{j in negatives} l(E_S[j], E_T[j])]

over the batch's sessions, its unique targets and its unique KD negatives
(one uniform item per instance outside its session and label).
l(x, t) = ||t - sum_m pi_m e_m(x)||^2. Two expert sets: sessions and items.

Deviations from BASELINES.md: none intended. The summed L_DE is divided by
the batch size, as section 0 prescribes for a batch-mean L_rec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from alkd.baselines.common import (
    STUDENT_DIM,
    T_END,
    BaselineOptions,
    BaselineResult,
    Context,
    ExpertMixture,
    FrozenTeacher,
    Instances,
    KDStudent,
    LossLog,
    anneal_temperature,
    non_negative,
    positive,
    prepare_teacher,
    rec_loss,
    run_fit,
)
from alkd.models import build_model
from alkd.train import Objective

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DEOptions(BaselineOptions):
    """DE settings; defaults from the official code and log (BASELINES.md 1)."""

    kd_weight: float = 0.01  # lambda_DE
    n_experts: int = 30  # M
    item_weight: float = 0.5  # the items' share of L_DE
    t_end: float = T_END  # temperature at the end of the iteration budget

    def __post_init__(self) -> None:
        non_negative("DEOptions.kd_weight", self.kd_weight)
        non_negative("DEOptions.item_weight", self.item_weight)
        positive("DEOptions.t_end", self.t_end)
        if self.n_experts < 1:
            raise ValueError(f"DEOptions.n_experts must be >= 1, got {self.n_experts}")


def de_loss(
    session_experts: ExpertMixture,
    item_experts: ExpertMixture,
    u_s: torch.Tensor,
    u_t: torch.Tensor,
    e_s: torch.Tensor,
    e_t: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
    item_weight: float = 0.5,
) -> torch.Tensor:
    """Summed L_DE over sessions and the given (unique) target/negative ids."""
    sessions = session_experts(u_s, u_t, temperature).sum()
    pos = item_experts(e_s[targets], e_t[targets], temperature).sum()
    neg = item_experts(e_s[negatives], e_t[negatives], temperature).sum()
    return sessions + item_weight * (pos + neg)


def make_objective(
    instances: Instances,
    teacher: FrozenTeacher,
    options: DEOptions,
    t_max: int,
    losses: LossLog,
) -> Objective:
    """L_rec + lambda * L_DE / B over a batch of training instances."""

    def objective(model: KDStudent, index: np.ndarray, rng, step: int):
        device = next(model.parameters()).device
        batch = instances.batch(index, device)
        pos = instances.positives(index, device)
        l_rec = rec_loss(
            u := model.encode(batch),
            e_s := model.item_embeddings(),
            pos,
            instances.rec_negatives(index, rng, device),
        )
        kd_neg = torch.as_tensor(instances.kd_negatives(index, rng), device=device)

        u_t, e_t = teacher.view(index)
        temperature = anneal_temperature(step, t_max, t_end=options.t_end)
        l_kd = de_loss(
            model.kd["session_experts"],
            model.kd["item_experts"],
            u,
            u_t,
            e_s,
            e_t,
            torch.unique(pos),
            torch.unique(kd_neg),
            temperature,
            options.item_weight,
        )
        loss = l_rec + options.kd_weight * l_kd / len(index)
        losses.record(
            rec=l_rec, kd=l_kd / len(index), total=loss, temperature=temperature
        )
        return loss

    return objective


def train(ctx: Context, options: DEOptions) -> BaselineResult:
    """Train a d = 10 student from scratch with DE; experts are dropped after."""
    instances = Instances(ctx.dataset.train, ctx.dataset.n_items, ctx.config)
    teacher = FrozenTeacher(prepare_teacher(ctx), instances, ctx.device)
    student = build_model(ctx.backbone, ctx.dataset.n_items, STUDENT_DIM)
    model = KDStudent(
        student,
        session_experts=ExpertMixture(options.n_experts, STUDENT_DIM, teacher.dim),
        item_experts=ExpertMixture(options.n_experts, STUDENT_DIM, teacher.dim),
    ).to(ctx.device)

    losses = LossLog()
    objective = make_objective(
        instances, teacher, options, ctx.config.max_iters, losses
    )
    result = run_fit(ctx, model, objective, len(instances))
    extras = {"options": options.summary(), "loss_last": losses.last}
    return BaselineResult(student.eval(), result, extras)

"""HTD, Hierarchical Topology Distillation (Kang et al., KDD 2021; BASELINES.md 3).

The student (d = 10) is trained from scratch on L_rec + lambda * L_HTD / B,
L_HTD = alpha * L_TD + (1 - alpha) * L_GA over the batch's entities
X = [sessions ; I_B] (I_B as in FTD).

- Group assignment (GA): per entity type, K groups, an assignment net
  v(t) = softmax(Linear(t)) on the teacher vector and K reconstruction MLPs
  f_k (10 -> 55 -> 100). L_GA is DE's reconstruction loss with f_k as the
  experts and v as the (Gumbel-softmax, annealed 1 -> 1e-10) gate, items
  weighted 1. The hard group argmax_k v(t) (no gradient) drives L_TD;
  item groups are offset by K so a session and an item never share one.
- L_TD ("Group(P, e)", the official default): within-group entity pairs
  plus prototype-to-entity relations (``topology.hierarchical_topology_loss``).

Deviations from BASELINES.md: none intended. Kept reference-code quirks:
entity pairs need a positive teacher cosine; student prototypes are
detached. The summed L_HTD is divided by the batch size B (section 0).
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
from alkd.baselines.ftd import kd_items
from alkd.baselines.topology import hierarchical_topology_loss
from alkd.models import build_model
from alkd.train import Objective

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HTDOptions(BaselineOptions):
    """HTD settings; defaults from the official code (BASELINES.md 3)."""

    kd_weight: float = 1e-3  # lambda_TD, for summed losses
    n_groups: int = 30  # K, per entity type
    alpha: float = 0.5  # L_TD's share of L_HTD
    t_end: float = T_END

    def __post_init__(self) -> None:
        non_negative("HTDOptions.kd_weight", self.kd_weight)
        positive("HTDOptions.t_end", self.t_end)
        if self.n_groups < 1:
            raise ValueError(f"HTDOptions.n_groups must be >= 1, got {self.n_groups}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"HTDOptions.alpha must lie in [0, 1], got {self.alpha}")


def htd_loss(
    session_ga: ExpertMixture,
    item_ga: ExpertMixture,
    u_s: torch.Tensor,
    u_t: torch.Tensor,
    i_s: torch.Tensor,
    i_t: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_TD, L_GA), both summed, for sessions (u) and KD items (i) of a batch."""
    l_ga = (
        session_ga(u_s, u_t, temperature).sum() + item_ga(i_s, i_t, temperature).sum()
    )
    k = session_ga.gate.out_features
    groups = torch.cat(
        [session_ga.hard_assignment(u_t), item_ga.hard_assignment(i_t) + k]
    )
    l_td = hierarchical_topology_loss(
        torch.cat([u_s, i_s]), torch.cat([u_t, i_t]), groups
    )
    return l_td, l_ga


def make_objective(
    instances: Instances,
    teacher: FrozenTeacher,
    options: HTDOptions,
    t_max: int,
    losses: LossLog,
) -> Objective:
    """L_rec + lambda * (alpha L_TD + (1 - alpha) L_GA) / B."""

    def objective(model: KDStudent, index: np.ndarray, rng, step: int):
        device = next(model.parameters()).device
        batch = instances.batch(index, device)
        pos = instances.positives(index, device)
        u, e_s = model.encode(batch), model.item_embeddings()
        l_rec = rec_loss(u, e_s, pos, instances.rec_negatives(index, rng, device))

        items = kd_items(pos, instances.kd_negatives(index, rng))
        u_t, e_t = teacher.view(index)
        temperature = anneal_temperature(step, t_max, t_end=options.t_end)
        l_td, l_ga = htd_loss(
            model.kd["session_groups"],
            model.kd["item_groups"],
            u,
            u_t,
            e_s[items],
            e_t[items],
            temperature,
        )
        l_kd = (options.alpha * l_td + (1 - options.alpha) * l_ga) / len(index)
        loss = l_rec + options.kd_weight * l_kd
        losses.record(
            rec=l_rec,
            kd=l_kd,
            td=l_td / len(index),
            ga=l_ga / len(index),
            total=loss,
            temperature=temperature,
        )
        return loss

    return objective


def train(ctx: Context, options: HTDOptions) -> BaselineResult:
    """Train a d = 10 student from scratch with HTD; GA modules dropped after."""
    instances = Instances(ctx.dataset.train, ctx.dataset.n_items, ctx.config)
    teacher = FrozenTeacher(prepare_teacher(ctx), instances, ctx.device)
    student = build_model(ctx.backbone, ctx.dataset.n_items, STUDENT_DIM)
    model = KDStudent(
        student,
        session_groups=ExpertMixture(options.n_groups, STUDENT_DIM, teacher.dim),
        item_groups=ExpertMixture(options.n_groups, STUDENT_DIM, teacher.dim),
    ).to(ctx.device)

    losses = LossLog()
    objective = make_objective(
        instances, teacher, options, ctx.config.max_iters, losses
    )
    result = run_fit(ctx, model, objective, len(instances))
    extras = {"options": options.summary(), "loss_last": losses.last}
    return BaselineResult(student.eval(), result, extras)

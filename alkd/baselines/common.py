"""Pieces every KD baseline shares (BASELINES.md section 0).

- ``Instances``: the training instances (train session -> next item) as
  tensors, with the plain student's negatives and the KD negatives;
- ``rec_loss``: L_rec, the plain student's BPR (``alkd.train``) computed
  from an already encoded batch so the KD term can reuse the encoding;
- ``KDStudent``: the student plus training-only KD modules in one module,
  so ``alkd.train.fit``'s Adam (over ``model.parameters()``) trains both;
- ``ExpertMixture``: DE's experts with a Gumbel-softmax selection net, also
  HTD's group assignment;
- ``FrozenTeacher``: the teacher's vectors of all instances, computed once
  under no_grad. BASELINES.md 0 suggests on-the-fly forwards; the frozen
  eval-mode teacher gives identical values, and once is cheaper;
- the temperature schedule and option parsing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alkd.data import SessionBatch, SessionDataset, Split, make_batch, session_item_sets
from alkd.metrics import exclusion_mask
from alkd.models import SessionRecommender
from alkd.train import (
    FitResult,
    Objective,
    TrainConfig,
    bpr_loss,
    fit,
    rows,
    sample_negatives,
)

log = logging.getLogger(__name__)

STUDENT_DIM = 10  # the paper's student (METHOD.md section 3)
TEACHER_DIM = 100  # the paper's teacher
T_END = 1e-10  # DE/HTD codes anneal the temperature from 1 down to this


class BaselineOptions:
    """Mixin for the per-method option dataclasses: ``from_dict`` refuses typos."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None):
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """The options as plain values (arrays shown by their shape)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value.shape) if isinstance(value, np.ndarray) else value
        return out


def positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass
class BaselineResult:
    """A trained student, its fit record and method-specific figures."""

    model: SessionRecommender
    fit: FitResult
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What ``train_baseline`` resolved before handing over to a method."""

    method: str
    dataset: SessionDataset
    backbone: str
    seed: int
    config: TrainConfig
    rng: np.random.Generator
    device: torch.device
    progress: bool
    teacher: SessionRecommender | None = None


class Instances:
    """The training instances as one pre-built batch, plus their negatives."""

    def __init__(self, split: Split, n_items: int, config: TrainConfig) -> None:
        self.n_items = n_items
        self.config = config
        self.inputs = make_batch(split.sessions, config.seq_len)
        self.labels = np.asarray(split.labels, dtype=np.int64)
        self.labels_t = torch.as_tensor(self.labels)
        # untruncated, as evaluation excludes them
        self.item_sets = session_item_sets(split.sessions)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray, device: torch.device) -> SessionBatch:
        return rows(self.inputs, index).to(device)

    def positives(self, index: np.ndarray, device: torch.device) -> torch.Tensor:
        return self.labels_t[index].to(device)  # (B,)

    def rec_negatives(
        self, index: np.ndarray, rng: np.random.Generator, device: torch.device
    ) -> torch.Tensor | None:
        """L_rec's negatives, drawn exactly as ``alkd.train.bpr_objective`` does."""
        if self.config.negatives == "in-batch":
            return None
        neg = sample_negatives(
            rng, self.labels[index], self.n_items, self.config.n_negatives
        )
        return torch.as_tensor(neg, device=device)  # (B, n)

    def exclusion(
        self,
        index: np.ndarray,
        device: torch.device | str = "cpu",
        with_label: bool = True,
    ) -> torch.Tensor:
        """(B, N) bool: the instance's session items (and its label)."""
        mask = exclusion_mask(
            [self.item_sets[i] for i in index], len(index), self.n_items, device
        )
        if with_label:
            label = torch.as_tensor(self.labels[index], device=device)
            mask[torch.arange(len(index), device=device), label] = True
        return mask

    def kd_negatives(
        self, index: np.ndarray, rng: np.random.Generator, max_rounds: int = 1000
    ) -> np.ndarray:
        """One uniform item per instance outside its session and label, (B,)."""
        excluded = self.exclusion(index).numpy()  # (B, N)
        neg = rng.integers(0, self.n_items, size=len(index))
        for _ in range(max_rounds):  # rejection: sessions cover few items
            bad = excluded[np.arange(len(index)), neg]
            if not bad.any():
                return neg
            neg[bad] = rng.integers(0, self.n_items, size=int(bad.sum()))
        raise ValueError("kd_negatives: a session excludes (almost) every item")


def rec_loss(
    u: torch.Tensor,
    table: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor | None,
) -> torch.Tensor:
    """The plain student's BPR from session vectors u (B, d) and items (N, d).

    ``neg`` (B, n) gives sampled negatives; ``None`` means in-batch negatives
    (the other instances' labels), as in ``alkd.train.in_batch_bpr``.
    """
    if neg is None:
        s = u @ table[pos].T  # (B, B)
        valid = pos[None, :] != pos[:, None]
        loss = -F.logsigmoid(s.diagonal()[:, None] - s)
        return (loss * valid).sum() / valid.sum().clamp_min(1)
    both = torch.cat([pos[:, None], neg], 1)  # (B, 1 + n)
    s = torch.einsum("bd,bkd->bk", u, table[both])
    return bpr_loss(s[:, :1], s[:, 1:])


class KDStudent(nn.Module):
    """The student and its training-only KD modules, scored as the student."""

    def __init__(self, student: SessionRecommender, **kd_modules: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.kd = nn.ModuleDict(kd_modules)
        self.name, self.dim, self.n_items = student.name, student.dim, student.n_items

    def encode(self, batch: SessionBatch) -> torch.Tensor:
        return self.student.encode(batch)

    def item_embeddings(self) -> torch.Tensor:
        return self.student.item_embeddings()

    def scores(self, batch: SessionBatch) -> torch.Tensor:
        return self.student.scores(batch)

    def score_items(self, batch: SessionBatch, items: torch.Tensor) -> torch.Tensor:
        return self.student.score_items(batch, items)


class ExpertMixture(nn.Module):
    """M MLP experts R^ds -> R^dt chosen by a Gumbel-softmax net on the teacher.

    Expert m is Linear(ds, h) -> ReLU -> Linear(h, dt), h = (ds + dt) // 2;
    the selection net is a(t) = softmax(W t + b). The experts are stored as
    stacked weights so all M run in one einsum.
    """

    def __init__(self, n_experts: int, d_student: int, d_teacher: int) -> None:
        super().__init__()
        if n_experts < 1:
            raise ValueError(f"n_experts must be >= 1, got {n_experts}")
        hidden = (d_student + d_teacher) // 2
        self.w1 = nn.Parameter(_uniform((n_experts, d_student, hidden), d_student))
        self.b1 = nn.Parameter(_uniform((n_experts, hidden), d_student))
        self.w2 = nn.Parameter(_uniform((n_experts, hidden, d_teacher), hidden))
        self.b2 = nn.Parameter(_uniform((n_experts, d_teacher), hidden))
        self.gate = nn.Linear(d_teacher, n_experts)

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert's reconstruction, (n, ds) -> (n, M, dt)."""
        h = torch.relu(torch.einsum("nd,mdh->nmh", x, self.w1) + self.b1)
        return torch.einsum("nmh,mht->nmt", h, self.w2) + self.b2

    def selection(
        self,
        t: torch.Tensor,
        temperature: float,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """pi = softmax((log(a(t) + 1e-10) + g) / T), (n, M); g ~ Gumbel(0, 1)."""
        a = torch.softmax(self.gate(t), -1)
        g = gumbel_noise(a.shape, a.device) if noise is None else noise
        return torch.softmax((torch.log(a + 1e-10) + g) / temperature, -1)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        temperature: float,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-entity reconstruction loss ||t - sum_m pi_m e_m(x)||^2, (n,)."""
        pi = self.selection(t, temperature, noise)  # (n, M)
        t_hat = (pi.unsqueeze(-1) * self.expert_outputs(x)).sum(1)  # (n, dt)
        return (t - t_hat).pow(2).sum(-1)

    @torch.no_grad()
    def hard_assignment(self, t: torch.Tensor) -> torch.Tensor:
        """argmax_m a(t): the expert (HTD: group) of each entity, (n,)."""
        return self.gate(t).argmax(-1)


def _uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-bound, bound)


def gumbel_noise(shape: tuple[int, ...] | torch.Size, device) -> torch.Tensor:
    """i.i.d. Gumbel(0, 1) draws from torch's (seeded) generator."""
    u = torch.rand(shape, device=device)
    return -torch.log(-torch.log(u + 1e-20) + 1e-20)


def anneal_temperature(
    step: int, t_max: int, t0: float = 1.0, t_end: float = T_END
) -> float:
    """T(t) = t0 * (t_end / t0)^(t / t_max), floored at t_end (BASELINES.md 0)."""
    frac = min(max(step / t_max, 0.0), 1.0)
    return max(t0 * (t_end / t0) ** frac, t_end)


class FrozenTeacher:
    """The frozen teacher's vectors of every training instance, computed once.

    The teacher is in eval mode and the instances are fixed, so u_T(s) is
    the same at every step: encoding all instances once (no_grad) gives the
    same values as an on-the-fly forward per batch, at a fraction of the cost.
    """

    def __init__(
        self,
        teacher: SessionRecommender,
        instances: Instances,
        device: torch.device | str,
        chunk: int = 4096,
    ) -> None:
        teacher = teacher.to(device).eval()
        n, parts = len(instances), []
        with torch.no_grad():
            for start in range(0, n, chunk):
                index = np.arange(start, min(start + chunk, n))
                parts.append(teacher.encode(instances.batch(index, device)))
            self.sessions = torch.cat(parts)  # (n, dt)
            self.items = teacher.item_embeddings().detach().clone()  # (N, dt)
        self.dim = self.items.shape[1]

    def view(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """u_T of the instances at ``index`` (B, dt) and E_T (N, dt)."""
        rows = torch.as_tensor(index, device=self.sessions.device)
        return self.sessions[rows], self.items


def prepare_teacher(ctx: Context) -> SessionRecommender:
    """Check the teacher fits the dataset and backbone; freeze it on the device."""
    teacher = ctx.teacher
    if teacher is None:
        raise ValueError(f"{ctx.method}: needs a trained teacher (teacher=None)")
    if teacher.name != ctx.backbone.lower():
        raise ValueError(
            f"{ctx.method}: teacher backbone {teacher.name!r} differs from "
            f"the student's {ctx.backbone!r}"
        )
    if teacher.n_items != ctx.dataset.n_items:
        raise ValueError(
            f"{ctx.method}: teacher has {teacher.n_items} items, the dataset "
            f"{ctx.dataset.n_items}"
        )
    if teacher.dim != TEACHER_DIM:
        log.warning("teacher dim=%d (the paper's is %d)", teacher.dim, TEACHER_DIM)
    return teacher.to(ctx.device).eval()


class LossLog:
    """The last loss components, for ``extras`` and the smoke tests."""

    def __init__(self) -> None:
        self._last: dict[str, torch.Tensor | float] = {}
        self.steps = 0

    def record(self, **parts: torch.Tensor | float) -> None:
        # kept as detached tensors: a float() per step would sync a GPU
        self._last = {
            k: v.detach() if torch.is_tensor(v) else v for k, v in parts.items()
        }
        self.steps += 1

    @property
    def last(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._last.items()}


def run_fit(
    ctx: Context, model: nn.Module, objective: Objective, n_instances: int
) -> FitResult:
    """``alkd.train.fit`` with the plain student's schedule and stopping."""
    desc = f"{ctx.dataset.name}/{ctx.backbone}/{ctx.method}/s{ctx.seed}"
    return fit(
        model,
        objective,
        n_instances,
        ctx.dataset.valid,
        ctx.config,
        ctx.rng,
        progress=ctx.progress,
        desc=desc,
    )


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""DSL, dynamic sparse learning (Wang et al., WSDM 2024; BASELINES.md 5).

Not KD: no teacher. The backbone at the teacher's size (d = 100) is trained
from scratch on the plain student's L_rec with every parameter tensor
masked, under a non-zero budget equal to the dense d = 10 student's
parameter count (density ~ 0.1, "budget-matched"):

- masks are random with uniform density over tensors;
- the forward pass uses W * mask, so the model is always exactly sparse
  (at validation too); the mask lives in the model's state, so the best
  validation point restores weights and mask together;
- every Delta_T = 100 iterations, per tensor, the ceil(r_t * nnz) active
  weights of smallest |w| are pruned and as many inactive positions with
  the largest |grad| (last mini-batch) are grown, starting at 0;
- r_t decays from 0.5 to 0.005 by a cosine over the iteration budget.

Deviations from BASELINES.md: each tensor gets exactly its share of the
budget (largest-remainder rounding of density * size, positions uniform
at random) instead of independent Bernoulli(density) entries, so the total
equals the budget exactly. Gradients pass straight through the mask, so
the inactive weights' (unused, reset-on-growth) copies keep receiving Adam
updates; this gives the dense gradient that growth needs without access to
``fit``'s optimiser, whose moments are therefore not reset on growth.
Prune-and-grow runs at the start of iteration t + 1 with the gradients of
iteration t (``fit`` clears them only after the objective).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from alkd.baselines.common import (
    STUDENT_DIM,
    TEACHER_DIM,
    BaselineOptions,
    BaselineResult,
    Context,
    LossLog,
    parameter_count,
    run_fit,
)
from alkd.data import make_batch
from alkd.models import build_model
from alkd.train import Objective, bpr_objective

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DSLOptions(BaselineOptions):
    """DSL settings (BASELINES.md 5: budget-matched, Delta_T = 100)."""

    dense_dim: int = TEACHER_DIM  # the sparse model's architecture
    budget_dim: int = STUDENT_DIM  # the dense model whose size is the budget
    update_every: int = 100  # Delta_T, iterations between prune-and-grow
    ratio_start: float = 0.5  # r_0
    ratio_end: float = 0.005

    def __post_init__(self) -> None:
        if not 1 <= self.budget_dim <= self.dense_dim:
            raise ValueError("DSLOptions: needs 1 <= budget_dim <= dense_dim")
        if self.update_every < 1:
            raise ValueError("DSLOptions.update_every must be >= 1")
        if not 0 <= self.ratio_end <= self.ratio_start <= 1:
            raise ValueError("DSLOptions: needs 0 <= ratio_end <= ratio_start <= 1")


def update_ratio(
    step: int, total: int, start: float = 0.5, end: float = 0.005
) -> float:
    """Cosine decay r_t = end + (start - end) (1 + cos(pi t / total)) / 2."""
    frac = min(max(step / total, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * frac))


def allocate_budget(sizes: list[int], budget: int) -> list[int]:
    """Split ``budget`` over tensors in proportion to size (largest remainder)."""
    total = sum(sizes)
    if not 0 <= budget <= total:
        raise ValueError(f"budget {budget} outside 0..{total}")
    exact = np.asarray(sizes, dtype=np.float64) * budget / total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: budget - counts.sum()]] += 1
    return counts.tolist()


class _StraightThroughMask(torch.autograd.Function):
    """W * mask forward; the dense gradient backward (for growth)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class Mask(nn.Module):
    """A parametrization holding a binary mask as a buffer (saved in state)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _StraightThroughMask.apply(weight, self.mask)


class SparseMasks:
    """Masks over every parameter tensor of a model, with prune-and-grow."""

    def __init__(self, model: nn.Module, budget: int, rng: np.random.Generator):
        self.slots = [
            (module, name)
            for module in model.modules()
            for name, _ in list(module.named_parameters(recurse=False))
        ]
        sizes = [getattr(m, n).numel() for m, n in self.slots]
        self.budget = budget
        shares = allocate_budget(sizes, budget)
        for (module, name), k in zip(self.slots, shares, strict=True):
            weight = getattr(module, name)
            mask = torch.zeros(weight.numel(), device=weight.device)
            chosen = torch.as_tensor(rng.permutation(weight.numel())[:k])
            mask[chosen.to(weight.device)] = 1.0
            mask = mask.view_as(weight)
            with torch.no_grad():
                weight.mul_(mask)
            parametrize.register_parametrization(module, name, Mask(mask))
        self.rounds = 0

    def _parts(self, module: nn.Module, name: str):
        plist = module.parametrizations[name]
        return plist.original, plist[0].mask

    def active(self) -> list[int]:
        """Active (mask = 1) entries per tensor."""
        return [int(self._parts(m, n)[1].sum()) for m, n in self.slots]

    def nonzero(self) -> int:
        """Non-zero entries of the effective (masked) weights."""
        with torch.no_grad():
            return sum(int((getattr(m, n) != 0).sum()) for m, n in self.slots)

    @torch.no_grad()
    def prune_and_grow(self, ratio: float) -> int:
        """Move ceil(ratio * nnz) entries per tensor; returns how many in all."""
        moved = 0
        for module, name in self.slots:
            weight, mask = self._parts(module, name)
            moved += _prune_and_grow(weight, mask, ratio)
        self.rounds += 1
        return moved

    def remove(self) -> None:
        """Bake W * mask into plain parameters (the model loses its masks)."""
        for module, name in self.slots:
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)


def _prune_and_grow(weight: torch.Tensor, mask: torch.Tensor, ratio: float) -> int:
    """Drop the smallest |w| active, grow the largest |grad| inactive, in place."""
    active = mask.view(-1) > 0
    k = math.ceil(ratio * int(active.sum()))
    if k == 0 or weight.grad is None:
        return 0
    w, flat = weight.view(-1), mask.view(-1)
    magnitude = torch.where(active, w.abs(), torch.full_like(w, torch.inf))
    flat[magnitude.topk(k, largest=False).indices] = 0.0

    grad = weight.grad.view(-1).abs()
    grad = torch.where(flat > 0, torch.full_like(grad, -torch.inf), grad)
    grow = grad.topk(k).indices
    flat[grow] = 1.0
    w[grow] = 0.0  # regrown weights start at zero
    return k


def make_objective(
    base: Objective, masks: SparseMasks, options: DSLOptions, total: int, losses
) -> Objective:
    """The plain BPR objective with a prune-and-grow round every Delta_T."""

    def objective(model, index, rng, step: int):
        done = step - 1  # iterations whose gradients are in .grad
        if done > 0 and done % options.update_every == 0:
            ratio = update_ratio(done, total, options.ratio_start, options.ratio_end)
            moved = masks.prune_and_grow(ratio)
            log.debug("dsl round=%d ratio=%.4f moved=%d", masks.rounds, ratio, moved)
        loss = base(model, index, rng, step)
        losses.record(rec=loss, total=loss)
        return loss

    return objective


def train(ctx: Context, options: DSLOptions) -> BaselineResult:
    """Train the d = 100 backbone sparsely at the d = 10 model's budget."""
    if ctx.teacher is not None:
        log.info("dsl ignores the teacher (it is not a KD method)")
    n_items, config = ctx.dataset.n_items, ctx.config
    budget = parameter_count(build_model(ctx.backbone, n_items, options.budget_dim))
    model = build_model(ctx.backbone, n_items, options.dense_dim).to(ctx.device)
    dense = parameter_count(model)
    masks = SparseMasks(model, budget, ctx.rng)

    inputs = make_batch(ctx.dataset.train.sessions, config.seq_len)
    base = bpr_objective(
        inputs, ctx.dataset.train.labels, n_items, config.n_negatives, config.negatives
    )
    losses = LossLog()
    objective = make_objective(base, masks, options, config.max_iters, losses)
    result = run_fit(ctx, model, objective, len(ctx.dataset.train))

    active = masks.active()
    masks.remove()
    extras = {
        "options": options.summary(),
        "loss_last": losses.last,
        "budget": budget,
        "dense_params": dense,
        "density": budget / dense,
        "active": sum(active),
        "nonzero": sum(int((p != 0).sum()) for p in model.parameters()),
        "rounds": masks.rounds,
    }
    log.info(
        "dsl budget=%d active=%d nonzero=%d", budget, sum(active), extras["nonzero"]
    )
    return BaselineResult(model.eval(), result, extras)

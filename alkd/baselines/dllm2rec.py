"""DLLM2Rec (Cui et al., RecSys 2024) with LLM id lists (BASELINES.md 6).

The student (d = 10) is trained jointly from scratch: every iteration adds
to L_rec on the usual batch lambda_RD * mean_s L_RD(s) on a batch of the
LLM-labelled pool (500 train sessions; the whole pool when it fits).

(a) Ranking distillation. The LLM's list for s is cleaned (ids outside
    the catalogue and repeats dropped, order kept) and cut to K = 10;
    w_r ~ gamma_p w^p_r + gamma_o w^o_r over the valid slots, renormalised,
    with w^p_r = exp(-r / beta) / sum_{r'=1..K} exp(-r' / beta) and
    w^o_r = 1 if c_r is in the student's current top-K (no gradient,
    session items excluded as in evaluation), else 0. No confidence term
    (the paper's setting). L_RD(s) = sum_r w_r [-log sigmoid(y(s, c_r))
    - log sigmoid(-y(s, j))], j one uniform negative per instance.
(b) Collaborative embedding distillation. With item title embeddings z
    (N, D) the encoder's input embedding becomes e_i + gamma_e f(z_i),
    f a learnable Linear(D, d); the output table is unchanged. Without
    them gamma_e is 0 and the row is "DLLM2Rec (RD only)".

Deviations from BASELINES.md: the standard -log sigmoid(-y_j) negative term
(the code writes log sigmoid(1 - y_j)), no 1e-8 on w^o; w^p is normalised
over all K positions before masking missing slots; j is drawn for the
labelled batch (excluding the label) since L_rec's batch is another one.
Our backbones tie the input and output item tables, so ED is applied by
a forward hook on the student's input embedding; after training the hook
holds the fixed offset gamma_e f(z) (N + 1, d) (``extras["input_offset"]``),
a buffer outside the state dict: a checkpoint of the student loses it;
``attach_input_offset`` restores it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alkd.baselines.common import (
    STUDENT_DIM,
    BaselineOptions,
    BaselineResult,
    Context,
    Instances,
    KDStudent,
    LossLog,
    non_negative,
    positive,
    rec_loss,
    run_fit,
)
from alkd.data import SessionDataset
from alkd.models import SessionRecommender, build_model
from alkd.train import Objective, sample_negatives

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DLLM2RecOptions(BaselineOptions):
    """DLLM2Rec settings; defaults from the code (BASELINES.md 6)."""

    kd_weight: float = 0.8  # lambda_RD
    top_k: int = 10  # K, list length distilled
    beta: float = 1.0  # position-weight decay
    gamma_position: float = 0.3  # gamma_p
    gamma_consistency: float = 0.1  # gamma_o
    ed_weight: float = 0.2  # gamma_e; forced to 0 without title embeddings
    item_title_embeddings: np.ndarray | None = None  # (N, D), frozen

    def __post_init__(self) -> None:
        non_negative("DLLM2RecOptions.kd_weight", self.kd_weight)
        positive("DLLM2RecOptions.beta", self.beta)
        non_negative("DLLM2RecOptions.gamma_position", self.gamma_position)
        non_negative("DLLM2RecOptions.gamma_consistency", self.gamma_consistency)
        non_negative("DLLM2RecOptions.ed_weight", self.ed_weight)
        if self.gamma_position + self.gamma_consistency <= 0:
            raise ValueError("DLLM2RecOptions: gamma_position + gamma_consistency = 0")
        if self.top_k < 1:
            raise ValueError(f"DLLM2RecOptions.top_k must be >= 1, got {self.top_k}")
        z = self.item_title_embeddings
        if z is not None and (not isinstance(z, np.ndarray) or z.ndim != 2):
            raise ValueError("DLLM2RecOptions.item_title_embeddings must be (N, D)")


def clean_ranking(items, n_items: int, top_k: int) -> list[int]:
    """Catalogue ids in first-seen order, without repeats, at most ``top_k``."""
    seen: dict[int, None] = {}
    for v in items:
        v = int(v)
        if 0 <= v < n_items and v not in seen:
            seen[v] = None
    return list(seen)[:top_k]


def position_weights(top_k: int, beta: float) -> torch.Tensor:
    """w^p_r = exp(-r / beta) / sum_{r'=1..K} exp(-r' / beta), (K,)."""
    raw = torch.exp(-torch.arange(1, top_k + 1, dtype=torch.float64) / beta)
    return (raw / raw.sum()).float()


def ranking_weights(
    candidates: torch.Tensor,
    valid: torch.Tensor,
    student_top: torch.Tensor,
    options: DLLM2RecOptions,
) -> torch.Tensor:
    """w_r ~ gamma_p w^p_r + gamma_o w^o_r on valid slots, rows sum to 1, (B, K)."""
    w_p = position_weights(candidates.shape[1], options.beta).to(candidates.device)
    w_o = (candidates[:, :, None] == student_top[:, None, :]).any(-1).float()
    w = (options.gamma_position * w_p + options.gamma_consistency * w_o) * valid
    return w / w.sum(1, keepdim=True).clamp_min(1e-30)


def rd_loss(
    u: torch.Tensor,
    table: torch.Tensor,
    candidates: torch.Tensor,
    weights: torch.Tensor,
    negatives: torch.Tensor,
) -> torch.Tensor:
    """mean_s sum_r w_r [-log sig(y(s, c_r)) - log sig(-y(s, j))]."""
    y_c = torch.einsum("bd,bkd->bk", u, table[candidates.clamp_min(0)])
    y_j = (u * table[negatives]).sum(-1, keepdim=True)  # (B, 1)
    per_slot = -F.logsigmoid(y_c) - F.logsigmoid(-y_j)
    return (weights * per_slot).sum(1).mean()


class LabelledPool:
    """The LLM-labelled train sessions with cleaned candidate lists."""

    def __init__(self, dataset: SessionDataset, rankings: dict, options, config):
        position = {int(s): i for i, s in enumerate(dataset.train.session_ids)}
        rows, lists = [], []
        for sid, items in rankings.items():
            if int(sid) not in position:
                raise ValueError(f"llm_rankings: session {sid} is not a train session")
            kept = clean_ranking(items, dataset.n_items, options.top_k)
            if kept:
                rows.append(position[int(sid)])
                lists.append(kept)
        if not rows:
            raise ValueError("llm_rankings: no session has a usable ranking")
        dropped = len(rankings) - len(rows)
        if dropped:
            log.warning("dllm2rec dropped=%d sessions without valid ids", dropped)
        self.instances = Instances(dataset.train.subset(rows), dataset.n_items, config)
        cand = np.full((len(rows), options.top_k), -1, dtype=np.int64)
        for r, kept in enumerate(lists):
            cand[r, : len(kept)] = kept
        self.candidates = torch.as_tensor(cand)  # (P, K), -1 = missing slot

    def __len__(self) -> int:
        return len(self.candidates)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """The whole pool if it fits in a batch, else a uniform subset."""
        if len(self) <= size:
            return np.arange(len(self))
        return np.sort(rng.choice(len(self), size=size, replace=False))


class InputOffset(nn.Module):
    """ED's input-side term gamma_e f(z_i), added to the student's input rows."""

    def __init__(self, titles: np.ndarray, dim: int, weight: float) -> None:
        super().__init__()
        z = torch.as_tensor(np.asarray(titles, dtype=np.float32))
        padded = torch.cat([torch.zeros(1, z.shape[1]), z])  # row 0 = padding
        self.register_buffer("titles", padded, persistent=False)
        self.project = nn.Linear(z.shape[1], dim)
        self.weight = weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(..., ) embedding ids (0 = padding) -> (..., d) offsets."""
        out = self.weight * self.project(self.titles[ids])
        return out * (ids > 0).unsqueeze(-1)

    @torch.no_grad()
    def table(self) -> torch.Tensor:
        """The folded offsets of every id, (N + 1, d), padding row zero."""
        return self(torch.arange(self.titles.shape[0], device=self.titles.device))


def attach_input_offset(student: SessionRecommender, offset) -> None:
    """Add ``offset`` (N + 1, d) rows, or a module of ids, to the input lookups."""

    def hook(module, inputs, output):
        ids = inputs[0]
        return output + (offset(ids) if callable(offset) else offset[ids])

    if getattr(student, "_ed_hook", None) is not None:
        student._ed_hook.remove()
    student._ed_hook = student.item_emb.register_forward_hook(hook)


def make_objective(
    instances: Instances, pool: LabelledPool, options: DLLM2RecOptions, losses
) -> Objective:
    """L_rec on the batch + lambda_RD * L_RD on a labelled-pool batch."""

    def objective(model: KDStudent, index: np.ndarray, rng, step: int):
        device = next(model.parameters()).device
        batch = instances.batch(index, device)
        pos = instances.positives(index, device)
        u, table = model.encode(batch), model.item_embeddings()
        l_rec = rec_loss(u, table, pos, instances.rec_negatives(index, rng, device))

        rows = pool.draw(rng, instances.config.batch_size)
        lab = pool.instances
        u_l = model.encode(lab.batch(rows, device))
        cand = pool.candidates[rows].to(device)
        with torch.no_grad():  # the student's current top-K, as evaluated
            seen = lab.exclusion(rows, device, with_label=False)
            scores = (u_l @ table.T).masked_fill(seen, -torch.inf)
            top = scores.topk(min(options.top_k, scores.shape[1]), dim=1).indices
            weights = ranking_weights(cand, cand >= 0, top, options)
        neg = sample_negatives(rng, lab.labels[rows], lab.n_items, 1)[:, 0]
        l_kd = rd_loss(u_l, table, cand, weights, torch.as_tensor(neg, device=device))
        loss = l_rec + options.kd_weight * l_kd
        losses.record(rec=l_rec, kd=l_kd, total=loss)
        return loss

    return objective


def train(
    ctx: Context, options: DLLM2RecOptions, llm_rankings: dict | None
) -> BaselineResult:
    """Joint training of a d = 10 student with RD (and ED with title vectors)."""
    if not llm_rankings:
        raise ValueError("dllm2rec: needs llm_rankings (session id -> item ids)")
    dataset = ctx.dataset
    pool = LabelledPool(dataset, llm_rankings, options, ctx.config)
    instances = Instances(dataset.train, dataset.n_items, ctx.config)
    student = build_model(ctx.backbone, dataset.n_items, STUDENT_DIM)

    titles = options.item_title_embeddings
    ed = titles is not None and options.ed_weight > 0
    modules = {}
    if ed:
        if titles.shape[0] != dataset.n_items:
            raise ValueError(
                f"item_title_embeddings has {titles.shape[0]} rows for "
                f"{dataset.n_items} items"
            )
        modules["offset"] = InputOffset(titles, STUDENT_DIM, options.ed_weight)
        attach_input_offset(student, modules["offset"])
    model = KDStudent(student, **modules).to(ctx.device)

    losses = LossLog()
    objective = make_objective(instances, pool, options, losses)
    result = run_fit(ctx, model, objective, len(instances))
    extras = {
        "options": options.summary(),
        "loss_last": losses.last,
        "labelled": len(pool),
        "variant": "RD+ED" if ed else "RD only",
    }
    if ed:
        offset = modules["offset"].table()
        attach_input_offset(student, offset)  # fold: a constant, no parameters
        extras["input_offset"] = offset
    return BaselineResult(student.eval(), result, extras)

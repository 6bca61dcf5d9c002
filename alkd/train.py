"""Training: Adam, BPR with sampled negatives, early stopping on validation.

The settings follow the paper "for all methods" (METHOD.md section 3): Adam,
lr 1e-3, batch 1024, pairwise BPR, early stopping on validation recall. The
iteration budget and validation schedule are the authors' (at most 10,000
iterations, validation every 20). The same loop serves the plain recommender,
the distillation of Eq. 1 and the KD baselines through an ``Objective``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from alkd.data import (
    SEQ_LEN,
    SessionBatch,
    SessionDataset,
    Split,
    make_batch,
    session_item_sets,
)
from alkd.io import atomic_write, exclusive
from alkd.metrics import factored_label_ranks, metrics_from_ranks
from alkd.models import SessionRecommender, build_model

log = logging.getLogger(__name__)

# torch's intra-op threads for every cell and cached model; see fixed_threads
CELL_THREADS = 1


@contextmanager
def fixed_threads(n: int = CELL_THREADS) -> Iterator[None]:
    """Compute with ``n`` torch threads, then give back the caller's setting.

    How many threads split a float reduction decides its order of sums: ML
    FPMC (d = 100) trained for 100 steps with 1 and with 2 threads ended with
    weights 6e-8 apart, and an ML STAMP DE cell (itself on one thread) came
    out at ndcg@10 0.0016737 with a teacher trained on one thread and
    0.0016559 with the same teacher trained on two. Cached models feed later
    cells, so they count as much as the cells. A result must not depend on
    how its run was started (``--jobs``, OMP_NUM_THREADS, the machine's
    cores), so cells and cached models are computed with one fixed count.
    One thread is also the fastest here (an ML FTD cell took 67 s with one
    thread, 253 s with two on the busy 2 cores; processes scale instead:
    ``run_all.sh --jobs``); it costs a lone process on an idle many-core
    machine some speed, and does not touch a GPU's own arithmetic.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the paper's (METHOD.md section 3)."""

    lr: float = 1e-3
    batch_size: int = 1024
    max_iters: int = 10_000  # the authors' iteration budget
    eval_every: int = 20  # validation every 20 iterations, as the authors do
    patience: int = 25  # validations without improvement before stopping
    n_negatives: int = 1  # sampled negatives per instance for BPR
    # "uniform": negatives drawn uniformly from all items; "in-batch": the
    # other instances' labels in the batch (the authors' backbones do this)
    negatives: str = "uniform"
    select_metric: str = "recall@10"  # "early stopping on validation recall"
    weight_decay: float = 0.0
    seq_len: int = SEQ_LEN

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_iters", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1")
        if self.lr <= 0:
            raise ValueError("TrainConfig.lr must be positive")
        if self.n_negatives < 1:
            raise ValueError("TrainConfig.n_negatives must be >= 1")
        if self.negatives not in ("uniform", "in-batch"):
            raise ValueError(f"TrainConfig.negatives: unknown {self.negatives!r}")
        if self.select_metric not in ("recall@5", "recall@10", "ndcg@5", "ndcg@10"):
            raise ValueError(f"unknown select_metric {self.select_metric!r}")

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch and return the numpy generator the loop draws from."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(pos - neg); logsigmoid keeps large margins finite."""
    return -F.logsigmoid(pos - neg).mean()


def sample_negatives(
    rng: np.random.Generator, labels: np.ndarray, n_items: int, n: int
) -> np.ndarray:
    """Uniform item ids that differ from each row's label, (B, n)."""
    neg = rng.integers(0, n_items - 1, size=(len(labels), n))
    return neg + (neg >= labels[:, None])  # skip the label without a loop


def rows(batch: SessionBatch, index: np.ndarray | torch.Tensor) -> SessionBatch:
    """The sessions at ``index`` of a pre-built batch."""
    index = torch.as_tensor(index, dtype=torch.int64)
    return SessionBatch(batch.items[index], batch.lengths[index])


# An objective maps (model, instance indices, rng, iteration) to a scalar loss.
Objective = Callable[
    [SessionRecommender, np.ndarray, np.random.Generator, int], torch.Tensor
]


def bpr_objective(
    inputs: SessionBatch,
    labels: np.ndarray,
    n_items: int,
    n_negatives: int = 1,
    negatives: str = "uniform",
) -> Objective:
    """Next-item BPR over (session, label) instances with sampled negatives."""
    labels_t = torch.as_tensor(labels, dtype=torch.int64)

    def objective(model, index, rng, step):
        batch = rows(inputs, index).to(_device_of(model))
        pos_items = labels_t[index].to(batch.items.device)
        if negatives == "in-batch":
            return in_batch_bpr(model, batch, pos_items)
        neg = sample_negatives(rng, labels[index], n_items, n_negatives)
        neg_items = torch.as_tensor(neg, device=batch.items.device)
        both = torch.cat([pos_items[:, None], neg_items], 1)  # (B, 1 + n)
        s = model.score_items(batch, both)
        return bpr_loss(s[:, :1], s[:, 1:])

    return objective


def in_batch_bpr(
    model: SessionRecommender, batch: SessionBatch, pos_items: torch.Tensor
) -> torch.Tensor:
    """BPR against the batch's other labels (popularity-shaped negatives)."""
    u = model.encode(batch)  # (B, d)
    s = u @ model.item_embeddings()[pos_items].T  # (B, B): session x batch label
    pos = s.diagonal()[:, None]
    valid = pos_items[None, :] != pos_items[:, None]  # never the own label
    loss = -F.logsigmoid(pos - s)
    return (loss * valid).sum() / valid.sum().clamp_min(1)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(
    model: SessionRecommender,
    split: Split,
    *,
    batch_size: int = 1024,
    seq_len: int = SEQ_LEN,
    ks: tuple[int, ...] = (5, 10),
) -> dict[str, float]:
    """Full-ranking recall/ndcg of ``model`` on a split, session items excluded."""
    was_training = model.training
    model.eval()
    ranks = []
    device = _device_of(model)
    for start in range(0, len(split), batch_size):
        part = split.subset(np.arange(start, min(start + batch_size, len(split))))
        batch = make_batch(part.sessions, seq_len).to(device)
        # scores(batch) is encode(batch) @ item_embeddings().T for every
        # backbone; ranked block by block, without the (B, N) matrix
        ranks.append(
            factored_label_ranks(
                model.encode(batch),
                model.item_embeddings(),
                part.labels,
                session_item_sets(part.sessions),
            )
        )
    model.train(was_training)
    return metrics_from_ranks(torch.cat(ranks), ks)


@dataclass
class FitResult:
    """What a training run reports besides the trained weights."""

    best_iter: int
    iters: int
    seconds: float
    valid: dict[str, float]


def fit(
    model: SessionRecommender,
    objective: Objective,
    n_instances: int,
    valid: Split,
    config: TrainConfig,
    rng: np.random.Generator,
    *,
    progress: bool = True,
    desc: str = "train",
    keep_initial: bool = False,
) -> FitResult:
    """Minimise ``objective`` with Adam; keep the best model on validation.

    Instances are visited in shuffled epochs of ``config.batch_size``. The
    model ends holding the weights of its best validation point. With
    ``keep_initial`` the starting weights compete too (iteration 0), so a
    fine-tuning that never helps on validation returns the model unchanged.
    """
    opt = torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    best_score, best_iter, best_state, best_valid = -1.0, 0, None, {}
    if keep_initial:
        best_valid = evaluate(model, valid, seq_len=config.seq_len)
        best_score = best_valid[config.select_metric]
        best_state = copy.deepcopy(model.state_dict())
    stale, start, it = 0, time.perf_counter(), 0
    order, cursor = rng.permutation(n_instances), 0
    bar = tqdm(total=config.max_iters, desc=desc, disable=not progress, leave=False)

    for it in range(1, config.max_iters + 1):
        if cursor >= n_instances:
            order, cursor = rng.permutation(n_instances), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size

        model.train()
        loss = objective(model, index, rng, it)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)

        if it % config.eval_every == 0:
            scores = evaluate(model, valid, seq_len=config.seq_len)
            if scores[config.select_metric] > best_score:
                best_score, best_iter, best_valid = (
                    scores[config.select_metric],
                    it,
                    scores,
                )
                best_state, stale = copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
            bar.set_postfix(loss=f"{loss.item():.4f}", best=f"{best_score:.4f}")
            if stale >= config.patience:
                break

    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    seconds = time.perf_counter() - start
    log.info(
        "fit done desc=%s iters=%d best_iter=%d valid=%s",
        desc,
        it,
        best_iter,
        best_valid,
    )
    return FitResult(best_iter, it, seconds, best_valid)


def train_recommender(
    dataset: SessionDataset,
    backbone: str,
    dim: int,
    seed: int,
    config: TrainConfig | None = None,
    *,
    device: str = "auto",
    progress: bool = True,
) -> tuple[SessionRecommender, FitResult]:
    """Train a backbone of latent size ``dim`` on all training sessions (BPR)."""
    with fixed_threads():  # the same arithmetic however the run was started
        config = config or TrainConfig()
        rng = seed_everything(seed)
        model = build_model(backbone, dataset.n_items, dim).to(resolve_device(device))
        inputs = make_batch(dataset.train.sessions, config.seq_len)
        objective = bpr_objective(
            inputs,
            dataset.train.labels,
            dataset.n_items,
            config.n_negatives,
            config.negatives,
        )
        desc = f"{dataset.name}/{backbone}/d{dim}/s{seed}"
        result = fit(
            model,
            objective,
            len(dataset.train),
            dataset.valid,
            config,
            rng,
            progress=progress,
            desc=desc,
        )
        return model, result


def checkpoint_path(
    work_dir: str | Path,
    dataset: str,
    backbone: str,
    dim: int,
    seed: int,
    config: TrainConfig,
) -> Path:
    """Where a trained recommender lives; the config digest keys its settings."""
    name = f"{backbone}-d{dim}-seed{seed}-{config.digest()}.pt"
    return Path(work_dir) / "models" / dataset / name


def save_checkpoint(path: Path, model: SessionRecommender, result: FitResult) -> None:
    """Write weights and the fit record atomically."""
    payload = {
        "state_dict": model.state_dict(),
        "fit": asdict(result),
        "backbone": model.name,
        "dim": model.dim,
        "n_items": model.n_items,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: Path, device: str = "auto"
) -> tuple[SessionRecommender, FitResult]:
    payload = torch.load(path, map_location=resolve_device(device), weights_only=True)
    model = build_model(payload["backbone"], payload["n_items"], payload["dim"])
    model.load_state_dict(payload["state_dict"])
    return model.to(resolve_device(device)).eval(), FitResult(**payload["fit"])


def train_or_load(
    dataset: SessionDataset,
    backbone: str,
    dim: int,
    seed: int,
    work_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    device: str = "auto",
    progress: bool = True,
) -> tuple[SessionRecommender, FitResult]:
    """Reuse a finished checkpoint with the same settings, else train and save."""
    config = config or TrainConfig()
    path = checkpoint_path(work_dir, dataset.name, backbone, dim, seed, config)
    if path.is_file():
        log.info("reusing checkpoint path=%s", path)
        return load_checkpoint(path, device)

    # two parallel cells may need the same recommender: one trains it while
    # the other waits, then loads it
    with exclusive(path.parent / ".locks" / f"{path.name}.lock"):
        if path.is_file():
            log.info("checkpoint trained meanwhile path=%s", path)
            return load_checkpoint(path, device)
        model, result = train_recommender(
            dataset, backbone, dim, seed, config, device=device, progress=progress
        )
        save_checkpoint(path, model, result)
    return model.eval(), result

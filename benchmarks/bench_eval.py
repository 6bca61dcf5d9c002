"""Time full-ranking evaluation of all Games test sessions (METHOD.md section 2).

A randomly initialised backbone (no training needed: the cost does not
depend on the weights) is evaluated through ``alkd.train.evaluate`` on the
4,019 Games test sessions against all 26,138 items at d = 100. The floor it
is compared with is a bare ``scores = U @ E.T; torch.topk(scores, 10)`` of
the same shape, measured in the same run. The reference it replaced is also
timed: the whole (B, N) score matrix of each batch, then one comparison pass
over it (``--dim 10`` is the students' size). Each timing is the median of
``--repeats`` runs after one warm-up; the two paths' metrics must be equal.

Usage: ``python benchmarks/bench_eval.py [--backbone stamp] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from alkd.data import load_dataset, make_batch, session_item_sets
from alkd.metrics import label_ranks, metrics_from_ranks, ranks_by_block
from alkd.models import build_model
from alkd.train import evaluate, resolve_device


def median_seconds(
    fn: Callable[[], object], repeats: int, device: torch.device
) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def stage_seconds(model, split, batch_size: int, device: torch.device) -> dict:
    """One evaluation pass with a timer per stage (batching, encode, score, rank)."""
    totals = dict.fromkeys(("batch", "encode", "score", "rank"), 0.0)
    items = model.item_embeddings()  # (N, d)
    for start in range(0, len(split), batch_size):
        part = split.subset(np.arange(start, min(start + batch_size, len(split))))
        marks = [time.perf_counter()]
        batch = make_batch(part.sessions).to(device)
        marks.append(time.perf_counter())
        u = model.encode(batch)  # (B, d)
        _sync(device)
        marks.append(time.perf_counter())
        scores = u @ items.T  # (B, N)
        _sync(device)
        marks.append(time.perf_counter())
        label_ranks(scores, part.labels, session_item_sets(part.sessions))
        _sync(device)
        marks.append(time.perf_counter())
        for name, a, b in zip(totals, marks, marks[1:], strict=False):
            totals[name] += b - a
    return totals


@torch.no_grad()
def one_matrix_metrics(model, split, batch_size: int, device: torch.device) -> dict:
    """The earlier evaluation: each batch's whole score matrix, one pass."""
    ranks = []
    for start in range(0, len(split), batch_size):
        part = split.subset(np.arange(start, min(start + batch_size, len(split))))
        scores = model.scores(make_batch(part.sessions).to(device))  # (B, N)
        b, n = scores.shape
        ranks.append(
            ranks_by_block(
                lambda rows, s=scores: s[rows],
                b,
                n,
                part.labels,
                session_item_sets(part.sessions),
                block=b,
            )
        )
    return metrics_from_ranks(torch.cat(ranks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbone", default="stamp", choices=["fpmc", "stamp", "attmix"]
    )
    parser.add_argument("--data", default=None, help="data root (default $ALKD_DATA)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    ds = load_dataset("Games", args.data)
    split = ds.test
    torch.manual_seed(0)
    model = build_model(args.backbone, ds.n_items, args.dim).to(device).eval()

    def full_eval():
        return evaluate(model, split, batch_size=args.batch_size)

    u = torch.randn(len(split), args.dim, device=device)
    e = torch.randn(ds.n_items, args.dim, device=device)

    def bare():
        return torch.topk(u @ e.T, 10)

    def one_matrix():
        return one_matrix_metrics(model, split, args.batch_size, device)

    if full_eval() != one_matrix():
        raise SystemExit("evaluate and the one-matrix reference disagree")
    t_eval = median_seconds(full_eval, args.repeats, device)
    t_one = median_seconds(one_matrix, args.repeats, device)
    t_bare = median_seconds(bare, args.repeats, device)
    stages = stage_seconds(model, split, args.batch_size, device)

    figures = {
        "backbone": args.backbone,
        "dim": args.dim,
        "sessions": len(split),
        "items": ds.n_items,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "evaluate_s": t_eval,
        "sessions_per_s": len(split) / t_eval,
        "one_matrix_s": t_one,
        "speedup_over_one_matrix": t_one / t_eval,
        "bare_matmul_topk_s": t_bare,
        "ratio_to_bare": t_eval / t_bare,
        "stages_s": stages,
    }
    print(
        f"backbone={args.backbone} d={args.dim} device={device} "
        f"threads={torch.get_num_threads()} sessions={len(split)} items={ds.n_items}"
    )
    print(
        f"evaluate: {t_eval:.3f} s median of {args.repeats} "
        f"-> {len(split) / t_eval:,.0f} sessions/s"
    )
    print(
        f"one-matrix reference: {t_one:.3f} s -> evaluate is {t_one / t_eval:.2f}x "
        "faster, same metrics"
    )
    print(f"bare U @ E.T + topk(10): {t_bare:.3f} s -> ratio {t_eval / t_bare:.2f}x")
    total = sum(stages.values())
    print(
        "one pass by stage: "
        + ", ".join(
            f"{k} {v:.3f} s ({100 * v / total:.0f} %)" for k, v in stages.items()
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()

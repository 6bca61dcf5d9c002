"""Time the FTD and HTD topology losses against their dense definitions.

A Games batch of B = 1,024 instances holds about 3,000 entities (sessions
plus the batch's targets and KD negatives). The dense forms build the
(n, n) cosine matrices of the whole batch, as the definitions read; the
library computes FTD through d x d Gram matrices and HTD's entity term
one group block at a time. Each timing (forward plus backward) is the
median of ``--repeats`` runs after one warm-up, measured in the same run,
on random vectors (the cost does not depend on the values).

Usage: ``python benchmarks/bench_topology.py [--entities 3000] [--groups 60]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from alkd.baselines.topology import (
    cosine_matrix,
    entity_topology_loss,
    full_topology_loss,
)


def dense_ftd(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (cosine_matrix(t).detach() - cosine_matrix(s)).pow(2).sum()


def dense_entity(s: torch.Tensor, t: torch.Tensor, groups: torch.Tensor):
    c_t = cosine_matrix(t).detach()
    keep = (c_t * (groups[:, None] == groups[None, :])) > 0
    return ((cosine_matrix(s) - c_t).pow(2) * keep).sum()


def median_seconds(loss: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median of forward + backward wall times, after one warm-up."""
    loss().backward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=3000)
    parser.add_argument("--groups", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    s = torch.randn(args.entities, 10, requires_grad=True)
    t = torch.randn(args.entities, 100)
    groups = torch.randint(0, args.groups, (args.entities,))

    rows = {}
    pairs = {
        "ftd": (lambda: dense_ftd(s, t), lambda: full_topology_loss(s, t)),
        "htd_entity": (
            lambda: dense_entity(s, t, groups),
            lambda: entity_topology_loss(s, t, groups),
        ),
    }
    for name, (dense, fast) in pairs.items():
        t_dense = median_seconds(dense, args.repeats)
        t_fast = median_seconds(fast, args.repeats)
        with torch.no_grad():
            gap = float(abs(fast() - dense()) / dense().abs())
        rows[name] = {
            "dense_s": round(t_dense, 4),
            "library_s": round(t_fast, 4),
            "speedup": round(t_dense / t_fast, 1),
            "value_rel_diff": gap,
        }
    config = {"entities": args.entities, "groups": args.groups}
    config["threads"] = torch.get_num_threads()
    print(json.dumps({"config": config, "results": rows}, indent=1))


if __name__ == "__main__":
    main()

"""What a profile costs from scratch, estimated from its stored cells' seconds.

Every cell records the seconds it took (``seconds``). This sums them over
the cells a profile reads, table by table, and estimates the wall time of
the cell phases of ``bash run_all.sh --jobs N``: the cells are computed in
the same three phases as there, by N processes sharing one queue (a free
process takes the next cell, ``alkd cells --claims``), and a cell an
earlier phase stored is not computed again. The notebooks' own
time (about a minute with every cell stored) and the ``--local-teacher``
phases are not included. It is a rough figure: each cell's seconds are
those of the run that made it, with whatever else shared the machine then,
the code of that time, and the caches it found (trained models, answers,
title vectors). Cells not stored, or stored without seconds, are counted
and not priced.

    python tools/profile_cost.py --profile quick --jobs 2
    python tools/profile_cost.py --profile seeds3 --jobs 1 2 4
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
from pathlib import Path

from alkd.cli import cell_listings
from alkd.experiments import PROFILES, Context, get_profile

log = logging.getLogger("profile_cost")

# run_all.sh's phases when it shards (without --local-teacher)
PHASES = (("backbones",), ("tuning", "table2", "quality"), ("table1", "figures"))


def stored_seconds(ctx: Context, cell) -> float | None:
    """The seconds a stored cell took; None when it is not stored or unpriced."""
    path = ctx.cell_path(cell)
    if not path.is_file():
        return None
    try:
        seconds = json.loads(path.read_text()).get("seconds")
    except (json.JSONDecodeError, AttributeError):
        log.warning("unreadable cell %s: counted as not priced", path)
        return None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def table_costs(listing: dict, ctx: Context) -> dict[str, dict]:
    """Per table: cells, missing cells and stored core-hours (each key once)."""
    seen: set[str] = set()
    costs = {}
    for table in (t for phase in PHASES for t in phase):
        cells = [c for c in listing[table]() if c.key not in seen]
        seen.update(c.key for c in cells)
        seconds = [stored_seconds(ctx, c) for c in cells]
        costs[table] = {
            "cells": len(cells),
            "unpriced": sum(s is None for s in seconds),
            "hours": sum(s or 0.0 for s in seconds) / 3600,
        }
    return costs


def wall_hours(listing: dict, ctx: Context, jobs: int) -> float:
    """Estimated wall hours with ``jobs`` processes sharing one queue.

    As in ``alkd cells --claims``: whichever process is free first takes the
    next cell of the phase's listing (the ``jobs`` earliest finish times are
    kept in a heap), and a phase ends when its last cell does.
    """
    cells = {table: listing[table]() for phase in PHASES for table in phase}
    done: set[str] = set()
    total = 0.0
    for phase in PHASES:
        free_at = [0.0] * jobs
        for table in phase:
            for cell in cells[table]:
                if cell.key in done:
                    continue
                done.add(cell.key)
                seconds = stored_seconds(ctx, cell) or 0.0
                heapq.heapreplace(free_at, free_at[0] + seconds)
        total += max(free_at)
    return total / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=list(PROFILES))
    parser.add_argument("--results", default="results", help="the cell store")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if any(j < 1 for j in args.jobs):
        parser.error(f"--jobs wants positive numbers, got {args.jobs}")
    if not (Path(args.results) / "cells").is_dir():
        parser.error(f"--results {args.results}: no cells/ folder there")
    logging.basicConfig(level=logging.WARNING)

    profile = get_profile(args.profile)
    ctx = Context(results_dir=Path(args.results), progress=False)
    listing = cell_listings(profile, ctx)
    costs = table_costs(listing, ctx)
    print(f"profile {profile.name}: stored seconds of the cells it reads")
    for table, c in costs.items():
        print(
            f"  {table:9s} {c['cells']:4d} cells ({c['unpriced']} not priced) "
            f"{c['hours']:6.2f} core-hours"
        )
    print(f"  total     {sum(c['hours'] for c in costs.values()):6.2f} core-hours")
    unpriced = sum(c["unpriced"] for c in costs.values())
    note = f", {unpriced} cells not priced" if unpriced else ""
    for jobs in args.jobs:
        hours = wall_hours(listing, ctx, jobs)
        print(f"  --jobs {jobs}: about {hours:.2f} h of wall time for the cells{note}")


if __name__ == "__main__":
    main()

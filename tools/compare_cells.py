"""Do two cell stores agree? A rerun's cells against the committed ones.

A cell's key is a digest of its configuration, so a from-scratch run in a
fresh clone writes cells under the same names as the committed store. This
compares, for every cell of NEW that REFERENCE also holds, what the cell
measured (test and validation metrics, teacher-quality rows) and the
seconds it took, and prints, per kind of cell: how many agree to within
``--tol`` (relative), the largest difference, and the ratio of the summed
seconds (NEW over REFERENCE). Timings are left out of the comparison: they
are what differs between machines and runs.

    python tools/compare_cells.py /tmp/fresh/results results
    python tools/compare_cells.py NEW REF --tol 1e-6 --list

Exit status 1 when a shared cell differs beyond the tolerance, so the
script can guard a reproducibility check.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# what a cell measured; everything else is configuration, provenance or time
MEASURED = ("metrics", "valid", "rows", "label_in_candidates", "student_test")


@dataclass
class KindSummary:
    """One kind of cell (recommender, distill, ...): agreement and time."""

    shared: int = 0
    agree: int = 0
    only_new: int = 0
    max_rel_diff: float = 0.0
    new_seconds: float = 0.0
    ref_seconds: float = 0.0
    differing: list[str] = field(default_factory=list)


def numbers(value, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a measured value, by path; timings dropped."""
    if isinstance(value, bool):
        return {prefix: float(value)}
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    out: dict[str, float] = {}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return out
    for name, item in items:
        if "second" in str(name):
            continue  # a teacher-quality row's s/answer is a timing
        out.update(numbers(item, f"{prefix}/{name}"))
    return out


def measured(cell: dict) -> dict[str, float]:
    return {
        path: x
        for name in MEASURED
        if name in cell
        for path, x in numbers(cell[name], name).items()
    }


def relative_difference(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest relative difference over both cells' numbers; inf if unlike."""
    if a.keys() != b.keys():
        return math.inf
    worst = 0.0
    for path, x in a.items():
        y = b[path]
        if math.isnan(x) and math.isnan(y):
            continue
        scale = max(abs(x), abs(y), 1e-12)
        worst = max(worst, abs(x - y) / scale)
    return worst


def load_cell(path: Path) -> dict:
    try:
        cell = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"compare_cells: cannot read cell {path}: {err}") from err
    if not isinstance(cell, dict):
        raise SystemExit(f"compare_cells: {path} is not a cell (not a JSON object)")
    return cell


def compare(new: Path, ref: Path, tol: float) -> dict[str, KindSummary]:
    """Per kind of cell, how NEW's cells compare with REFERENCE's."""
    summaries: dict[str, KindSummary] = defaultdict(KindSummary)
    for path in sorted((new / "cells").glob("*.json")):
        cell = load_cell(path)
        summary = summaries[str(cell.get("kind", "unknown"))]
        twin = ref / "cells" / path.name
        if not twin.is_file():
            summary.only_new += 1
            continue

        other = load_cell(twin)
        summary.shared += 1
        diff = relative_difference(measured(cell), measured(other))
        summary.max_rel_diff = max(summary.max_rel_diff, diff)
        if diff <= tol:
            summary.agree += 1
        else:
            # the commit that made the reference cell: differences usually
            # trace back to code or settings of that time
            commit = str(other.get("provenance", {}).get("git_commit", "?"))[:7]
            summary.differing.append(
                f"{path.stem} (reference made at {commit}, "
                f"largest relative difference {diff:.3g})"
            )

        summary.new_seconds += float(cell.get("seconds") or 0.0)
        summary.ref_seconds += float(other.get("seconds") or 0.0)
    return dict(summaries)


def report(summaries: dict[str, KindSummary], show_list: bool) -> str:
    lines = [
        f"{'kind':16s} {'shared':>6s} {'agree':>6s} {'new only':>8s} "
        f"{'max rel diff':>12s} {'new s':>9s} {'ref s':>9s} {'new/ref':>7s}"
    ]
    for kind, s in sorted(summaries.items()):
        ratio = s.new_seconds / s.ref_seconds if s.ref_seconds else math.nan
        lines.append(
            f"{kind:16s} {s.shared:6d} {s.agree:6d} {s.only_new:8d} "
            f"{s.max_rel_diff:12.3g} {s.new_seconds:9.0f} {s.ref_seconds:9.0f} "
            f"{ratio:7.3f}"
        )
        if show_list:
            lines.extend(f"    differs: {key}" for key in s.differing)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", type=Path, help="results folder with cells/ (rerun)")
    parser.add_argument("ref", type=Path, help="results folder with cells/ (reference)")
    parser.add_argument("--tol", type=float, default=0.0, help="relative tolerance")
    parser.add_argument("--list", action="store_true", help="name differing cells")
    args = parser.parse_args(argv)
    for name in ("new", "ref"):
        if not (getattr(args, name) / "cells").is_dir():
            parser.error(f"{name} {getattr(args, name)}: no cells/ folder there")
    if not args.tol >= 0:
        parser.error(f"--tol wants a number >= 0, got {args.tol}")

    summaries = compare(args.new, args.ref, args.tol)
    print(report(summaries, args.list))  # the report is the command's output
    differing = sum(len(s.differing) for s in summaries.values())
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())

"""Is an executed notebook current? Used by ``run_all.sh`` to skip work.

An executed notebook is current when its stamp matches a digest of the
notebook source, the profile, the library's source code and the set of
stored cells. A rerun right after a complete run therefore executes
nothing, while any change to code, notebook or cells re-executes it.

Usage: ``python -m alkd.runstate current|mark OUT SRC PROFILE RESULTS``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from alkd.io import atomic_write_text


def digest(src: Path, profile: str, results: Path) -> str:
    h = hashlib.sha256()
    h.update(src.read_bytes())
    h.update(profile.encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    cells = sorted(p.name for p in (results / "cells").glob("*.json"))
    h.update("\n".join(cells).encode())
    return h.hexdigest()


def stamp_path(out: Path) -> Path:
    return out.with_name(f".{out.stem}.stamp")


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[0] not in ("current", "mark"):
        sys.stderr.write(__doc__)
        return 2
    action, out, src, profile, results = (
        argv[0],
        *map(Path, argv[1:3]),
        argv[3],
        Path(argv[4]),
    )
    want = digest(src, profile, results)
    if action == "mark":
        atomic_write_text(stamp_path(out), want + "\n")
        return 0
    stamp = stamp_path(out)
    current = out.is_file() and stamp.is_file() and stamp.read_text().strip() == want
    return 0 if current else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

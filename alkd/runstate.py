"""Is an executed notebook current? Used by ``run_all.sh`` to skip work.

An executed notebook is current when its stamp matches the notebook source,
the profile, the library's source code and the cells the notebook read.
``run_all.sh`` has the notebook list every cell it asks for, stored or not,
with a digest of the bytes it read, in a file (``$ALKD_CELLS_ASKED``, see
``alkd.experiments.note_asked``), and passes that file to ``mark``; the
stamp holds those digests, so the notebook goes stale when one of its cells
appears, changes or goes, even while it was running. Cells that another
profile adds leave it current, so computing paper cells does not
re-execute the quick notebooks.

A kernel that sees the variable starts the file when it imports
``alkd.experiments``, so a notebook that read no cell leaves a file with
no key and depends on code only. Without an asked file (none given, or the
kernel never saw the variable) the stamp covers the names of every stored
cell, so any new or removed cell makes the notebook stale: the safe default.

Usage: ``python -m alkd.runstate current|mark OUT SRC PROFILE RESULTS [ASKED]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from alkd.io import atomic_write_text


def base_digest(src: Path, profile: str) -> str:
    """The notebook source, the profile and the library's code."""
    h = hashlib.sha256()
    h.update(src.read_bytes())
    h.update(profile.encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def all_cells_digest(results: Path) -> str:
    """The names of every stored cell (when the asked cells are not known)."""
    cells = sorted(p.name for p in (results / "cells").glob("*.json"))
    return hashlib.sha256("\n".join(cells).encode()).hexdigest()


def cell_digests(results: Path, keys: list[str]) -> dict[str, str | None]:
    """Each asked cell's content digest, None where it is not stored."""
    out = {}
    for key in keys:
        path = results / "cells" / f"{key}.json"
        out[key] = (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        )
    return out


# a cell read twice with different contents while the notebook ran: the
# notebook may show either, so no stored content can make it current
CHANGED_WHILE_READ = "changed-while-read"


def read_asked(path: Path) -> dict[str, str | None]:
    """Each asked key with the digest read (None: not stored), in asked order."""
    asked: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, digest = line.split()
        digest = None if digest == "-" else digest
        if key in asked and asked[key] != digest:
            digest = CHANGED_WHILE_READ
        asked[key] = digest
    return asked


def stamp_path(out: Path) -> Path:
    return out.with_name(f".{out.stem}.stamp")


def make_stamp(src: Path, profile: str, results: Path, asked: Path | None) -> dict:
    stamp = {"base": base_digest(src, profile)}
    if asked is None or not asked.is_file():
        stamp["all_cells"] = all_cells_digest(results)
    else:
        stamp["cells"] = read_asked(asked)
    return stamp


def is_current(out: Path, src: Path, profile: str, results: Path) -> bool:
    """The executed notebook exists and nothing it depends on has changed."""
    stamp_file = stamp_path(out)
    if not (out.is_file() and stamp_file.is_file()):
        return False
    try:
        stamp = json.loads(stamp_file.read_text())
    except json.JSONDecodeError:  # a stamp of an older layout: execute again
        return False
    if not isinstance(stamp, dict) or stamp.get("base") != base_digest(src, profile):
        return False
    if "cells" in stamp:
        return stamp["cells"] == cell_digests(results, list(stamp["cells"]))
    return stamp.get("all_cells") == all_cells_digest(results)


def main(argv: list[str]) -> int:
    if len(argv) not in (5, 6) or argv[0] not in ("current", "mark"):
        sys.stderr.write(__doc__)
        return 2
    action, out, src, profile, results = (
        argv[0],
        Path(argv[1]),
        Path(argv[2]),
        argv[3],
        Path(argv[4]),
    )
    if action == "mark":
        asked = Path(argv[5]) if len(argv) == 6 else None
        stamp = make_stamp(src, profile, results, asked)
        atomic_write_text(stamp_path(out), json.dumps(stamp, indent=1) + "\n")
        return 0
    return 0 if is_current(out, src, profile, results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

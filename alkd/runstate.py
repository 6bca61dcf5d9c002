"""Is an executed notebook current? Used by ``run_all.sh`` to skip work.

An executed notebook is current when its stamp matches the notebook source,
the profile, the library's source code and the cells the notebook read.
``run_all.sh`` has the notebook list every cell it asks for (stored or
not) in a file (``$ALKD_CELLS_ASKED``, see ``alkd.experiments.note_asked``)
and passes that file to ``mark``; the stamp then holds a digest of each of
those cells, and the notebook goes stale only when one of them appears,
changes or goes. Cells that another profile adds leave it current, so
computing paper cells does not re-execute the quick notebooks.

Without an asked file the stamp covers the names of every stored cell: any
new or removed cell makes the notebook stale (the safe default).

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


def read_asked(path: Path) -> list[str]:
    """The distinct keys in an asked file, in first-asked order."""
    if not path.is_file():  # the notebook asked for no cell at all
        return []
    return list(dict.fromkeys(line for line in path.read_text().split() if line))


def stamp_path(out: Path) -> Path:
    return out.with_name(f".{out.stem}.stamp")


def make_stamp(src: Path, profile: str, results: Path, asked: Path | None) -> dict:
    stamp = {"base": base_digest(src, profile)}
    if asked is None:
        stamp["all_cells"] = all_cells_digest(results)
    else:
        stamp["cells"] = cell_digests(results, read_asked(asked))
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

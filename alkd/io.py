"""Atomic file writes, claims and locks shared by parallel processes.

A reader never sees a half-written file; of processes claiming one name
exactly one gets it; of processes about to build the same cached artefact
one builds it while the others wait, then read it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it.

    The rename is atomic on POSIX, so an interrupted run leaves either the
    old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays reach here from metric dictionaries
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def claim(folder: str | Path, name: str) -> bool:
    """Create ``folder/name`` if no one has; True when this call created it.

    ``O_CREAT | O_EXCL`` is atomic on a local POSIX file system, so of
    several processes claiming the same name exactly one gets True: a work
    queue shared through a folder, with no server and no lock to go stale.
    """
    try:
        fd = os.open(Path(folder) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    except FileNotFoundError as err:  # the open itself sees a missing folder
        raise FileNotFoundError(f"claims folder {folder} does not exist") from err
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True


@contextmanager
def exclusive(path: str | Path) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (created if missing).

    Yields whether the lock had to be waited for. The caller should look for
    the cached result again once it holds the lock: another process may have
    built it meanwhile. Used around caches that cost minutes (a
    trained recommender, an LLM's title vectors), which ``run_all.sh --jobs``
    processes would otherwise build twice at once. The lock is advisory
    (``flock``) and is released when the holder exits, even when killed, so
    a stale lock file blocks nobody. Without ``fcntl`` (Windows) it does not
    lock, and parallel processes may build the same cache twice.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        waited = False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            log.info("waiting for another process to finish lock=%s", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

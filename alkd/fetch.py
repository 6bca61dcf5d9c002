"""``alkd fetch-data``: download the authors' release files and verify them.

The files come from the authors' public repository (``kk97111/ALKDRec``,
folder ``datasets/``) and must match the SHA-256 values pinned in
``alkd/resources/SHA256SUMS``; a file that does not match is not kept.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from importlib import resources
from pathlib import Path

from alkd.io import atomic_write

log = logging.getLogger(__name__)

RELEASE_URL = "https://raw.githubusercontent.com/kk97111/ALKDRec/main/datasets"


class ChecksumError(ValueError):
    """A downloaded file does not match its pinned SHA-256."""


def pinned_checksums() -> dict[str, str]:
    """``{relative path: sha256}`` of every release file."""
    text = resources.files("alkd").joinpath("resources/SHA256SUMS").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_file(url: str, dest: Path, expected: str, timeout: float = 60.0) -> bool:
    """Download ``url`` to ``dest`` if missing or wrong; True if downloaded."""
    if dest.is_file() and sha256_file(dest) == expected:
        return False

    def write(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            tmp.write_bytes(response.read())
        got = sha256_file(tmp)
        if got != expected:
            raise ChecksumError(f"{url}: sha256 {got} does not match pinned {expected}")

    atomic_write(dest, write)
    return True


def fetch_data(
    root: str | Path,
    base_url: str = RELEASE_URL,
    datasets: tuple[str, ...] = ("ML", "Games"),
) -> list[Path]:
    """Fetch and verify every release file of ``datasets`` into ``root``."""
    root = Path(root)
    fetched = []
    for name, digest in pinned_checksums().items():
        if name.split("/")[0] not in datasets:
            continue
        dest = root / name
        if fetch_file(f"{base_url.rstrip('/')}/{name}", dest, digest):
            log.info("fetched file=%s", dest)
        fetched.append(dest)
    return fetched

"""Tests of alkd.fetch on a local ``file://`` mirror the tests lay out."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import alkd.fetch
from alkd.fetch import ChecksumError, fetch_data, fetch_file, pinned_checksums

# two small real release files (the pickles are megabytes)
SMALL = ("ML/ML_random.base", "ML/ML_title.csv")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror(tmp_path: Path, data_root: Path) -> Path:
    """A folder laid out like the repository's ``datasets/`` with two files."""
    site = tmp_path / "site" / "datasets"
    for name in SMALL:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / name, site / name)
    return site


@pytest.fixture
def pin_small(monkeypatch):
    """Restrict the pinned set to the two small files (real checksums)."""
    pins = {name: pinned_checksums()[name] for name in SMALL}
    monkeypatch.setattr(alkd.fetch, "pinned_checksums", lambda: dict(pins))
    return pins


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder``, hidden temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_pins_cover_every_release_file_and_match_the_shared_list(data_root):
    pins = pinned_checksums()
    assert len(pins) == 16
    assert {n.split("/")[0] for n in pins} == {"ML", "Games"}
    shared = (data_root / "SHA256SUMS").read_text().split()
    assert dict(zip(shared[1::2], shared[0::2], strict=True)) == pins


def test_fetch_verifies_and_writes(mirror, pin_small, tmp_path, data_root):
    dest = tmp_path / "data"
    paths = fetch_data(dest, mirror.as_uri(), datasets=("ML",))
    assert sorted(paths) == sorted(dest / n for n in SMALL)
    assert files_under(dest) == sorted(SMALL)
    for name in SMALL:
        assert (dest / name).read_bytes() == (data_root / name).read_bytes()
        assert sha256((dest / name).read_bytes()) == pin_small[name]


def test_second_fetch_downloads_nothing(mirror, pin_small, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    fetch_data(dest, mirror.as_uri(), datasets=("ML",))

    def offline(*args, **kwargs):
        raise AssertionError("a verified file was downloaded again")

    monkeypatch.setattr(alkd.fetch.urllib.request, "urlopen", offline)
    again = fetch_data(dest, mirror.as_uri(), datasets=("ML",))
    assert sorted(again) == sorted(dest / n for n in SMALL)


def test_datasets_filter_skips_other_datasets(mirror, pin_small, tmp_path):
    assert fetch_data(tmp_path / "data", mirror.as_uri(), datasets=("Games",)) == []


def test_wrong_content_raises_and_leaves_nothing(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "ML").mkdir(parents=True)
    (site / "ML" / "ML_random.base").write_bytes(b"not the release\n" * 1000)
    pins = {"ML/ML_random.base": sha256(b"the release\n")}
    monkeypatch.setattr(alkd.fetch, "pinned_checksums", lambda: pins)

    dest = tmp_path / "data"
    with pytest.raises(ChecksumError, match="does not match pinned") as err:
        fetch_data(dest, site.as_uri(), datasets=("ML",))
    assert "ML_random.base" in str(err.value)
    assert files_under(dest) == []  # no partial file, no temp file


def test_a_corrupt_local_copy_is_replaced(mirror, pin_small, tmp_path, data_root):
    dest = tmp_path / "data"
    (dest / "ML").mkdir(parents=True)
    (dest / "ML" / "ML_title.csv").write_text("itemID,title\n1,tampered\n")
    fetch_data(dest, mirror.as_uri(), datasets=("ML",))
    target = dest / "ML" / "ML_title.csv"
    assert target.read_bytes() == (data_root / "ML/ML_title.csv").read_bytes()


def test_fetch_file_reports_whether_it_downloaded(tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "out" / "x.bin"
    assert fetch_file(src.as_uri(), dest, sha256(b"payload")) is True
    assert fetch_file(src.as_uri(), dest, sha256(b"payload")) is False
    assert files_under(tmp_path / "out") == ["x.bin"]

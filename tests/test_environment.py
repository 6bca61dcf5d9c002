"""The pins live in requirements.txt; environment.yml must mirror them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.lower()] = version
    return out


def test_environment_files_mirror_requirements():
    want = pins((ROOT / "requirements.txt").read_text().splitlines())
    assert "torch" in want and want["torch"] == "2.13.0"
    for env in ("environment.yml", "binder/environment.yml"):
        got = pins((ROOT / env).read_text().splitlines())
        assert got == want, env

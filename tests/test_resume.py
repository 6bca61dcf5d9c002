"""A smoke run killed mid-way and restarted ends with the uninterrupted results.

CI runs ``run_all.sh --profile smoke --jobs 2`` (ALKD_SMOKE_RESULTS: cells
in two processes sharing a queue) and ``tools/kill_and_resume.sh``
(ALKD_RESUMED_RESULTS: one process, killed and restarted) in separate
folders; these tests compare what the two wrote, so they also check that
parallel processes change no number.
Timing columns are left out: they are measured, not computed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

SMOKE = os.environ.get("ALKD_SMOKE_RESULTS")
RESUMED = os.environ.get("ALKD_RESUMED_RESULTS")
pytestmark = pytest.mark.skipif(
    not (SMOKE and RESUMED),
    reason="needs ALKD_SMOKE_RESULTS and ALKD_RESUMED_RESULTS (see .ci/run)",
)
TIMING = re.compile(r"second|minute|ms_per|latency|_s$|time")


def _tables(root: str) -> dict[str, Path]:
    return {p.name: p for p in sorted(Path(root).glob("*.csv"))}


def test_the_first_attempt_was_killed_before_the_end():
    log = Path(RESUMED).parent / "first.log"
    assert log.is_file()
    assert "run_all: done" not in log.read_text()


def test_same_tables_with_the_same_numbers():
    smoke, resumed = _tables(SMOKE), _tables(RESUMED)
    assert smoke and set(smoke) == set(resumed)
    for name, path in smoke.items():
        a, b = pd.read_csv(path), pd.read_csv(resumed[name])
        keep = [c for c in a.columns if not TIMING.search(c)]
        assert list(a.columns) == list(b.columns), name
        pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=False, rtol=1e-9)


def test_same_cells_with_the_same_metrics():
    def cells(root):
        files = Path(root, "cells").glob("*.json")
        return {p.name: json.loads(p.read_text()) for p in files}

    smoke, resumed = cells(SMOKE), cells(RESUMED)
    assert set(smoke) == set(resumed)
    for key, record in smoke.items():
        for part in ("metrics", "rows"):  # rows: teacher-quality cells
            assert record.get(part) == resumed[key].get(part), key

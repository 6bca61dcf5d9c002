"""tools/compare_cells.py: a rerun's cells against a reference store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("compare_cells")


def write(results: Path, name: str, cell: dict) -> None:
    (results / "cells").mkdir(parents=True, exist_ok=True)
    (results / "cells" / f"{name}.json").write_text(json.dumps(cell))


def distill(ndcg: float, seconds: float) -> dict:
    return {
        "kind": "distill",
        "metrics": {"ndcg@10": ndcg, "recall@10": 0.02},
        "valid": {"ndcg@10": 0.01},
        "fit": {"seconds": seconds, "best_iter": 40},
        "seconds": seconds,
    }


def quality(hit: float, seconds_per_answer: float) -> dict:
    row = {"teacher": "smollm2", "hit@5": hit, "seconds_per_answer": seconds_per_answer}
    return {"kind": "teacher_quality", "rows": [row], "seconds": 10.0}


def test_same_measurements_agree_whatever_the_time(tool, tmp_path):
    new, ref = tmp_path / "new", tmp_path / "ref"
    write(new, "a", distill(0.01, seconds=5.0))
    write(ref, "a", distill(0.01, seconds=20.0))
    write(new, "q", quality(0.2, seconds_per_answer=1.0))
    write(ref, "q", quality(0.2, seconds_per_answer=9.0))
    write(new, "b", distill(0.03, seconds=1.0))  # not in the reference

    summaries = tool.compare(new, ref, tol=0.0)

    assert summaries["distill"].shared == 1 and summaries["distill"].agree == 1
    assert summaries["distill"].only_new == 1
    assert summaries["distill"].new_seconds == 5.0
    assert summaries["distill"].ref_seconds == 20.0
    assert summaries["teacher_quality"].agree == 1
    assert tool.main([str(new), str(ref)]) == 0


def test_a_changed_metric_fails_unless_within_tolerance(tool, tmp_path, capsys):
    new, ref = tmp_path / "new", tmp_path / "ref"
    write(new, "a", distill(0.0100, seconds=5.0))
    write(ref, "a", distill(0.0101, seconds=5.0))

    summaries = tool.compare(new, ref, tol=0.0)
    assert summaries["distill"].differing[0].startswith("a (reference made at ?")
    assert summaries["distill"].max_rel_diff == pytest.approx(0.0001 / 0.0101)

    assert tool.compare(new, ref, tol=0.02)["distill"].agree == 1
    assert tool.main([str(new), str(ref), "--list"]) == 1
    assert "differs: a" in capsys.readouterr().out


def test_unlike_cells_and_nan(tool):
    assert tool.relative_difference({"x": 1.0}, {"y": 1.0}) == math.inf
    nan = float("nan")
    assert tool.relative_difference({"x": nan}, {"x": nan}) == 0.0
    assert tool.relative_difference({"x": 0.0}, {"x": 0.0}) == 0.0


def test_bad_input_names_the_folder_or_file(tool, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "missing"), str(tmp_path)])
    assert "no cells/ folder" in capsys.readouterr().err

    new, ref = tmp_path / "new", tmp_path / "ref"
    write(ref, "a", distill(0.01, 1.0))
    (new / "cells").mkdir(parents=True)
    (new / "cells" / "a.json").write_text("{not json")
    with pytest.raises(SystemExit, match="a.json"):
        tool.compare(new, ref, tol=0.0)

"""tools/profile_cost.py: a profile's cost from its stored cells' seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import load_tool

from alkd.cli import cell_listings
from alkd.experiments import Context, get_profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def profile_cost():
    return load_tool("profile_cost")


def store(ctx: Context, cells, seconds) -> None:
    for cell in cells:
        path = ctx.cell_path(cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": cell.key, "seconds": seconds}))


def test_phase_one_priced_the_rest_counted(profile_cost, tmp_path):
    ctx = Context(results_dir=tmp_path, progress=False)
    listing = cell_listings(get_profile("smoke"), ctx)
    recommenders = listing["backbones"]()
    store(ctx, recommenders, 3600.0)  # one hour each

    costs = profile_cost.table_costs(listing, ctx)
    assert costs["backbones"] == {
        "cells": len(recommenders),
        "unpriced": 0,
        "hours": pytest.approx(len(recommenders)),
    }
    assert costs["table2"]["hours"] == 0 and costs["table2"]["unpriced"] > 0

    # equal cells shared by two processes: one of them computes the odd one
    assert profile_cost.wall_hours(listing, ctx, 1) == pytest.approx(len(recommenders))
    assert profile_cost.wall_hours(listing, ctx, 2) == pytest.approx(
        math.ceil(len(recommenders) / 2)
    )


def test_a_free_process_takes_the_next_cell(profile_cost, tmp_path):
    ctx = Context(results_dir=tmp_path, progress=False)
    listing = cell_listings(get_profile("smoke"), ctx)
    first, *rest = listing["backbones"]()
    store(ctx, [first], 3600.0 * len(rest))
    store(ctx, rest, 3600.0)
    # one process holds the long first cell while the other computes every
    # other one (fixed shards of every second cell would take longer)
    assert profile_cost.wall_hours(listing, ctx, 2) == pytest.approx(len(rest))
    assert profile_cost.wall_hours(listing, ctx, 3) == pytest.approx(len(rest))


def test_cells_without_seconds_or_unreadable_are_not_priced(profile_cost, tmp_path):
    ctx = Context(results_dir=tmp_path, progress=False)
    first, second, third = get_profile_cells(ctx)[:3]
    store(ctx, [first], None)
    ctx.cell_path(second).parent.mkdir(parents=True, exist_ok=True)
    ctx.cell_path(second).write_text("{not json")
    store(ctx, [third], 10.0)
    assert profile_cost.stored_seconds(ctx, first) is None
    assert profile_cost.stored_seconds(ctx, second) is None
    assert profile_cost.stored_seconds(ctx, third) == 10.0


def get_profile_cells(ctx):
    return cell_listings(get_profile("smoke"), ctx)["backbones"]()

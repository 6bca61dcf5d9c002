"""DLLM2Rec's two parts apart: RD + ED (Table 1's row), RD only, ED only.

On Games/FPMC the Table 1 row (RD + ED) scored far below the plain student;
this runs the same cell with each part removed, and with the title vectors
as the LLM gives them instead of standardised, as result cells beside the
others (computed once, then read), and prints the comparison:

    python tools/dllm2rec_parts.py --dataset Games --backbone fpmc --seed 0
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from alkd.experiments import Context, get_profile, recommender_cell, run_cells
from alkd.maintable import baseline_cell

log = logging.getLogger("dllm2rec_parts")


def part_cells(profile, dataset: str, backbone: str, seed: int) -> dict:
    """Label -> cell; 'ED only' sets lambda_RD = 0 and keeps the title vectors."""

    def cell(options, title_llm, scaling="standardise"):
        return baseline_cell(
            dataset,
            backbone,
            "dllm2rec",
            seed,
            rec_seed=profile.rec_seed,
            train=profile.train,
            options=options,
            title_llm=title_llm,
            title_scaling=scaling,
        )

    return {
        "RD + ED (Table 1)": cell({}, profile.title_llm),
        "RD only": cell({}, None),
        "ED only": cell({"kd_weight": 0.0}, profile.title_llm),
        "RD + ED, raw title vectors": cell({}, profile.title_llm, "raw"),
        "ED only, raw title vectors": cell(
            {"kd_weight": 0.0}, profile.title_llm, "raw"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Games")
    parser.add_argument("--backbone", default="fpmc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    profile = get_profile(args.profile)
    ctx = Context(results_dir=args.results, progress=False)
    cells = part_cells(profile, args.dataset, args.backbone, args.seed)
    student = recommender_cell(
        args.dataset,
        args.backbone,
        10,
        args.seed if profile.rec_seed is None else profile.rec_seed,
        profile.train,
    )
    records = dict(zip([*cells, "Student"], run_cells([*cells.values(), student], ctx)))

    rows = [
        {
            "variant": name,
            "best_iter": rec["fit"]["best_iter"],
            "valid_recall@10": rec["valid"]["recall@10"],
            **{f"test_{k}": v for k, v in rec["metrics"].items()},
            "key": rec["key"],
        }
        for name, rec in records.items()
    ]
    print(pd.DataFrame(rows).round(4).to_string(index=False))


if __name__ == "__main__":
    main()

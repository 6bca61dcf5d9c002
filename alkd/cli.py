"""The ``alkd`` command line (also ``python -m alkd``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from alkd.data import DATASETS, load_dataset, resolve_root

log = logging.getLogger("alkd")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", default=None, help="data root (default: $ALKD_DATA or ./data)"
    )
    p.add_argument("--work", default="runs", help="folder for checkpoints and caches")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:n]")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_fetch(args) -> int:
    from alkd.fetch import RELEASE_URL, fetch_data

    paths = fetch_data(resolve_root(args.data), args.url or RELEASE_URL)
    log.info(
        "release files ready count=%d root=%s", len(paths), resolve_root(args.data)
    )
    return 0


def cmd_stats(args) -> int:
    rows = []
    for name in args.datasets:
        ds = load_dataset(name, args.data)
        rows.append(
            (
                name,
                ds.n_sessions,
                ds.n_items,
                ds.n_interactions,
                len(ds.train),
                len(ds.valid),
                len(ds.test),
            )
        )
    header = ("dataset", "sessions", "items", "interactions", "train", "valid", "test")
    widths = [max(len(h), 9) for h in header]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        cells = [row[0]] + [f"{v:,}" for v in row[1:]]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return 0


def cmd_train(args) -> int:
    from alkd.train import TrainConfig, evaluate, train_or_load

    ds = load_dataset(args.dataset, args.data)
    config = TrainConfig(max_iters=args.max_iters, negatives=args.negatives)
    model, fit = train_or_load(
        ds,
        args.backbone,
        args.dim,
        args.seed,
        args.work,
        config,
        device=args.device,
        progress=not args.no_progress,
    )
    result = {
        "dataset": args.dataset,
        "backbone": args.backbone,
        "dim": args.dim,
        "seed": args.seed,
        "best_iter": fit.best_iter,
        "valid": fit.valid,
        "test": evaluate(model, ds.test),
    }
    print(json.dumps(result, indent=2))
    return 0


def context_from_args(args):
    """Where data, models and cells live, from the common options."""
    from alkd.experiments import Context

    return Context(
        data_root=args.data,
        results_dir=args.results,
        work_dir=args.work,
        device=args.device,
        progress=not args.no_progress,
    )


def cmd_distill(args) -> int:
    from alkd import ablation
    from alkd.experiments import run_cell

    ctx = context_from_args(args)
    cell = ablation.distill_cell(
        args.dataset,
        args.backbone,
        args.strategy,
        args.seed,
        teacher=args.teacher,
        budget=args.budget,
        drawing=args.drawing,
    )
    record = run_cell(cell, ctx)
    keep = ("metrics", "student_test", "diagnostics", "pool_size", "seconds")
    print(json.dumps({"cell": cell.key, **{k: record.get(k) for k in keep}}, indent=2))
    return 0


def cell_listings(profile, ctx) -> dict:
    """Each table's cells for ``alkd cells --tables``, as functions (lazy)."""
    from alkd import ablation, figures, maintable, tuning
    from alkd import teacher_quality as tq
    from alkd.experiments import backbone_cells

    def table1_cells():
        # the settings chosen so far; a method whose grid is incomplete
        # runs its defaults (run --tables tuning first to avoid that)
        tuned = tuning.chosen_options(profile, ctx, compute=False)
        return maintable.main_cells(profile, tuned=tuned)

    def recommender_cells():
        # every recommender the profile trains: Table 1's and Figure 2a's
        grid = figures.GRIDS[profile.name]
        cells = backbone_cells(profile) + figures.recommender_cells(profile, grid)
        return list({c.key: c for c in cells}.values())

    return {
        "backbones": recommender_cells,
        "table2": lambda: ablation.table2_cells(profile),
        "tuning": lambda: [cell for _, _, cell in tuning.tuning_cells(profile)],
        "table1": table1_cells,
        "quality": lambda: tq.quality_cells(profile),
        # issue 4's table: the offline LLM teacher on ML (run_all --local-teacher)
        "table2-local": lambda: ablation.table2_cells(
            profile, datasets=["ML"], teacher="local"
        ),
        "figures": lambda: figures.distill_cells(profile, figures.GRIDS[profile.name]),
        # Table 1 on ML with the local teacher: only DLLM2Rec's cells are new
        "table1-local": lambda: maintable.main_cells(
            profile,
            datasets=["ML"],
            teacher="local",
            tuned=tuning.chosen_options(profile, ctx, compute=False),
        ),
    }


def shard_cells(cells: list, shard: str) -> list:
    """The cells of shard ``i/n``: every n-th cell of the listing, from the i-th.

    Neighbours in a listing cost alike (one method's grid, one backbone's
    seeds), so dealing them out balances the shards better than a hash of
    the key did (5 of the 6 teacher-quality cells in one shard), and
    counting the stored cells too keeps the split the same in every shard.
    """
    index, count = (int(x) for x in shard.split("/"))
    if not 0 <= index < count:
        raise ValueError(f"--shard {shard}: want i/n with 0 <= i < n")
    return cells[index::count]


def cmd_cells(args) -> int:
    """Compute a profile's cells, optionally one shard of them (parallel runs)."""
    from alkd.experiments import get_profile, run_cell

    profile = get_profile(args.profile)
    shard_cells([], args.shard)  # a bad --shard fails before any work
    if args.claims and not Path(args.claims).is_dir():
        raise FileNotFoundError(f"--claims {args.claims}: no such folder")
    if args.claims and args.shard != "0/1":
        raise ValueError("--claims and --shard are two ways to split; give one")
    ctx = context_from_args(args)
    listing = cell_listings(profile, ctx)
    for table in args.tables:
        chosen = [
            c
            for c in listing[table]()
            if (not args.datasets or c.dataset in args.datasets)
            and (not args.backbones or c.config.get("backbone") in args.backbones)
            and (not args.methods or c.config.get("method") in args.methods)
        ]
        cells = shard_cells(chosen, args.shard)
        if args.reverse:  # meets a forward run in the middle instead of trailing it
            cells.reverse()
        if args.missing:
            print_missing(table, cells, ctx)
            continue
        log.info(
            "cells table=%s shard=%s claims=%s count=%d",
            table,
            args.shard,
            args.claims,
            len(cells),
        )
        if args.claims:
            cells = claimed_cells(cells, ctx, args.claims)
        for cell in cells:
            run_cell(cell, ctx)
    return 0


def claimed_cells(cells: list, ctx, claims: str):
    """The cells of ``cells`` this process claims in ``claims``, one at a time.

    Processes sharing a claims folder work as one queue: each takes the next
    missing cell no other has claimed when it is free. With fixed shards a
    phase lasted as long as its slowest shard, and cells differ a lot in
    cost (a run of the quick profile: 803 s vs 343 s of recommenders).
    Claiming only when the cell comes up, not all at the start, is what lets
    the faster process take more of them. Stored cells are read, unclaimed.
    """
    from alkd.io import claim

    for cell in cells:
        if ctx.cell_path(cell).is_file() or claim(claims, cell.key):
            yield cell


def print_missing(table: str, cells, ctx) -> None:
    """One line per (dataset, backbone, method or strategy) with cells to compute."""
    from collections import Counter

    missing = [c for c in cells if not ctx.cell_path(c).is_file()]
    print(f"{table}: {len(missing)} of {len(cells)} cells missing")
    groups = Counter(
        (
            c.dataset,
            c.config.get("backbone", "-"),
            c.config.get("method") or c.config.get("strategy") or f"d{c.config['dim']}",
        )
        for c in missing
    )
    for (dataset, backbone, what), n in sorted(groups.items()):
        print(f"  {dataset} {backbone} {what}: {n}")


def cmd_teach(args) -> int:
    """Fill the answer store with a teacher's answers for listed sessions."""
    from alkd.selection import read_base_file
    from alkd.train import TrainConfig, train_or_load

    ds = load_dataset(args.dataset, args.data)
    if args.teacher == "recorded":
        from alkd.store import AnswerStore, import_recorded

        with AnswerStore(Path(args.work) / "answers.sqlite") as store:
            n = import_recorded(store, ds.name, ds.file("_LLM_Database.data"))
        log.info("imported recorded answers new=%d", n)
        return 0
    from alkd.local_teacher import LocalTeacherConfig, build_local_teacher

    model = train_or_load(
        ds,
        args.backbone,
        100,
        args.seed,
        args.work,
        TrainConfig(),
        device=args.device,
        progress=not args.no_progress,
    )[0]
    config = LocalTeacherConfig(llm=args.llm, score=args.score)
    teacher, _ = build_local_teacher(
        ds,
        model,
        config,
        results_dir=Path(args.results),
        work_dir=Path(args.work),
        device=args.device,
        progress=not args.no_progress,
    )
    ids = read_base_file(args.sessions)
    answers = teacher.answer(ids)
    log.info("answers ready count=%d fingerprint=%s", len(answers), teacher.fingerprint)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alkd", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch-data", help="download and verify the release files")
    p.add_argument("--data", default=None, help="where to put them")
    p.add_argument("--url", default=None, help="base URL (default: authors' GitHub)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("stats", help="print dataset statistics")
    p.add_argument("--data", default=None)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("train", help="train one recommender and print test metrics")
    _common(p)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--backbone", required=True, choices=["fpmc", "stamp", "attmix"])
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iters", type=int, default=10_000)
    p.add_argument("--negatives", default="uniform", choices=["uniform", "in-batch"])
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="select, ask the teacher, distill (one cell)")
    _common(p)
    p.add_argument("--results", default="results", help="where the cell is stored")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--backbone", required=True, choices=["fpmc", "stamp", "attmix"])
    p.add_argument(
        "--strategy",
        default="alkdrec",
        help="tr, random, easiest, hardest, rad-bc, alkdrec, "
        "alkdrec-exact or authors:<strategy>",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=None,
        help="|B| (default: 500, 750 for FPMC on Games)",
    )
    p.add_argument(
        "--teacher", default="recorded", choices=["recorded", "local", "api"]
    )
    p.add_argument(
        "--drawing", default="algorithm1", choices=["algorithm1", "recompute"]
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("teach", help="fill the answer store (local LLM or recorded)")
    _common(p)
    p.add_argument("--results", default="results")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--teacher", default="local", choices=["local", "recorded"])
    p.add_argument("--sessions", help="file with one train session id a line")
    p.add_argument("--backbone", default="fpmc", help="T_rec that builds C_s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llm", default="smollm2-135m", help="or a local HF folder/.gguf")
    p.add_argument("--score", default="pmi", choices=["pmi", "mean_logprob"])
    p.set_defaults(func=cmd_teach)

    p = sub.add_parser("cells", help="compute a profile's cells (one shard of them)")
    _common(p)
    p.add_argument("--results", default="results")
    p.add_argument(
        "--profile", default="quick", choices=["smoke", "quick", "seeds3", "paper"]
    )
    p.add_argument(
        "--tables",
        nargs="+",
        default=["backbones", "table2", "tuning", "table1", "quality", "figures"],
        choices=[
            "backbones",
            "table2",
            "tuning",
            "table1",
            "quality",
            "figures",
            "table2-local",
            "table1-local",
        ],
        help="cell lists, computed in this order (backbones first: the others"
        " reuse the trained recommenders; tuning before table1, which runs the"
        " settings the grids chose)",
    )
    p.add_argument("--shard", default="0/1", help="i/n: the i-th of n shards")
    p.add_argument(
        "--claims",
        default=None,
        help="a folder shared by processes run at once: each computes the next"
        " missing cell none has claimed there (a work queue; run_all.sh --jobs)",
    )
    p.add_argument("--datasets", nargs="+", default=None, choices=DATASETS)
    p.add_argument("--reverse", action="store_true", help="last cell first")
    p.add_argument(
        "--backbones", nargs="+", choices=["fpmc", "stamp", "attmix"], default=None
    )
    p.add_argument("--methods", nargs="+", default=None, help="KD baselines only")
    p.add_argument(
        "--missing", action="store_true", help="list the cells left; compute none"
    )
    p.set_defaults(func=cmd_cells)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())

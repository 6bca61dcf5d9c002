"""Experiment cells: one configuration -> one metrics JSON, computed once.

Every number in ``results/`` comes from a cell stored as
``<results>/cells/<key>.json`` with its full configuration, metrics,
timings, package versions and the project's git commit. The key is a digest
of the configuration, so a killed run resumes by computing only the missing
cells, and profiles that share a configuration share its cells.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata, resources
from pathlib import Path

import pandas as pd
import torch

from alkd.data import SessionDataset, load_dataset
from alkd.heuristics import POP, SKNN, evaluate_scorer
from alkd.io import atomic_write_json
from alkd.train import TrainConfig, evaluate, fixed_threads, train_or_load

log = logging.getLogger(__name__)

PAPER_DATASET_NAMES = {"ML": "Hetrec2011-ML", "Games": "Amazon-Games"}
TEACHER_DIM, STUDENT_DIM = 100, 10  # METHOD.md section 3


@dataclass(frozen=True)
class Profile:
    """How much of the paper a run covers: seeds, datasets, training budget."""

    name: str
    seeds: tuple[int, ...]
    datasets: tuple[str, ...] = ("ML", "Games")
    backbones: tuple[str, ...] = ("fpmc", "stamp", "attmix")
    train: TrainConfig = field(default_factory=TrainConfig)
    # distillation (Tables 1-2): seeds and the Eq. 1 fine-tuning budget
    distill_seeds: tuple[int, ...] = (0, 1, 2)
    distill_train: TrainConfig = field(default_factory=lambda: TrainConfig(patience=10))
    # None: each distillation seed uses the teacher and student trained with
    # that seed; an int: every seed reuses the recommenders of that seed (the
    # variance then comes from selection and fine-tuning only; cheaper)
    rec_seed: int | None = None
    strategies: tuple[str, ...] = (
        "tr",
        "random",
        "easiest",
        "hardest",
        "rad-bc",
        "alkdrec",
        "alkdrec-exact",
        "authors:alkdrec",
    )
    # the LLM whose title vectors feed DLLM2Rec's embedding distillation;
    # None: DLLM2Rec distills rankings only (RD)
    title_llm: str | None = "smollm2-135m"
    # the local LLM teacher: sessions in the teacher-quality table, LoRA options
    quality_sessions: int = 300
    lora_options: dict = field(default_factory=dict)
    # KD baselines tuned on validation before Table 1 (alkd.tuning);
    # None: every method that has a grid
    tuning_methods: tuple[str, ...] | None = None
    # Figures 2-4: the distillation seeds each point is averaged over;
    # None: the first distillation seed only (the reduced profiles)
    figure_seeds: tuple[int, ...] | None = None

    @property
    def figure_distill_seeds(self) -> tuple[int, ...]:
        """The seeds every point of Figures 2-4 is computed with."""
        if self.figure_seeds is None:
            return self.distill_seeds[:1]
        return self.figure_seeds


_SMOKE_TRAIN = TrainConfig(max_iters=40, eval_every=20, patience=1)

PROFILES = {
    # minutes on 2 CPU cores: a tiny training budget, for CI
    "smoke": Profile(
        "smoke",
        seeds=(0,),
        train=_SMOKE_TRAIN,
        distill_seeds=(0,),
        distill_train=_SMOKE_TRAIN,
        rec_seed=0,
        strategies=("tr", "random", "alkdrec"),
        title_llm=None,  # embedding every title costs minutes; unit-tested instead
        quality_sessions=8,
        lora_options={"n_sessions": 16},
        tuning_methods=("ftd",),  # one grid exercises the path
    ),
    # the default run (issue 6: one seed, the reduced figure grids): the
    # paper's settings, seed 0 for the recommenders and the distillation
    "quick": Profile("quick", seeds=(0,), rec_seed=0, distill_seeds=(0,)),
    # quick with three distillation seeds over the seed-0 recommenders, so
    # the tables have a spread and a t-test; the committed headline tables
    "seeds3": Profile("seeds3", seeds=(0,), rec_seed=0),
    # the paper: five seeds everywhere
    "paper": Profile(
        "paper",
        seeds=(0, 1, 2, 3, 4),
        distill_seeds=(0, 1, 2, 3, 4),
        figure_seeds=(0, 1, 2, 3, 4),
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True)
class Cell:
    """One experiment configuration; ``kind`` names the function that runs it."""

    kind: str
    dataset: str
    config: dict

    def __post_init__(self) -> None:
        # the key hashes kind and dataset beside the config's own entries
        clash = {"kind", "dataset"} & set(self.config)
        if clash:
            raise ValueError(f"Cell config may not hold {sorted(clash)}")

    @property
    def key(self) -> str:
        text = json.dumps(
            {"kind": self.kind, "dataset": self.dataset, **self.config}, sort_keys=True
        )
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"{self.kind}-{self.dataset}-{digest}"


@dataclass
class Context:
    """Where data, trained models and cells live, and how to compute."""

    data_root: Path | None = None
    results_dir: Path = Path("results")
    work_dir: Path = Path("runs")
    device: str = "auto"
    progress: bool = True
    _datasets: dict = field(default_factory=dict)

    def dataset(self, name: str) -> SessionDataset:
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name, self.data_root)
        return self._datasets[name]

    def cell_path(self, cell: Cell) -> Path:
        return Path(self.results_dir) / "cells" / f"{cell.key}.json"


RUNNERS: dict[str, Callable[[Cell, Context], dict]] = {}


def runner(kind: str):
    """Register the function that computes cells of ``kind``."""

    def register(fn):
        RUNNERS[kind] = fn
        return fn

    return register


# While run_all.sh executes a notebook it names a file here; every cell the
# notebook asks for, stored or not, is appended to it with a digest of the
# bytes the notebook read, so that alkd.runstate can later tell whether any
# of those cells changed since. New cells of another profile then leave the
# notebook current.
ASKED_ENV = "ALKD_CELLS_ASKED"


def note_asked(key: str, data: bytes | None) -> None:
    """Append ``key`` and a digest of what was read (``-``: not stored)."""
    path = os.environ.get(ASKED_ENV)
    if path:
        digest = "-" if data is None else hashlib.sha256(data).hexdigest()
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{key} {digest}\n")


def _announce_listing() -> None:
    """Start the asked file as soon as a notebook's kernel imports this module.

    An asked file with this header and no key says the notebook read no
    cell; no file at all says the kernel never saw the variable, and
    alkd.runstate then falls back to every stored cell.
    """
    path = os.environ.get(ASKED_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write("# cells asked, with the digest read\n")


_announce_listing()


def _read_cell(cell: Cell, ctx: Context) -> dict | None:
    """The stored record of ``cell`` (None when missing), noted as asked."""
    path = ctx.cell_path(cell)
    data = path.read_bytes() if path.is_file() else None
    note_asked(cell.key, data)
    return None if data is None else json.loads(data)


def run_cell(cell: Cell, ctx: Context) -> dict:
    """The stored result of ``cell``, computing and storing it if missing."""
    path = ctx.cell_path(cell)
    if path.is_file():
        return _read_cell(cell, ctx)
    if cell.kind not in RUNNERS:
        raise ValueError(f"no runner for cell kind {cell.kind!r}")

    start = time.perf_counter()
    with fixed_threads():  # the same arithmetic however the run was started
        outcome = RUNNERS[cell.kind](cell, ctx)
        record = {
            "key": cell.key,
            "kind": cell.kind,
            "dataset": cell.dataset,
            "config": cell.config,
            **outcome,
            "seconds": time.perf_counter() - start,
            "provenance": provenance(),
        }
    atomic_write_json(path, record)
    log.info("cell done key=%s seconds=%.1f", cell.key, record["seconds"])
    # hand back what a resumed run would read (JSON sorts the keys), so that
    # tables come out in the same row order whether cells were computed or read
    return _read_cell(cell, ctx)


def run_cells(cells: Iterable[Cell], ctx: Context) -> list[dict]:
    cells = list(cells)
    todo = sum(not ctx.cell_path(c).is_file() for c in cells)
    log.info("cells total=%d missing=%d", len(cells), todo)
    return [run_cell(c, ctx) for c in cells]


def stored_cells(cells: Iterable[Cell], ctx: Context) -> list[dict]:
    """The records of the cells already stored, computing none.

    For reading a long profile while it is still being computed; the
    missing cells are logged, and tables built from this say how many
    seeds each value has (``n_seeds``).
    """
    cells = list(cells)
    records = [_read_cell(c, ctx) for c in cells]
    found = [r for r in records if r is not None]
    if len(found) < len(cells):
        log.warning(
            "cells stored=%d of %d; the rest are left out", len(found), len(cells)
        )
    return found


def provenance() -> dict:
    """Package versions, platform and git commit of the code that ran."""
    versions = {}
    for pkg in ("alkd", "torch", "numpy", "pandas", "scipy", "transformers", "peft"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": LOADED_CODE[0],
        "git_dirty": LOADED_CODE[1],
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from HEAD (None outside a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


# Read once, when the library is imported: a long run that outlives a commit
# must record the code it loaded, not the HEAD at the time a cell is written.
LOADED_CODE: tuple[str | None, bool | None] = (git_commit(), git_dirty())


# --- recommenders and sanity rows (Table 1's Student / Teacher / POP / SKNN) ---


def recommender_cell(
    dataset: str, backbone: str, dim: int, seed: int, train: TrainConfig
) -> Cell:
    config = {"backbone": backbone, "dim": dim, "seed": seed, "train": asdict(train)}
    return Cell("recommender", dataset, config)


@runner("recommender")
def _run_recommender(cell: Cell, ctx: Context) -> dict:
    ds = ctx.dataset(cell.dataset)
    cfg = cell.config
    model, fit = train_or_load(
        ds,
        cfg["backbone"],
        cfg["dim"],
        cfg["seed"],
        ctx.work_dir,
        TrainConfig(**cfg["train"]),
        device=ctx.device,
        progress=ctx.progress,
    )
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "metrics": evaluate(model, ds.test),
        "valid": fit.valid,
        "fit": asdict(fit),
        "n_parameters": n_params,
    }


def heuristic_cell(dataset: str, method: str) -> Cell:
    return Cell("heuristic", dataset, {"method": method})


@runner("heuristic")
def _run_heuristic(cell: Cell, ctx: Context) -> dict:
    ds = ctx.dataset(cell.dataset)
    scorers = {"POP": POP, "SKNN": SKNN}
    method = cell.config["method"]
    if method not in scorers:
        raise ValueError(f"unknown heuristic {method!r}; choose one of {list(scorers)}")
    scorer = scorers[method](ds.train, ds.n_items)
    return {
        "metrics": evaluate_scorer(scorer, ds.test),
        "valid": evaluate_scorer(scorer, ds.valid),
    }


def backbone_cells(profile: Profile, datasets=None, backbones=None, seeds=None):
    """The cells of the Student/Teacher rows and the two sanity rows."""
    cells = []
    for ds in datasets or profile.datasets:
        cells += [heuristic_cell(ds, m) for m in ("POP", "SKNN")]
        for bb in backbones or profile.backbones:
            for seed in seeds or profile.seeds:
                for dim in (TEACHER_DIM, STUDENT_DIM):
                    cells.append(recommender_cell(ds, bb, dim, seed, profile.train))
    return cells


def long_table(records: Iterable[dict], row: Callable[[dict], dict]) -> pd.DataFrame:
    """One row per (cell, metric): the labels ``row`` gives plus metric, value."""
    out = []
    for rec in records:
        labels = row(rec)
        out += [{**labels, "metric": m, "value": v} for m, v in rec["metrics"].items()]
    return pd.DataFrame(out)


def table1_backbones(profile: Profile, ctx: Context, **select) -> pd.DataFrame:
    """Student / Teacher / POP / SKNN test metrics, one row per seed and metric."""
    records = run_cells(backbone_cells(profile, **select), ctx)

    def labels(rec):
        cfg = rec["config"]
        if rec["kind"] == "heuristic":
            return {
                "dataset": rec["dataset"],
                "backbone": "-",
                "role": cfg["method"],
                "seed": 0,
            }
        role = "Teacher" if cfg["dim"] == TEACHER_DIM else "Student"
        if cfg["dim"] not in (TEACHER_DIM, STUDENT_DIM):
            role = f"d={cfg['dim']}"
        return {
            "dataset": rec["dataset"],
            "backbone": cfg["backbone"],
            "role": role,
            "seed": cfg["seed"],
        }

    return long_table(records, labels)


def paper_table(name: str) -> pd.DataFrame:
    """The paper's Table 1 or Table 2 values as shipped with the package.

    Datasets are renamed to this project's short names (ML, Games) and
    backbones to lower case, to join with our tables.
    """
    if name not in ("table1", "table2"):
        raise ValueError(f"unknown paper table {name!r}")
    text = resources.files("alkd").joinpath(f"resources/paper_{name}.csv").read_text()
    from io import StringIO

    frame = pd.read_csv(StringIO(text))
    short = {v: k for k, v in PAPER_DATASET_NAMES.items()}
    frame["dataset"] = frame["dataset"].map(short)
    frame["backbone"] = frame["backbone"].str.lower()
    return frame


def with_profile(profile: Profile, **changes) -> Profile:
    return replace(profile, **changes)

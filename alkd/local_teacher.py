"""Assemble the offline LLM teacher for a dataset (METHOD.md section 4).

The pieces live in ``alkd.llm`` and ``alkd.teachers``; this module wires
them to a dataset and a trained teacher recommender ``T_rec``:
- candidates ``C_s``: ``T_rec``'s top 50 for every train session (the true
  next item can be put in, as the authors' code does; off by default);
- hints: generated once per dataset from sampled train cases and saved
  under ``<results>/hints/<dataset>.txt`` (a user's file there is used as is);
- LoRA: tuned on train sessions and reused from ``<work>/adapters/``;
- answers: kept in the SQLite store ``<work>/answers.sqlite`` so a rerun
  asks only for the missing sessions.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alkd.data import SessionDataset
from alkd.models import SessionRecommender
from alkd.teachers.base import TeacherBase
from alkd.teachers.recommender import candidate_sets, top_items

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalTeacherConfig:
    """The local teacher's settings; defaults fit 2 CPU cores."""

    llm: str = "smollm2-135m"  # or a local HF folder / .gguf file
    score: str = "pmi"  # calibrated likelihood; "mean_logprob" for the raw one
    kappa: int = 50  # |C_s| (METHOD.md 4.3)
    include_label: bool = False  # put the true next item into C_s (train only)
    n_hint_cases: int = 3  # L cases; 8 made SmolLM2-135M loop (prompt_smr)
    lora: bool = True
    lora_options: dict = field(default_factory=dict)  # alkd.llm.lora.LoraTuning


class _Keyed(TeacherBase):
    """A teacher whose fingerprint also names its candidate source."""

    def __init__(self, inner, suffix: str) -> None:
        self.inner = inner
        self.fingerprint = f"{inner.fingerprint}|{suffix}"

    def answer(self, session_ids):
        return self.inner.answer(session_ids)


def train_candidates(
    model: SessionRecommender, ds: SessionDataset, kappa: int, include_label: bool
) -> dict[int, list[int]]:
    """``C_s`` for every train session, in ``T_rec``'s order."""
    return candidate_sets(
        model, ds, ds.train.session_ids, kappa=kappa, include_label=include_label
    )


def candidate_source(model: SessionRecommender, settings: str) -> str:
    """Short hash of what ``C_s`` depends on: ``T_rec``'s weights and settings.

    Teachers put it in their fingerprint, so answers to candidates from
    another recommender are never read back from the store.
    """
    source = hashlib.sha256(settings.encode())
    for p in model.state_dict().values():
        source.update(p.detach().cpu().numpy().tobytes())
    return source.hexdigest()[:12]


def dataset_hints(
    llm,
    ds: SessionDataset,
    model: SessionRecommender,
    results_dir: Path,
    n_cases: int,
    seed: int = 0,
) -> str:
    """The dataset's hint sentences, generated once and saved."""
    from alkd.llm.prompts import (
        DOMAINS,
        HintCase,
        generate_hints,
        load_hints,
        save_hints,
    )

    path = Path(results_dir) / "hints" / f"{ds.name}.txt"
    if path.is_file():
        return load_hints(path)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(ds.train), size=n_cases, replace=False)
    tops = top_items(model, [ds.train.sessions[i] for i in rows], 20)
    cases = [
        HintCase(
            [ds.titles[v] for v in ds.train.sessions[i][-10:]],
            [ds.titles[v] for v in top],
        )
        for i, top in zip(rows, tops)
    ]
    text = generate_hints(llm, cases, domain=DOMAINS[ds.name])
    save_hints(path, text, model_fingerprint=llm.fingerprint, n_cases=n_cases)
    log.info("hints written path=%s", path)
    return text


def prepare_llm(
    ds: SessionDataset,
    model: SessionRecommender,
    config: LocalTeacherConfig,
    *,
    results_dir: Path,
    work_dir: Path,
    device: str = "auto",
    progress: bool = True,
):
    """The teacher's LLM (LoRA-tuned if ``config.lora``) and its hints.

    LoRA tunes on a seeded subset of the train sessions
    (:func:`alkd.llm.lora.selected_rows` says which), prompt -> next title.
    """
    from alkd.llm.loading import load_llm
    from alkd.llm.lora import LoraTuning, build_examples, tune_or_load
    from alkd.llm.prompts import DOMAINS

    llm = load_llm(config.llm, device)
    hints = dataset_hints(llm, ds, model, results_dir, config.n_hint_cases)
    if not config.lora:
        return llm, hints
    examples = build_examples(
        ds.titles,
        ds.train.sessions,
        ds.train.labels,
        hints=hints,
        domain=DOMAINS[ds.name],
    )
    options = LoraTuning(**config.lora_options)
    # one folder per option set, so profiles do not retrain each other's adapter
    tag = hashlib.sha256(repr(options).encode()).hexdigest()[:8]
    tuned = tune_or_load(
        llm,
        examples,
        options,
        Path(work_dir) / "adapters" / f"{ds.name}-{tag}",
        progress=progress,
    )
    return tuned, hints


def build_local_teacher(
    ds: SessionDataset,
    model: SessionRecommender,
    config: LocalTeacherConfig,
    *,
    results_dir: Path,
    work_dir: Path,
    device: str = "auto",
    progress: bool = True,
):
    """The LoRA-tuned local LLM teacher behind the answer store.

    Returns ``(teacher, pool)``; the pool is every train session.
    """
    from alkd.llm.prompts import DOMAINS
    from alkd.store import AnswerStore, StoredTeacher
    from alkd.teachers.llm import LocalLLMTeacher

    llm, hints = prepare_llm(
        ds,
        model,
        config,
        results_dir=results_dir,
        work_dir=work_dir,
        device=device,
        progress=progress,
    )
    cands = train_candidates(model, ds, config.kappa, config.include_label)
    sessions = dict(zip(ds.train.session_ids.tolist(), ds.train.sessions))
    inner = LocalLLMTeacher(
        llm,
        ds.titles,
        sessions.__getitem__,
        cands.__getitem__,
        hints,
        score=config.score,
        progress=progress,
        domain=DOMAINS[ds.name],
    )
    source = candidate_source(model, repr(sorted(asdict(config).items())))
    teacher = _Keyed(inner, f"cands:{model.name}:{source}")
    store = AnswerStore(Path(work_dir) / "answers.sqlite")
    stored = StoredTeacher(store, ds.name, teacher, progress=progress)
    return stored, ds.train.session_ids.copy()

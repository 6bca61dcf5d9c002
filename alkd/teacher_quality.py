"""How well each teacher ranks the next item (issue 4, item 7).

On the same train sessions, every teacher returns 25 of the session's
candidates and we score the position of the true next item: hit@1/5/10/25
and ndcg@25 (one relevant item: 1 / log2(1 + rank)). The sessions are
those with a recorded GPT-4-turbo answer, drawn with a seed, minus the
sessions LoRA tunes on (the local teacher would otherwise be graded on
its own training examples).

Teachers: a random order of the candidates, the teacher recommender's
order, SmolLM2 zero-shot and LoRA-tuned (each with the raw mean
log-probability and the calibrated PMI score), and the recorded GPT-4
answers. Candidates ``C_s`` are ``T_rec``'s top 50, either as they are
("plain") or with the true item forced in ("forced", the authors'
setting). GPT-4 was asked once, on the authors' own forced candidate sets,
so its row is "forced" only.

Each (dataset, teacher family) is one cell, so a killed run resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from alkd.data import SessionDataset
from alkd.experiments import Cell, Context, Profile, run_cells, runner, stored_cells
from alkd.local_teacher import LocalTeacherConfig, prepare_llm
from alkd.teachers.recommender import candidate_sets
from alkd.train import TrainConfig, train_or_load

log = logging.getLogger(__name__)

HIT_KS = (1, 5, 10, 25)
LIST_LEN = 25
FAMILIES = ("reference", "zero-shot", "lora")
SCORES = ("mean_logprob", "pmi")
CANDIDATES = ("plain", "forced")


def ranking_quality(
    rankings: Sequence[Sequence[int]], labels: Sequence[int]
) -> dict[str, float]:
    """hit@k for ``HIT_KS`` and ndcg@25 of one label per ranking."""
    if len(rankings) != len(labels) or not len(labels):
        raise ValueError("rankings and labels: need equal, non-zero lengths")
    ranks = []
    for ranking, label in zip(rankings, labels, strict=True):
        ranking = list(ranking)[:LIST_LEN]
        ranks.append(ranking.index(label) + 1 if label in ranking else None)
    out = {
        f"hit@{k}": float(np.mean([r is not None and r <= k for r in ranks]))
        for k in HIT_KS
    }
    gains = [0.0 if r is None else 1.0 / np.log2(1 + r) for r in ranks]
    out[f"ndcg@{LIST_LEN}"] = float(np.mean(gains))
    return out


def quality_rows(
    ds: SessionDataset,
    recorded_ids: np.ndarray,
    held_out_rows: np.ndarray,
    n_sessions: int,
    seed: int,
) -> np.ndarray:
    """Train rows with a recorded answer, not tuned on, ``n_sessions`` drawn."""
    row_of = {int(s): i for i, s in enumerate(ds.train.session_ids)}
    held = set(int(r) for r in held_out_rows)
    rows = sorted(row_of[int(s)] for s in recorded_ids if row_of[int(s)] not in held)
    if len(rows) < n_sessions:
        raise ValueError(
            f"n_sessions={n_sessions}: only {len(rows)} eligible sessions in {ds.name}"
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, n_sessions, replace=False))


def quality_cell(
    dataset: str, family: str, profile: Profile, n_sessions: int, seed: int = 0
) -> Cell:
    if family not in FAMILIES:
        raise ValueError(f"family: must be one of {FAMILIES}, got {family!r}")
    config = {
        "family": family,
        "backbone": "fpmc",
        "rec_seed": profile.rec_seed or 0,
        "train": asdict(profile.train),
        "n_sessions": n_sessions,
        "seed": seed,
        "teacher": asdict(
            LocalTeacherConfig(lora=family == "lora", lora_options=profile.lora_options)
        ),
    }
    return Cell("teacher_quality", dataset, config)


@runner("teacher_quality")
def _run_quality(cell: Cell, ctx: Context) -> dict:
    from alkd.llm.lora import LoraTuning, selected_rows
    from alkd.teachers.recorded import RecordedTeacher

    ds, cfg = ctx.dataset(cell.dataset), cell.config
    t_rec = train_or_load(
        ds,
        cfg["backbone"],
        100,
        cfg["rec_seed"],
        ctx.work_dir,
        TrainConfig(**cfg["train"]),
        device=ctx.device,
        progress=ctx.progress,
    )[0]
    teacher_cfg = LocalTeacherConfig(**cfg["teacher"])
    tuned = selected_rows(len(ds.train), LoraTuning(**teacher_cfg.lora_options))
    recorded = RecordedTeacher(ds)
    rows = quality_rows(ds, recorded.pool(), tuned, cfg["n_sessions"], cfg["seed"])
    sids = ds.train.session_ids[rows]
    labels = ds.train.labels[rows].tolist()
    cands = {
        name: candidate_sets(
            t_rec, ds, sids, kappa=teacher_cfg.kappa, include_label=name == "forced"
        )
        for name in CANDIDATES
    }

    start = time.perf_counter()
    if cell.config["family"] == "reference":
        rankings = reference_rankings(cands, recorded.rank(sids), cfg["seed"])
        extra = {}
    else:
        llm, hints = prepare_llm(
            ds,
            t_rec,
            teacher_cfg,
            results_dir=ctx.results_dir,
            work_dir=ctx.work_dir,
            device=ctx.device,
            progress=ctx.progress,
        )
        rankings, extra = llm_rankings(llm, hints, ds, rows, cands, ctx.progress)
    seconds = time.perf_counter() - start

    table = []
    for (teacher, score, cand), ranked in rankings.items():
        quality = ranking_quality([ranked[int(s)] for s in sids], labels)
        table.append(
            {"teacher": teacher, "score": score, "candidates": cand, **quality}
        )
    coverage = {
        name: float(np.mean([lab in c[int(s)] for s, lab in zip(sids, labels)]))
        for name, c in cands.items()
    }
    return {
        "rows": table,
        "label_in_candidates": coverage,
        "n": len(rows),
        "seconds_per_session": seconds / len(rows),
        **extra,
    }


def reference_rankings(
    cands: Mapping[str, Mapping[int, list[int]]],
    recorded: Mapping[int, list[int]],
    seed: int,
) -> dict[tuple[str, str, str], dict[int, list[int]]]:
    """Random order, the recommender's order, and the recorded GPT-4 lists."""
    rng = np.random.default_rng(seed)
    out: dict[tuple[str, str, str], dict[int, list[int]]] = {}
    for name, sets in cands.items():
        out[("recommender", "-", name)] = {s: c[:LIST_LEN] for s, c in sets.items()}
        out[("random", "-", name)] = {
            s: [int(v) for v in rng.permutation(c)[:LIST_LEN]] for s, c in sets.items()
        }
    out[("gpt-4-turbo (recorded)", "-", "authors")] = {
        int(s): list(r) for s, r in recorded.items()
    }
    return out


def llm_rankings(llm, hints: str, ds: SessionDataset, rows, cands, progress: bool):
    """Both scores on both candidate sets from one pass per session.

    The union of the plain and forced sets (at most 51 titles) is scored
    once; each set's ranking is then read off the same numbers.
    """
    from alkd.llm.prompts import DOMAINS, next_title_messages
    from alkd.llm.scoring import TitleScorer, combine, top_k

    domain = DOMAINS[ds.name]
    scorer = TitleScorer(llm, ds.titles, domain=domain)
    family = "lora" if llm.adapter_fingerprint else "zero-shot"
    out = {(f"smollm2 {family}", sc, c): {} for sc in SCORES for c in CANDIDATES}
    tokens, start = 0, time.perf_counter()
    for row in tqdm(rows, desc=f"teacher quality {family}", disable=not progress):
        sid = int(ds.train.session_ids[row])
        union = sorted(set(cands["plain"][sid]) | set(cands["forced"][sid]))
        titles = [ds.titles[v] for v in ds.train.sessions[row]]
        messages = next_title_messages(hints, titles, domain)
        lps, used = scorer.session_logprobs(messages, union)
        neutral = scorer.neutral_logprob(union)
        tokens += used
        for sc in SCORES:
            score = {i: combine(lp, neutral[i], sc) for i, lp in zip(union, lps)}
            for c in CANDIDATES:
                ranked = top_k({i: score[i] for i in cands[c][sid]}, LIST_LEN)
                out[(f"smollm2 {family}", sc, c)][sid] = ranked
    # the per-answer cost the efficiency notebook scales up: ranking only,
    # without loading the model or tuning it
    answer_seconds = (time.perf_counter() - start) / len(rows)
    return out, {
        "tokens_per_session": tokens / len(rows),
        "answer_seconds_per_session": answer_seconds,
    }


def quality_cells(
    profile: Profile, datasets=None, n_sessions: int | None = None
) -> list[Cell]:
    n = n_sessions or profile.quality_sessions
    return [
        quality_cell(ds, family, profile, n)
        for ds in datasets or profile.datasets
        for family in FAMILIES
    ]


def teacher_quality(
    profile: Profile,
    ctx: Context,
    datasets=None,
    n_sessions: int | None = None,
    compute: bool = True,
) -> pd.DataFrame:
    """One row per (dataset, teacher, score, candidate set).

    ``answer_seconds_per_session`` is the LLM's ranking time alone (what an
    answer costs); ``cell_seconds_per_session`` also spreads loading, hints
    and LoRA tuning over the sessions. ``compute=False`` reads only the
    cells already stored.
    """
    fetch = run_cells if compute else stored_cells
    records = fetch(quality_cells(profile, datasets, n_sessions), ctx)
    frames = []
    for rec in records:
        frame = pd.DataFrame(rec["rows"])
        frame.insert(0, "dataset", rec["dataset"])
        frame["n_sessions"] = rec["n"]
        frame["label_in_candidates"] = frame["candidates"].map(
            rec["label_in_candidates"]
        )
        frame["cell_seconds_per_session"] = rec["seconds_per_session"]
        frame["answer_seconds_per_session"] = rec.get("answer_seconds_per_session")
        frame["tokens_per_session"] = rec.get("tokens_per_session")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def verdict(quality: pd.DataFrame, metric: str = "hit@5") -> str:
    """Plain statement: does the best local row reach GPT-4-turbo's ``metric``?

    GPT-4 answered on forced candidate sets, so the local teacher is
    compared on forced sets too.
    """
    lines = []
    for name, frame in quality.groupby("dataset", sort=False):
        gpt = frame[frame.teacher.str.startswith("gpt-4")][metric]
        local = frame[frame.teacher.str.startswith("smollm2")]
        local = local[local.candidates == "forced"]
        if gpt.empty or local.empty:
            continue
        best = local.loc[local[metric].idxmax()]
        ok = best[metric] >= gpt.iloc[0]
        lines.append(
            f"{name}: best local teacher {best.teacher} ({best.score}) {metric} "
            f"{best[metric]:.3f} vs GPT-4-turbo {gpt.iloc[0]:.3f}: "
            + ("at least as good" if ok else "worse")
        )
    return "\n".join(lines)

"""Speed (and optionally quality) of the local LLM teacher on ML train sessions.

For N train sessions with 50 candidates each (the true next item plus 49
random items, seeded; the pipeline uses the teacher recommender's top 50)
it times ranking with the cached prompt against scoring every candidate as
a full sequence, reports the largest score difference between the two, and
times a short LoRA run. ``--probe`` adds hit@5 of the true item for raw mean
log-probability, PMI, and PMI after LoRA tuning on other train sessions.

    python benchmarks/bench_llm_teacher.py --n-sessions 10 --threads 1
    python benchmarks/bench_llm_teacher.py --probe 100 --probe-lora 300
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from alkd.data import load_dataset
from alkd.llm import (
    LoraTuning,
    TitleScorer,
    build_examples,
    load_llm,
    scoring,
    tune_or_load,
)
from alkd.llm.loading import chat_prompt_ids
from alkd.llm.lora import train_adapter
from alkd.llm.prompts import neutral_messages, next_title_messages

log = logging.getLogger("bench_llm_teacher")

# the shared data folder beside the repository, as tests/conftest.py finds it
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alkdrec"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--root",
        default=os.environ.get("ALKD_DATA", str(SHARED_DATA)),
        help="data root holding ML/ ($ALKD_DATA, else ../shared/data/alkdrec)",
    )
    p.add_argument("--n-sessions", type=int, default=10, help="timed sessions")
    p.add_argument(
        "--full-sessions",
        type=int,
        default=0,
        help="of those, how many also as full sequences (0: all)",
    )
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--lora-examples", type=int, default=32)
    p.add_argument("--lora-steps", type=int, default=4)
    p.add_argument("--lora-batch", type=int, default=8)
    p.add_argument("--probe", type=int, default=0, help="sessions for hit@5 (0: skip)")
    p.add_argument(
        "--probe-lora", type=int, default=0, help="LoRA examples for the probe"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the summary JSON here")
    return p.parse_args()


def candidate_sets(ds, rows: np.ndarray, n: int, seed: int) -> list[list[int]]:
    """The true next item plus n-1 distinct random other items, per row."""
    rng = np.random.default_rng(seed)
    sets = []
    for row in rows:
        truth = int(ds.train.labels[row])
        others = rng.choice(ds.n_items - 1, n - 1, replace=False)
        others = others + (others >= truth)  # skip the true item
        sets.append([truth, *map(int, others)])
    return sets


def prompts_of(ds, rows: np.ndarray) -> list:
    return [
        next_title_messages(None, [ds.titles[i] for i in ds.train.sessions[r]])
        for r in rows
    ]


def time_cached(scorer: TitleScorer, prompts, cands) -> tuple[float, list[dict]]:
    scorer.neutral_logprob(sorted({i for c in cands for i in c}))  # memo, untimed
    started = time.perf_counter()
    scores = [scorer.rank(m, c, 25).scores for m, c in zip(prompts, cands, strict=True)]
    return time.perf_counter() - started, scores


def time_full(llm, scorer: TitleScorer, prompts, cands) -> tuple[float, list[dict]]:
    """Seconds for scoring every candidate as a full sequence, and its per-token
    log-probabilities ``{item: (session (T,), neutral (T,))}`` per session."""
    model, tok = llm.model, llm.tokenizer
    neutral_prompt = chat_prompt_ids(tok, neutral_messages())
    items = sorted({i for c in cands for i in c})
    conts = [scorer.answer_ids(i) for i in items]
    neutral_lps = scoring.full_logprobs(model, neutral_prompt, conts)
    neutral = dict(zip(items, neutral_lps, strict=True))

    started, result = time.perf_counter(), []
    for messages, cand in zip(prompts, cands, strict=True):
        conts = [scorer.answer_ids(i) for i in cand]
        lps = scoring.full_logprobs(model, chat_prompt_ids(tok, messages), conts)
        result.append({i: (lp, neutral[i]) for i, lp in zip(cand, lps, strict=True)})
    return time.perf_counter() - started, result


def differences(scorer: TitleScorer, prompts, cached: list[dict], full: list[dict]):
    """Largest |cached - full| over PMI scores and over the session term's
    per-token log-probabilities (the neutral term enters the scores only)."""
    score_diff = token_diff = 0.0
    for messages, scores, reference in zip(prompts, cached, full, strict=False):
        items = sorted(reference)
        lps, _ = scorer.session_logprobs(messages, items)
        for item, lp in zip(items, lps, strict=True):
            ref_lp, ref_neutral = reference[item]
            pmi = float(ref_lp.sum()) - float(ref_neutral.sum())
            score_diff = max(score_diff, abs(scores[item] - pmi))
            token_diff = max(token_diff, float((lp - ref_lp).abs().max()))
    return score_diff, token_diff


def time_lora(llm, ds, rows: np.ndarray, args) -> dict:
    sessions = [ds.train.sessions[r] for r in rows]
    examples = build_examples(ds.titles, sessions, ds.train.labels[rows])
    options = LoraTuning(
        max_steps=args.lora_steps, batch_size=args.lora_batch, seed=args.seed
    )
    _, stats = train_adapter(llm, examples, options, progress=False)
    return stats


def hit_at_5(scorer: TitleScorer, prompts, cands) -> dict[str, float]:
    """hit@5 of the true item (first in each candidate list) for both scores."""
    hits = {"mean_logprob": 0, "pmi": 0}
    pairs = list(zip(prompts, cands, strict=True))
    for messages, cand in tqdm(pairs, desc="probe", mininterval=30):
        items = sorted(set(cand))
        lps, _ = scorer.session_logprobs(messages, items)
        neutral = scorer.neutral_logprob(items)
        for name in hits:
            s = {
                i: scoring.combine(lp, neutral[i], name)
                for i, lp in zip(items, lps, strict=True)
            }
            hits[name] += cand[0] in scoring.top_k(s, 5)
    return {name: count / len(prompts) for name, count in hits.items()}


def run_probe(llm, ds, args, rng) -> dict:
    rows = rng.choice(len(ds.train), args.probe + args.probe_lora, replace=False)
    probe_rows, lora_rows = rows[: args.probe], rows[args.probe :]
    prompts = prompts_of(ds, probe_rows)
    cands = candidate_sets(ds, probe_rows, args.candidates, args.seed + 1)
    started = time.perf_counter()
    result = {
        "zero_shot": hit_at_5(
            TitleScorer(llm, ds.titles, batch_size=args.batch_size), prompts, cands
        )
    }
    result["zero_shot_seconds"] = time.perf_counter() - started
    result["random"] = 5 / args.candidates
    if args.probe_lora:
        sessions = [ds.train.sessions[r] for r in lora_rows]
        examples = build_examples(ds.titles, sessions, ds.train.labels[lora_rows])
        options = LoraTuning(n_sessions=len(examples), seed=args.seed)
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            tuned = tune_or_load(llm, examples, options, folder, progress=True)
            result["lora_seconds"] = time.perf_counter() - started
            result["lora_training"] = json.loads(
                (Path(folder) / "manifest.json").read_text()
            )["training"]
        scorer = TitleScorer(tuned, ds.titles, batch_size=args.batch_size)
        result["lora"] = hit_at_5(scorer, prompts, cands)
    return result


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    ds = load_dataset("ML", args.root)

    started = time.perf_counter()
    llm = load_llm()
    load_seconds = time.perf_counter() - started
    log.info("loaded seconds=%.1f threads=%d", load_seconds, torch.get_num_threads())

    summary = {"threads": torch.get_num_threads(), "load_seconds": load_seconds}
    summary |= measure_speed(llm, ds, args, rng)
    summary |= {"torch": torch.__version__, "machine": platform.machine()}
    if args.probe:
        summary["probe"] = run_probe(llm, ds, args, rng)
    print(json.dumps(summary, indent=2))
    print(
        f"cached: {summary['cached_sessions_per_second']:.3f} sessions/s, "
        f"full: {1 / summary['full_seconds_per_session']:.3f} sessions/s, "
        f"ratio {summary['speedup_cached_over_full']:.1f}x, max |score diff| "
        f"{summary['max_abs_score_difference']:.2e} (per token "
        f"{summary['max_abs_token_logprob_difference']:.2e}), "
        f"lora {summary['lora_examples_per_second']:.2f} examples/s"
    )
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


def measure_speed(llm, ds, args, rng) -> dict:
    """Cached vs full-sequence ranking, their differences, and LoRA speed."""
    rows = rng.choice(
        len(ds.train), args.n_sessions + args.lora_examples, replace=False
    )
    bench_rows, lora_rows = rows[: args.n_sessions], rows[args.n_sessions :]
    prompts = prompts_of(ds, bench_rows)
    cands = candidate_sets(ds, bench_rows, args.candidates, args.seed)
    n_full = min(args.full_sessions or args.n_sessions, args.n_sessions)

    scorer = TitleScorer(llm, ds.titles, batch_size=args.batch_size)
    cached_s, cached_scores = time_cached(scorer, prompts, cands)
    log.info("cached sessions=%d seconds=%.1f", len(prompts), cached_s)
    full_s, full_scores = time_full(llm, scorer, prompts[:n_full], cands[:n_full])
    log.info("full sessions=%d seconds=%.1f", n_full, full_s)
    diff, token_diff = differences(scorer, prompts, cached_scores, full_scores)
    lora_stats = time_lora(llm, ds, lora_rows, args)

    cached_per, full_per = cached_s / len(prompts), full_s / n_full
    return {
        "sessions": args.n_sessions,
        "candidates": args.candidates,
        "cached_seconds_per_session": cached_per,
        "cached_sessions_per_second": 1 / cached_per,
        "full_sessions": n_full,
        "full_seconds_per_session": full_per,
        "speedup_cached_over_full": full_per / cached_per,
        "max_abs_score_difference": diff,
        "max_abs_token_logprob_difference": token_diff,
        "lora_examples_per_second": lora_stats["examples_per_second"],
        "lora": lora_stats,
    }


if __name__ == "__main__":
    main()

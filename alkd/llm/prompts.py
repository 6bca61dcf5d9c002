"""Chat prompts for the LLM teacher, and the hints file.

Written after the paper's two prompts (appendix A): ``prompt_smr`` asks the
LLM to summarise, from L cases, how the teacher recommender relates a
session to its top-20 items (the *hints*); ``prompt_dst`` asks it to rank a
candidate set given the hints and the session. The local teacher scores
titles instead of parsing a ranking, so it uses the recommendation prompt
without candidates (:func:`next_title_messages`) and a neutral prompt
(:func:`neutral_messages`) for calibration; the API teacher uses the
paper's answer format, a list of 25 ids (:func:`id_list_messages`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alkd.io import atomic_write_text
from alkd.llm.loading import LoadedLLM, chat_prompt_ids, unreadable_reason

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]

HINTS_MAGIC = "# alkd hints v1"
MAX_SESSION_TITLES = 10  # the models' seq_len: prompts show the last 10 items


@dataclass(frozen=True)
class Domain:
    """The words a prompt uses for the items of a dataset."""

    noun: str  # singular, "movie"
    plural: str  # "movies"
    verb: str  # past tense of the interaction, "watched"


MOVIES = Domain("movie", "movies", "watched")
GAMES = Domain("game", "games", "played")
DOMAINS = {"ML": MOVIES, "Games": GAMES}


@dataclass(frozen=True)
class HintCase:
    """One case for the summary: a session and the recommender's top 20."""

    session_titles: Sequence[str]
    recommended_titles: Sequence[str]


def _title_list(titles: Sequence[str]) -> str:
    return "; ".join(t.strip() for t in titles)


def _hints_block(hints: str | None) -> str:
    if not hints or not hints.strip():
        return ""
    return f"Hints for the recommendation:\n{hints.strip()}\n\n"


def summary_messages(cases: Sequence[HintCase], domain: Domain = MOVIES) -> Messages:
    """The summarising prompt (after ``prompt_smr``): cases in, hints out."""
    if not cases:
        raise ValueError("cases: need at least one case to summarise")
    shown = []
    for number, case in enumerate(cases, start=1):
        shown.append(
            f"Case {number}\n"
            f"The user {domain.verb}: {_title_list(case.session_titles)}\n"
            f"The recommender suggested: {_title_list(case.recommended_titles)}"
        )
    task = (
        f"My recommender system suggests {domain.plural} to users from the "
        f"{domain.plural} they {domain.verb} before, listing the 20 suggestions "
        f"it is most confident about first. Here are {len(cases)} cases.\n\n"
        + "\n\n".join(shown)
        + "\n\nFrom these cases only, write 3 to 5 short numbered rules, one "
        "sentence each, that explain how the suggestions follow from what the "
        f"user {domain.verb}. State general patterns (series, genre, era, "
        "people involved) rather than discussing single titles. Suggesting "
        "something close to what the user already has (another edition or "
        "version) counts as a pattern too."
    )
    system = "You explain, briefly and in general terms, how a recommender behaves."
    return [{"role": "system", "content": system}, {"role": "user", "content": task}]


def recommendation_messages(
    hints: str | None,
    session_titles: Sequence[str],
    candidate_titles: Sequence[str],
    domain: Domain = MOVIES,
) -> Messages:
    """The recommendation prompt (after ``prompt_dst``) with candidate titles."""
    listed = "\n".join(f"- {t.strip()}" for t in candidate_titles)
    task = (
        _hints_block(hints)
        + _session_line(session_titles, domain)
        + f"\nCandidates:\n{listed}\n\nWhich candidate {domain.noun} will the "
        f"user {_present(domain)} next? Answer with its title only."
    )
    return [_system(domain), {"role": "user", "content": task}]


def next_title_messages(
    hints: str | None, session_titles: Sequence[str], domain: Domain = MOVIES
) -> Messages:
    """The recommendation prompt without candidates: the answer is one title.

    The local teacher scores each candidate title as the answer to this
    prompt, and LoRA tuning teaches the model to answer it with the true
    next item's title.
    """
    task = (
        _hints_block(hints)
        + _session_line(session_titles, domain)
        + f"\nWhich {domain.noun} will the user {_present(domain)} next? "
        "Answer with its title only."
    )
    return [_system(domain), {"role": "user", "content": task}]


def neutral_messages(domain: Domain = MOVIES) -> Messages:
    """The same question without any session: the title's prior for PMI."""
    task = f"Name a {domain.noun}. Answer with its title only."
    return [_system(domain), {"role": "user", "content": task}]


def id_list_messages(
    hints: str | None,
    session_titles: Sequence[str],
    candidates: Sequence[tuple[int, str]],
    k: int = 25,
    domain: Domain = MOVIES,
) -> Messages:
    """The paper's answer format: rank ``(id, title)`` candidates as ``[id, ...]``."""
    if k > len(candidates):
        raise ValueError(f"k: {k} exceeds the {len(candidates)} candidates")
    listed = "\n".join(f"{item_id}: {title.strip()}" for item_id, title in candidates)
    task = (
        _hints_block(hints)
        + _session_line(session_titles, domain)
        + f"\nCandidates (id: title):\n{listed}\n\nRank the candidates by how "
        f"likely the user is to {_present(domain)} each one next and give the "
        f"best {k}, most likely first. Reply with a Python list of exactly {k} "
        "integer ids from the candidates and nothing else, for example "
        "[5130, 6022, 7304]."
    )
    return [_system(domain), {"role": "user", "content": task}]


def _system(domain: Domain) -> dict[str, str]:
    content = f"You are a recommender system for {domain.plural}."
    return {"role": "system", "content": content}


def _present(domain: Domain) -> str:
    # "watched" -> "watch", "played" -> "play"; good enough for our two verbs
    return domain.verb[:-2] if domain.verb.endswith("ed") else domain.verb


def _session_line(session_titles: Sequence[str], domain: Domain) -> str:
    if not session_titles:
        raise ValueError("session_titles: a session needs at least one item")
    shown = list(session_titles)[-MAX_SESSION_TITLES:]
    return f"The user {domain.verb}, in this order: {_title_list(shown)}.\n"


def generate_hints(
    llm: LoadedLLM,
    cases: Sequence[HintCase],
    max_new_tokens: int = 160,
    domain: Domain = MOVIES,
) -> str:
    """Greedy summary of the cases into hint sentences (``prompt_smr``).

    Greedy decoding of a small model loops ("The user watched: ..." over
    and over, measured with SmolLM2-135M and 8 cases), so repeated
    4-grams are blocked and repeats penalised. Text that still looks like
    garbage is dropped (empty hints, logged): no hint beats a wrong one.
    """
    prompt = chat_prompt_ids(llm.tokenizer, summary_messages(cases, domain))
    input_ids = torch.tensor([prompt], device=llm.device)
    with torch.no_grad():
        out = llm.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            no_repeat_ngram_size=4,
            repetition_penalty=1.2,
            pad_token_id=llm.tokenizer.pad_token_id,
        )
    new_ids = out[0, len(prompt) :].tolist()
    text = llm.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    log.info("hints generated cases=%d prompt_tokens=%d", len(cases), len(prompt))
    reason = unreadable_reason(text, new_ids)
    if reason:
        log.warning("hints dropped, the summary looks broken: %s", reason)
        return ""
    return text


def hints_fingerprint(hints: str | None) -> str:
    """Short hash of the hint text (empty hints hash as the empty string)."""
    return hashlib.sha256((hints or "").strip().encode()).hexdigest()[:16]


def save_hints(
    path: str | Path, text: str, *, model_fingerprint: str, n_cases: int
) -> Path:
    """Write hints atomically behind a small ``#`` header."""
    header = [HINTS_MAGIC, f"# model: {model_fingerprint}", f"# cases: {n_cases}"]
    return atomic_write_text(path, "\n".join(header) + "\n\n" + text.strip() + "\n")


def load_hints(path: str | Path) -> str:
    """The hint text; a file without our header is taken whole (user's own)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hints file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].strip() == HINTS_MAGIC:
        while lines and lines[0].startswith("#"):
            lines.pop(0)
    text = "\n".join(lines).strip()
    if not text:
        log.warning("hints file is empty path=%s", path)
    return text


def hints_header(path: str | Path) -> dict[str, Any]:
    """The header fields (``model``, ``cases``) of a saved hints file, or ``{}``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != HINTS_MAGIC:
        return {}
    fields: dict[str, Any] = {}
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        fields[key.strip()] = value.strip()
    if "cases" in fields:
        fields["cases"] = int(fields["cases"])
    return fields

"""Assemble an API teacher for a dataset: any OpenAI-compatible chat model.

The client (retries, parsing, accounting) is :mod:`alkd.teachers.api`; this
module gives it the paper's list-of-ids prompt over ``T_rec``'s candidate
sets and puts it behind the answer store, like the local teacher
(:mod:`alkd.local_teacher`).
"""

from __future__ import annotations

from pathlib import Path

from alkd.data import SessionDataset
from alkd.local_teacher import candidate_source, train_candidates
from alkd.models import SessionRecommender

API_ENV = {
    "base_url": "ALKD_API_BASE",  # e.g. http://127.0.0.1:8000/v1 for vLLM
    "model": "ALKD_API_MODEL",
    "api_key_env": "ALKD_API_KEY_ENV",  # the *name* of the key's variable
}


def api_config_from_env(prompt_version: str):
    """An :class:`ApiConfig` from ``ALKD_API_*`` variables (defaults: OpenAI).

    ``ALKD_API_KEY_ENV`` names the variable that holds the key (default
    ``OPENAI_API_KEY``; the empty string sends none, for a local server);
    the key itself is read from there by the client and never stored.
    """
    import os

    from alkd.teachers.api import ApiConfig

    values: dict = {"prompt_version": prompt_version}
    for name, variable in API_ENV.items():
        if variable in os.environ:
            values[name] = os.environ[variable] or None
    return ApiConfig.from_dict(values)


def build_api_teacher(
    ds: SessionDataset,
    model: SessionRecommender,
    *,
    results_dir: Path,
    work_dir: Path,
    kappa: int = 50,
    include_label: bool = False,
    progress: bool = True,
):
    """An OpenAI-compatible chat model as the teacher, behind the answer store.

    The prompt is the paper's list-of-ids format (hints, the session's
    titles, ``C_s`` as ``id: title`` lines). Hints are the dataset's hints
    file, which must exist (the local teacher writes one; a user may write
    their own). Returns ``(teacher, pool)``; the pool is every train session.
    """
    from alkd.llm.prompts import (
        DOMAINS,
        hints_fingerprint,
        id_list_messages,
        load_hints,
    )
    from alkd.store import AnswerStore, StoredTeacher
    from alkd.teachers.api import ApiTeacher

    hints = load_hints(Path(results_dir) / "hints" / f"{ds.name}.txt")
    cands = train_candidates(model, ds, kappa, include_label)
    sessions = dict(zip(ds.train.session_ids.tolist(), ds.train.sessions))
    domain = DOMAINS[ds.name]

    def prompt(session_id: int):
        shown = [(i, ds.titles[i]) for i in cands[session_id]]
        titles = [ds.titles[i] for i in sessions[session_id]]
        return id_list_messages(hints, titles, shown, domain=domain), cands[session_id]

    source = candidate_source(model, f"{kappa}|{include_label}")
    version = f"id-list-v1|{hints_fingerprint(hints)}|{source}"
    teacher = ApiTeacher(api_config_from_env(version), prompt)
    store = AnswerStore(Path(work_dir) / "answers.sqlite")
    stored = StoredTeacher(store, ds.name, teacher, progress=progress)
    return stored, ds.train.session_ids.copy()

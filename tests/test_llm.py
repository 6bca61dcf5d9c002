"""The real SmolLM2-135M teacher: loading checks, scoring, hints, LoRA.

The model (packaged GGUF, ~100 MB) loads once per module, in seconds; the
tests use hand-written titles, not the datasets.
"""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import replace

import pytest
import torch
from conftest import call_at_once

from alkd.llm import (
    HintCase,
    LLMLoadError,
    LoraTuning,
    TitleScorer,
    build_examples,
    generate_hints,
    load_llm,
    loading,
    next_title_messages,
    scoring,
    tune_or_load,
)
from alkd.llm.loading import chat_prompt_ids
from alkd.teachers.llm import LocalLLMTeacher

TITLES = [
    "Toy Story",
    "Toy Story 2",
    "Alien",
    "Aliens",
    "The Godfather",
    "The Godfather: Part II",
    "Heat",
    "Casino Royale",
    "Batman Begins",
    "The Dark Knight",
    "Finding Nemo",
    "Jaws",
    "Up",
    "Brazil",
]
SESSION = [0, 10, 12]  # animated films


# one intra-op thread: on the shared 2-core machine two threads contending
# with other processes made these tests 10x slower (conftest explains)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def llm(torch_single_thread):
    return load_llm()


def test_default_model_loads_checked_on_cpu(llm):
    assert llm.device == torch.device("cpu") and llm.dtype == torch.float32
    assert next(llm.model.parameters()).dtype == torch.float32
    assert llm.tokenizer.chat_template and llm.tokenizer.pad_token_id is not None
    source = loading.resolve_spec("smollm2-135m")
    assert source.gguf_file.endswith(".gguf")
    digest = hashlib.sha256(source.path.read_bytes()).hexdigest()
    assert loading.file_hash(source.path) == digest
    assert llm.fingerprint == loading.source_fingerprint(source)


def test_probe_answer_is_the_known_fact(llm):
    assert "Paris" in loading.check_probe_answer(llm.model, llm.tokenizer, "m")


def test_untied_embeddings_are_rejected(llm):
    model = llm.model
    tied = model.lm_head.weight
    try:
        model.lm_head.weight = torch.nn.Parameter(tied.detach().clone())
        loading.check_tied_embeddings(model, "m")  # equal values still pass
        with torch.no_grad():
            model.lm_head.weight.mul_(1.01)
        with pytest.raises(LLMLoadError, match="/models/untied"):
            loading.check_llm(llm, "/models/untied")
    finally:
        model.lm_head.weight = tied
    assert (
        model.lm_head.weight.data_ptr()
        == model.get_input_embeddings().weight.data_ptr()
    )


def test_missing_chat_template_and_pad_token(llm):
    tokenizer = copy.deepcopy(llm.tokenizer)
    tokenizer.chat_template = None
    broken = replace(llm, tokenizer=tokenizer)
    with pytest.raises(LLMLoadError, match="/models/no-template.*chat template"):
        loading.check_llm(broken, "/models/no-template")

    tokenizer = copy.deepcopy(llm.tokenizer)
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    loading.ensure_pad_token(tokenizer, "m")
    assert tokenizer.pad_token_id == tokenizer.eos_token_id


def test_cached_scores_equal_full_sequences(llm):
    messages = next_title_messages("1. Sequels follow.", [TITLES[i] for i in SESSION])
    prompt = chat_prompt_ids(llm.tokenizer, messages)
    scorer = TitleScorer(llm, TITLES)
    conts = [scorer.answer_ids(i) for i in (1, 4, 5, 12)]
    state = scoring.encode_prompt(llm.model, prompt)
    cached = scoring.cached_logprobs(llm.model, state, conts, batch_size=3)
    full = scoring.full_logprobs(llm.model, prompt, conts)
    for a, b in zip(cached, full, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_ranking_ignores_candidate_order_and_batch_size(llm):
    messages = next_title_messages(None, [TITLES[i] for i in SESSION])
    candidates = [i for i in range(len(TITLES)) if i not in SESSION]
    first = TitleScorer(llm, TITLES, batch_size=25).rank(messages, candidates, 5)
    random.Random(0).shuffle(candidates)
    second = TitleScorer(llm, TITLES, batch_size=3).rank(messages, candidates, 5)
    assert second.ranking == first.ranking
    for item, value in first.scores.items():
        assert second.scores[item] == pytest.approx(value, abs=1e-4)
    assert first.ranking[0] == 1  # "Toy Story 2" after a session starting "Toy Story"


def test_hints_are_generated_as_text(llm):
    cases = [
        HintCase(["Alien", "Heat"], ["Aliens", "Ronin", "Predator"]),
        HintCase(["Toy Story"], ["Toy Story 2", "A Bug's Life"]),
    ]
    hints = generate_hints(llm, cases, max_new_tokens=24)
    assert loading.unreadable_reason(hints, list(range(24))) is None


def test_teacher_answers_top_k(llm):
    sessions = {7: SESSION}
    candidates = {7: [i for i in range(len(TITLES)) if i not in SESSION]}
    teacher = LocalLLMTeacher(
        llm, TITLES, sessions.get, candidates.get, None, k=5, progress=False
    )
    answer = teacher.answer([7])[7]
    assert len(answer.ranking) == len(set(answer.ranking)) == 5
    assert set(answer.ranking) <= set(candidates[7])
    assert answer.cost.prompt_tokens > 11 * 2 and answer.cost.calls == 1


def test_lora_on_the_real_model_reloads_identically(llm, tmp_path):
    sessions = [[0, 2], [4, 6], [8, 10], [11, 12], [1, 3], [5, 7]]
    examples = build_examples(TITLES, sessions, [1, 5, 9, 13, 0, 4])
    options = LoraTuning(max_steps=2, batch_size=3, lr=5e-3)
    tuned = tune_or_load(llm, examples, options, tmp_path, progress=False)
    reloaded = tune_or_load(llm, examples, options, tmp_path, progress=False)
    ids = torch.tensor([chat_prompt_ids(llm.tokenizer, examples[0].prompt)])
    with torch.no_grad():
        a, b, base = (m.model(input_ids=ids).logits for m in (tuned, reloaded, llm))
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, base, atol=1e-4)


@pytest.mark.slow
def test_teacher_on_real_ml_train_sessions(llm, ml):
    ds = ml
    sids = [int(s) for s in ds.train.session_ids[:3]]
    row = {int(s): r for r, s in enumerate(ds.train.session_ids)}
    truth = {s: int(ds.train.labels[row[s]]) for s in sids}
    candidates = {s: [truth[s], *range(s * 50, s * 50 + 49)] for s in sids}
    teacher = LocalLLMTeacher(
        llm,
        ds.titles,
        lambda s: ds.train.sessions[row[s]],
        candidates.__getitem__,
        None,
        progress=False,
    )
    answers = teacher.answer(sids)
    for sid in sids:
        ranking = answers[sid].ranking
        assert len(ranking) == len(set(ranking)) == 25
        assert set(ranking) <= set(candidates[sid])


def test_title_embeddings_ignore_batching_and_pad_empty_titles(llm):
    from alkd.llm.embeddings import title_embeddings

    titles = TITLES + [""]
    one = title_embeddings(llm, titles, batch_size=1, progress=False)
    many = title_embeddings(llm, titles, batch_size=5, progress=False)
    assert one.shape == (len(titles), llm.model.config.hidden_size)
    assert abs(one - many).max() < 1e-3  # padding changes nothing
    assert not one[-1].any() and (abs(one[:-1]).sum(1) > 0).all()
    # a sequel sits nearer its original than an unrelated film does
    unit = one[:-1] / ((one[:-1] ** 2).sum(1, keepdims=True) ** 0.5)
    sim = unit @ unit.T
    assert sim[0, 1] > sim[0, 11]


def test_parallel_callers_compute_title_embeddings_once(tmp_path, monkeypatch):
    # two run_all.sh --jobs processes reaching DLLM2Rec cells at once: one
    # computes the vectors, the other waits and reads its cache
    import time

    import numpy as np

    from alkd.llm import embeddings, loading

    computed = []

    def slow_vectors(model, titles, **kw):
        computed.append(len(titles))
        time.sleep(0.5)
        return np.arange(len(titles) * 3, dtype=np.float32).reshape(-1, 3)

    monkeypatch.setattr(embeddings, "title_embeddings", slow_vectors)
    monkeypatch.setattr(loading, "load_llm", lambda spec, device: None)
    monkeypatch.setattr(loading, "resolve_spec", lambda spec: spec)
    monkeypatch.setattr(loading, "source_fingerprint", lambda spec: "fp")
    got = call_at_once(
        lambda: embeddings.cached_title_embeddings(
            "some-llm", TITLES[:4], tmp_path, "toy", progress=False
        )
    )
    assert computed == [4]
    assert len(got) == 2 and (got[0] == got[1]).all()


def test_title_embedding_cache_is_keyed_by_titles(llm, tmp_path, monkeypatch):
    from alkd.llm import embeddings

    calls = []
    real = embeddings.title_embeddings

    def counted(model, titles, **kw):
        calls.append(len(titles))
        return real(model, titles, **kw)

    monkeypatch.setattr(embeddings, "title_embeddings", counted)
    monkeypatch.setattr("alkd.llm.loading.load_llm", lambda spec, device: llm)
    first = embeddings.cached_title_embeddings(
        "smollm2-135m", TITLES[:4], tmp_path, "toy", progress=False
    )
    again = embeddings.cached_title_embeddings(
        "smollm2-135m", TITLES[:4], tmp_path, "toy", progress=False
    )
    other = embeddings.cached_title_embeddings(
        "smollm2-135m", TITLES[:5], tmp_path, "toy", progress=False
    )
    assert calls == [4, 5]  # the second call read the cache
    assert (first == again).all() and other.shape[0] == 5

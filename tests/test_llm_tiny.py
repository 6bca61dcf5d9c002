"""Loading checks, scoring, LoRA and the teacher on a tiny random Llama.

A byte-level tokenizer and a 2-layer model with 32 hidden units make every
test here run in well under a second; the real 135M model is exercised in
``test_llm.py``.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alkd.llm import loading, lora, scoring
from alkd.llm.loading import LLMLoadError, LoadedLLM, chat_prompt_ids
from alkd.llm.prompts import neutral_messages, next_title_messages
from alkd.teachers.base import Answer, Teacher
from alkd.teachers.llm import LocalLLMTeacher

pytestmark = pytest.mark.usefixtures("torch_single_thread")

EOS = 256
TITLES = [
    "Alien",
    "Aliens",
    "Toy Story",
    "Heat",
    "Casino Royale",
    "Batman",
    "Up",
    "The Godfather",
    "Jaws",
    "Brazil",
    "Her",
    "Ran",
]


class ByteTokenizer:
    """Bytes are tokens 0-255; 256 is EOS and pad. Enough of the HF interface."""

    eos_token, eos_token_id = "<eos>", EOS

    def __init__(self) -> None:
        self.chat_template = "role-tags"
        self.pad_token: str | None = "<eos>"

    @property
    def pad_token_id(self) -> int | None:  # derived from the token, as in HF
        return EOS if self.pad_token == "<eos>" else None

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        assert tokenize is False
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.encode("utf-8"))}

    def decode(self, ids, skip_special_tokens=False):
        ids = [int(i) for i in ids if int(i) < 256]
        return bytes(ids).decode("utf-8", errors="replace")


def tiny_model(seed: int = 0, tied: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=260,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=tied,
        pad_token_id=EOS,
        eos_token_id=EOS,
    )
    return LlamaForCausalLM(config).eval()


def tiny_llm(seed: int = 0) -> LoadedLLM:
    device = torch.device("cpu")
    return LoadedLLM(
        tiny_model(seed), ByteTokenizer(), "tiny", device, torch.float32, "tiny0"
    )


def constant_head(token: int) -> torch.nn.Linear:
    """An output layer whose prediction is ``token`` whatever the input."""
    head = torch.nn.Linear(32, 260, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token] = 1.0
    return head


def brute_logprob(model, prompt: list[int], cont: list[int]) -> float:
    """Summed log-probability of ``cont`` after ``prompt``, one plain forward."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + cont])).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return sum(float(logprobs[len(prompt) - 1 + j, t]) for j, t in enumerate(cont))


# loading checks -----------------------------------------------------------


def test_unreadable_reason_known_answers():
    assert loading.unreadable_reason("Paris is the capital.", [1, 2, 3, 4]) is None
    assert loading.unreadable_reason("   ", [5]) == "empty"
    assert loading.unreadable_reason("aaaa", [7, 7, 7, 7]) == "one token repeated"
    assert "printable" in loading.unreadable_reason("\x00\x01\x02ab", [1, 2])
    assert "printable" in loading.unreadable_reason("\ufffd\ufffd\ufffd", [1, 2])


def test_tied_embeddings_check():
    model = tiny_model()
    loading.check_tied_embeddings(model, "m")  # same storage

    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    loading.check_tied_embeddings(model, "m")  # equal values, own storage

    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1e-3
    with pytest.raises(LLMLoadError, match="tie_word_embeddings.*differ") as err:
        loading.check_tied_embeddings(model, "/models/broken")
    assert "/models/broken" in str(err.value)

    loading.check_tied_embeddings(tiny_model(tied=False), "m")  # untied by config


def test_chat_template_and_pad_checks(caplog):
    tokenizer = ByteTokenizer()
    loading.check_chat_template(tokenizer, "m")
    tokenizer.chat_template = None
    with pytest.raises(LLMLoadError, match="/models/x.*chat template"):
        loading.check_chat_template(tokenizer, "/models/x")

    tokenizer = ByteTokenizer()
    tokenizer.pad_token = None
    with caplog.at_level(logging.WARNING):
        loading.ensure_pad_token(tokenizer, "m")
    assert tokenizer.pad_token_id == EOS
    assert "no pad token" in caplog.text


def test_probe_rejects_a_model_that_repeats_one_token():
    model = tiny_model(tied=False)
    model.lm_head = constant_head(ord("a"))  # every step predicts "a"
    with pytest.raises(LLMLoadError, match="one token repeated"):
        loading.check_probe_answer(model, ByteTokenizer(), "/models/zeros")


def test_resolve_spec_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a known model"):
        loading.resolve_spec(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        loading.resolve_spec(str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        loading.resolve_spec(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="weight files"):
        loading.resolve_spec(str(tmp_path))


def test_folder_with_garbage_weights_fails_to_load(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = tiny_model(tied=False)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # every logit 0: token 0 forever
    model.save_pretrained(tmp_path)
    vocab = {chr(i): i for i in range(32, 127)} | {"<eos>": EOS}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(tmp_path)

    llm = loading.load_llm(str(tmp_path), device="cpu", check=False)
    assert llm.dtype == torch.float32 and len(llm.fingerprint) == 16
    with pytest.raises(LLMLoadError, match=str(tmp_path)):
        loading.load_llm(str(tmp_path), device="cpu")


def test_file_hash_is_sha256_and_follows_changes(tmp_path):
    import hashlib

    path = tmp_path / "w.bin"
    path.write_bytes(b"abc" * 1000)
    assert loading.file_hash(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    path.write_bytes(b"abcd" * 1000)  # new size, new key
    assert loading.file_hash(path) == hashlib.sha256(b"abcd" * 1000).hexdigest()


# scoring ------------------------------------------------------------------

PROMPT = [60, 61, 62, 63, 64, 65, 66, 67, 68, 69]
CONTS = [
    [70, 71, 72, EOS],
    [73, EOS],
    [EOS],
    [74, 75, 76, 77, 78, 79, 80, EOS],
    [81, 82],
]


def test_cached_equals_brute_force_for_every_batch_size():
    model = tiny_model()
    state = scoring.encode_prompt(model, PROMPT)
    for batch_size in (1, 2, 3, 5, 8):
        lps = scoring.cached_logprobs(model, state, CONTS, batch_size)
        assert [len(lp) for lp in lps] == [len(c) for c in CONTS]
        for lp, cont in zip(lps, CONTS, strict=True):
            assert float(lp.sum()) == pytest.approx(
                brute_logprob(model, PROMPT, cont), abs=1e-4
            )


def test_cached_equals_full_in_float64_to_rounding():
    # in float64 any gap beyond rounding would be a masking or position bug
    model = tiny_model(seed=2).double()
    state = scoring.encode_prompt(model, PROMPT)
    cached = scoring.cached_logprobs(model, state, CONTS, batch_size=3)
    full = scoring.full_logprobs(model, PROMPT, CONTS)
    for a, b in zip(cached, full, strict=True):
        assert a.dtype == torch.float64
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_full_reference_matches_cached_per_token():
    model = tiny_model(seed=3)
    state = scoring.encode_prompt(model, PROMPT)
    cached = scoring.cached_logprobs(model, state, CONTS, batch_size=4)
    full = scoring.full_logprobs(model, PROMPT, CONTS)
    for a, b in zip(cached, full, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_top_k_breaks_ties_by_item_id():
    assert scoring.top_k({5: 1.0, 2: 1.0, 9: 3.0, 1: -2.0}, 3) == [9, 2, 5]


def test_combine_known_answers():
    lp = torch.tensor([-1.0, -2.0, -3.0])
    assert scoring.combine(lp, -4.5, "pmi") == pytest.approx(-1.5)
    assert scoring.combine(lp, None, "mean_logprob") == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="score"):
        scoring.combine(lp, None, "sum")


def _session_prompt(session: list[int]) -> list:
    return next_title_messages(None, [TITLES[i] for i in session])


def test_pmi_equals_brute_force_difference():
    llm = tiny_llm()
    scorer = scoring.TitleScorer(llm, TITLES, score="pmi", batch_size=4)
    messages = _session_prompt([0, 3, 5])
    ranked = scorer.rank(messages, [1, 2, 4, 8, 11], k=3)

    prompt = chat_prompt_ids(llm.tokenizer, messages)
    neutral = chat_prompt_ids(llm.tokenizer, neutral_messages())
    for item, value in ranked.scores.items():
        answer = list(TITLES[item].encode()) + [EOS]
        want = brute_logprob(llm.model, prompt, answer) - brute_logprob(
            llm.model, neutral, answer
        )
        assert value == pytest.approx(want, abs=1e-4)
    assert ranked.ranking == sorted(ranked.scores, key=lambda i: -ranked.scores[i])[:3]


def test_mean_logprob_is_per_token_mean():
    llm = tiny_llm()
    scorer = scoring.TitleScorer(llm, TITLES, score="mean_logprob")
    messages = _session_prompt([2, 6])
    ranked = scorer.rank(messages, [0, 7], k=2)
    prompt = chat_prompt_ids(llm.tokenizer, messages)
    for item in (0, 7):
        answer = list(TITLES[item].encode()) + [EOS]
        want = brute_logprob(llm.model, prompt, answer) / len(answer)
        assert ranked.scores[item] == pytest.approx(want, abs=1e-4)


def test_rank_ignores_candidate_order_duplicates_and_batch_size():
    llm = tiny_llm(seed=1)
    messages = _session_prompt([4, 9, 10])
    candidates = list(range(len(TITLES)))
    base = scoring.TitleScorer(llm, TITLES, batch_size=25).rank(messages, candidates, 5)
    for batch_size, seed in ((1, 0), (3, 1), (7, 2)):
        shuffled = candidates + candidates[:4]
        random.Random(seed).shuffle(shuffled)
        other = scoring.TitleScorer(llm, TITLES, batch_size=batch_size)
        ranked = other.rank(messages, shuffled, 5)
        assert ranked.ranking == base.ranking
        for item, value in base.scores.items():
            assert ranked.scores[item] == pytest.approx(value, abs=1e-4)


def test_neutral_terms_are_memoised_and_persisted(tmp_path, monkeypatch):
    llm = tiny_llm()
    path = tmp_path / "neutral.json"
    scorer = scoring.TitleScorer(llm, TITLES, neutral_path=path)
    first = scorer.neutral_logprob([3, 1, 2])
    stored = json.loads(path.read_text())
    assert set(stored["scores"]) == {"1", "2", "3"}

    calls = []
    real = scoring.cached_logprobs
    monkeypatch.setattr(
        scoring, "cached_logprobs", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    again = scoring.TitleScorer(llm, TITLES, neutral_path=path)
    assert again.neutral_logprob([1, 2, 3]) == first and calls == []
    again.neutral_logprob([1, 5])
    assert len(calls) == 1 and [len(c) for c in calls[0][2]] == [len("Batman") + 1]

    other_model = replace(llm, fingerprint="tiny1")
    assert scoring.TitleScorer(other_model, TITLES, neutral_path=path)._neutral == {}


def test_rank_rejects_unknown_items():
    scorer = scoring.TitleScorer(tiny_llm(), TITLES)
    with pytest.raises(ValueError, match="item id 99"):
        scorer.rank(_session_prompt([0]), [1, 99])
    with pytest.raises(ValueError, match="empty"):
        scorer.rank(_session_prompt([0]), [])


# LoRA ---------------------------------------------------------------------


def test_collate_keeps_eos_label_when_pad_is_eos():
    pairs = [([1, 2, 3], [7, EOS]), ([4], [8, 9, EOS])]
    batch = lora.collate(pairs, pad_id=EOS)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 7, EOS], [4, 8, 9, EOS, EOS]]
    assert batch["labels"].tolist() == [
        [-100, -100, -100, 7, EOS],
        [-100, 8, 9, EOS, -100],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]


def test_lora_options_are_validated():
    with pytest.raises(ValueError, match="LoraTuning.r"):
        lora.LoraTuning(r=0)
    with pytest.raises(ValueError, match="dropout"):
        lora.LoraTuning(dropout=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        lora.LoraTuning(max_steps=0)
    assert lora.LoraTuning(target_modules=["q_proj"]).target_modules == ("q_proj",)


def _examples(n: int = 6) -> list[lora.LoraExample]:
    sessions = [[i % 12, (i + 3) % 12] for i in range(n)]
    return lora.build_examples(TITLES, sessions, [(i + 5) % 12 for i in range(n)])


def test_examples_selection_and_step_order_are_seeded():
    examples = _examples(10)
    options = lora.LoraTuning(n_sessions=4, seed=3)
    chosen = lora.select_examples(examples, options)
    assert chosen == lora.select_examples(examples, options)
    positions = [examples.index(ex) for ex in chosen]
    assert len(chosen) == 4 and positions == sorted(positions)

    steps = lora._step_batches(5, lora.LoraTuning(batch_size=2, epochs=2))
    assert [len(b) for b in steps] == [2, 2, 1, 2, 2, 1]
    assert sorted(sum(steps[:3], [])) == sorted(sum(steps[3:], [])) == list(range(5))
    assert lora.examples_hash(examples) != lora.examples_hash(examples[::-1])


def _logits(llm: LoadedLLM) -> torch.Tensor:
    ids = torch.tensor([chat_prompt_ids(llm.tokenizer, _session_prompt([1, 2]))])
    with torch.no_grad():
        return llm.model(input_ids=ids).logits


OPTIONS = lora.LoraTuning(r=4, alpha=8, lr=2e-2, max_steps=3, batch_size=2, seed=1)


def test_tune_saves_and_reloads_the_same_adapter(tmp_path, monkeypatch):
    llm = tiny_llm()
    before = _logits(llm)
    tuned = lora.tune_or_load(llm, _examples(), OPTIONS, tmp_path, progress=False)
    tuned_logits = _logits(tuned)
    assert not torch.allclose(tuned_logits, before, atol=1e-3)
    assert torch.equal(_logits(llm), before)  # the base model is untouched

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["base_fingerprint"] == "tiny0"
    assert manifest["data_hash"] == lora.examples_hash(_examples())
    assert manifest["training"]["steps"] == 3

    def no_training(*args, **kwargs):
        raise AssertionError("a matching manifest must not retrain")

    monkeypatch.setattr(lora, "train_adapter", no_training)
    reloaded = lora.tune_or_load(llm, _examples(), OPTIONS, tmp_path, progress=False)
    assert torch.allclose(_logits(reloaded), tuned_logits, atol=1e-6)
    assert reloaded.adapter_fingerprint == tuned.adapter_fingerprint


def test_changed_options_or_data_retrain(tmp_path):
    llm = tiny_llm()
    first = lora.tune_or_load(llm, _examples(), OPTIONS, tmp_path, progress=False)
    other = replace(OPTIONS, lr=1e-2)
    second = lora.tune_or_load(llm, _examples(), other, tmp_path, progress=False)
    third = lora.tune_or_load(llm, _examples(5), other, tmp_path, progress=False)
    fingerprints = {first.adapter_fingerprint, second.adapter_fingerprint}
    assert len(fingerprints | {third.adapter_fingerprint}) == 3
    assert json.loads((tmp_path / "manifest.json").read_text())["n_examples"] == 5


def test_training_is_deterministic():
    llm = tiny_llm()
    runs = [
        lora.train_adapter(llm, _examples(), OPTIONS, progress=False) for _ in (0, 1)
    ]
    state = [{k: v for k, v in m.state_dict().items() if "lora" in k} for m, _ in runs]
    assert state[0].keys() == state[1].keys() and state[0]
    assert all(torch.equal(state[0][k], state[1][k]) for k in state[0])
    assert runs[0][1]["last_loss"] == runs[1][1]["last_loss"]


def test_top_layers_limits_the_adapted_layers():
    options = replace(OPTIONS, top_layers=1, max_steps=1)
    model, _ = lora.train_adapter(tiny_llm(), _examples(2), options, progress=False)
    adapted = {
        k.split(".layers.")[1].split(".")[0]
        for k in model.state_dict()
        if "lora_A" in k
    }
    assert adapted == {"1"}  # of layers 0 and 1, only the last


def test_tuned_model_learns_to_stop_after_the_title():
    # pad == EOS here: a collate that masked pad ids would never teach EOS
    llm = tiny_llm()
    example = _examples(1)
    options = lora.LoraTuning(
        r=16,
        alpha=32,
        dropout=0.0,
        lr=0.1,
        max_steps=100,
        batch_size=1,
        target_modules=(
            "q_proj",
            "v_proj",
            "o_proj",
            "up_proj",
            "down_proj",
            "lm_head",
        ),
    )
    model, stats = lora.train_adapter(llm, example, options, progress=False)
    prompt, answer = lora.encode_example(llm.tokenizer, example[0])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + answer[:-1]])).logits[0]
    assert answer[-1] == EOS and stats["last_loss"] < 0.1
    assert logits[len(prompt) - 1 :].argmax(-1).tolist() == answer


# the teacher --------------------------------------------------------------

SESSIONS = {10: [0, 3, 5], 11: [2, 6], 12: [7]}
CANDIDATES = {10: [1, 2, 4, 8, 11, 6], 11: [0, 1, 3, 9], 12: [8, 9, 10, 11, 0]}


def _teacher(llm: LoadedLLM, **kwargs) -> LocalLLMTeacher:
    options = {"k": 3, "progress": False} | kwargs
    hints = options.pop("hints", "1. Sequels follow.")
    return LocalLLMTeacher(
        llm, TITLES, SESSIONS.__getitem__, CANDIDATES.__getitem__, hints, **options
    )


def test_teacher_answers_with_rankings_and_costs():
    llm = tiny_llm()
    teacher = _teacher(llm)
    assert isinstance(teacher, Teacher)
    answers = teacher.answer([10, 11, 12])
    assert set(answers) == {10, 11, 12}
    for sid, answer in answers.items():
        assert isinstance(answer, Answer) and answer.session_id == sid
        assert len(answer.ranking) == 3 and set(answer.ranking) <= set(CANDIDATES[sid])
        assert answer.cost.calls == 1 and answer.cost.completion_tokens == 0
        assert answer.cost.seconds > 0 and answer.cost.prompt_tokens > 0

    messages = next_title_messages(
        "1. Sequels follow.", [TITLES[i] for i in SESSIONS[11]]
    )
    direct = scoring.TitleScorer(llm, TITLES).rank(messages, CANDIDATES[11], 3)
    assert answers[11].ranking == direct.ranking
    assert teacher.rank([11]) == {11: direct.ranking}


def test_teacher_fingerprint_follows_its_settings():
    llm = tiny_llm()
    tuned = replace(llm, adapter_fingerprint="abc")
    prints = {
        _teacher(llm).fingerprint,
        _teacher(llm, score="mean_logprob").fingerprint,
        _teacher(llm, k=4).fingerprint,
        _teacher(llm, hints="other hints").fingerprint,
        _teacher(tuned).fingerprint,
    }
    assert len(prints) == 5
    assert _teacher(llm).fingerprint == _teacher(copy.copy(llm)).fingerprint
    assert _teacher(llm, batch_size=2).fingerprint == _teacher(llm).fingerprint

"""Prompt texts and the hints file (no model needed)."""

from __future__ import annotations

import pytest

from alkd.llm import prompts
from alkd.llm.prompts import GAMES, HintCase


def _user(messages: list[dict[str, str]]) -> str:
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def test_summary_prompt_lists_every_case():
    cases = [
        HintCase(["Alien", "Heat"], ["Aliens", "Ronin"]),
        HintCase(["Up"], ["Coco", "Brave", "Cars"]),
    ]
    text = _user(prompts.summary_messages(cases))
    assert "2 cases" in text
    assert "Case 1\nThe user watched: Alien; Heat\n" in text
    assert "The recommender suggested: Coco; Brave; Cars" in text
    assert text.index("Case 1") < text.index("Case 2")
    with pytest.raises(ValueError, match="cases"):
        prompts.summary_messages([])


def test_recommendation_prompt_holds_hints_session_and_candidates():
    text = _user(prompts.recommendation_messages("1. Sequels.", ["Alien"], ["X", "Y"]))
    assert "1. Sequels." in text and "Alien" in text
    assert text.index("1. Sequels.") < text.index("Alien") < text.index("- X\n- Y")


def test_next_title_prompt_without_hints_and_with_long_sessions():
    session = [f"T{i}" for i in range(15)]
    text = _user(prompts.next_title_messages(None, session))
    assert "Hints" not in text
    assert "T4;" not in text and "T5; T6" in text and text.count("; ") == 9
    assert _user(prompts.next_title_messages("  ", ["A"])).startswith("The user")
    with pytest.raises(ValueError, match="session_titles"):
        prompts.next_title_messages(None, [])


def test_domain_words_reach_the_prompt():
    text = _user(prompts.next_title_messages(None, ["Doom"], GAMES))
    assert "played" in text and "Which game will the user play next?" in text
    assert "game" in _user(prompts.neutral_messages(GAMES))


def test_id_list_prompt_asks_for_k_ids():
    cands = [(5130, "Heat"), (6022, "Ronin"), (7, "Up")]
    text = _user(prompts.id_list_messages(None, ["Alien"], cands, k=2))
    assert "5130: Heat\n6022: Ronin\n7: Up" in text
    assert "exactly 2 integer ids" in text
    with pytest.raises(ValueError, match="k"):
        prompts.id_list_messages(None, ["Alien"], cands, k=25)


def test_hints_round_trip_with_header(tmp_path):
    path = tmp_path / "hints" / "ML.txt"
    prompts.save_hints(
        path, "1. Sequels.\n2. Genres.\n", model_fingerprint="ab12", n_cases=7
    )
    assert prompts.load_hints(path) == "1. Sequels.\n2. Genres."
    assert prompts.hints_header(path) == {"model": "ab12", "cases": 7}
    assert [p.name for p in path.parent.iterdir()] == ["ML.txt"]  # no temp left


def test_a_users_own_hints_file_loads_whole(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# My rules\nPrefer sequels.\n", encoding="utf-8")
    assert prompts.load_hints(path) == "# My rules\nPrefer sequels."
    assert prompts.hints_header(path) == {}
    with pytest.raises(FileNotFoundError, match="hints file"):
        prompts.load_hints(tmp_path / "absent.txt")


def test_hints_fingerprint_ignores_surrounding_space_only():
    assert prompts.hints_fingerprint(" a \n") == prompts.hints_fingerprint("a")
    assert prompts.hints_fingerprint(None) == prompts.hints_fingerprint("")
    assert prompts.hints_fingerprint("a") != prompts.hints_fingerprint("b")


class _StubTokenizer:
    pad_token_id = 0

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return " ".join(m["content"] for m in messages)

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [1] * 5}

    def decode(self, ids, skip_special_tokens):
        return "".join(self.words.get(i, "?") for i in ids)


class _StubModel:
    """Returns the prompt followed by a fixed continuation."""

    def __init__(self, continuation):
        self.continuation = continuation
        self.kwargs = {}

    def generate(self, input_ids, **kwargs):
        import torch

        self.kwargs = kwargs
        tail = torch.tensor([self.continuation])
        return torch.cat([input_ids, tail], dim=1)


def _stub_llm(continuation, words):
    from types import SimpleNamespace

    import torch

    tok = _StubTokenizer()
    tok.words = words
    return SimpleNamespace(
        tokenizer=tok, model=_StubModel(continuation), device=torch.device("cpu")
    )


def test_hints_generation_blocks_loops_and_drops_garbage():
    cases = [HintCase(["Alien"], ["Aliens"])]
    looping = _stub_llm([7] * 12, {7: "\ufffd"})
    assert prompts.generate_hints(looping, cases) == ""
    assert looping.model.kwargs["no_repeat_ngram_size"] == 4

    fine = _stub_llm([2, 3], {2: "1. Sequels ", 3: "follow originals."})
    assert prompts.generate_hints(fine, cases) == "1. Sequels follow originals."

"""The local LLM: offline loading, prompts, LoRA tuning, calibrated scoring."""

from alkd.llm.loading import DEFAULT_SPEC, LLMLoadError, LoadedLLM, load_llm
from alkd.llm.lora import LoraExample, LoraTuning, build_examples, tune_or_load
from alkd.llm.prompts import (
    DOMAINS,
    GAMES,
    MOVIES,
    Domain,
    HintCase,
    generate_hints,
    id_list_messages,
    load_hints,
    next_title_messages,
    recommendation_messages,
    save_hints,
    summary_messages,
)
from alkd.llm.scoring import SCORES, RankedCandidates, TitleScorer

__all__ = [
    "DEFAULT_SPEC",
    "DOMAINS",
    "GAMES",
    "MOVIES",
    "SCORES",
    "Domain",
    "HintCase",
    "LLMLoadError",
    "LoadedLLM",
    "LoraExample",
    "LoraTuning",
    "RankedCandidates",
    "TitleScorer",
    "build_examples",
    "generate_hints",
    "id_list_messages",
    "load_hints",
    "load_llm",
    "next_title_messages",
    "recommendation_messages",
    "save_hints",
    "summary_messages",
    "tune_or_load",
]

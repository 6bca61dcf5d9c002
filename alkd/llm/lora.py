"""LoRA tuning of the local teacher on training sessions (peft).

An example is the prompt of :func:`alkd.llm.prompts.next_title_messages`
(optional hints plus the session's last titles, no candidates) answered by
the true next item's title followed by EOS. The loss covers the answer
tokens only. This is the same prompt and answer the scorer uses, so tuning
raises exactly the likelihood that ranks candidates.

An adapter folder holds ``adapter/`` (peft ``save_pretrained``) and
``manifest.json`` (base model fingerprint, options, hash of the examples),
written last so that a folder without a manifest is never reused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from alkd.io import atomic_write_json
from alkd.llm.loading import LoadedLLM, chat_prompt_ids, text_ids
from alkd.llm.prompts import MOVIES, Domain, Messages, next_title_messages

log = logging.getLogger(__name__)

IGNORE = -100  # label value the loss skips
MANIFEST = "manifest.json"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class LoraTuning:
    """LoRA options; defaults sized so a few hundred examples take minutes on CPU."""

    r: int = field(default=8, metadata={"help": "rank of the LoRA update"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on LoRA input"})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "v_proj"), metadata={"help": "module names to adapt"}
    )
    top_layers: int | None = field(
        default=8,
        metadata={
            "help": "adapt only the last n decoder layers (None: all); backward "
            "then stops there, which halves CPU training time on SmolLM2-135M"
        },
    )
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    epochs: int = field(default=1, metadata={"help": "passes over the examples"})
    max_steps: int | None = field(
        default=None, metadata={"help": "optimiser steps; overrides epochs if set"}
    )
    batch_size: int = field(default=8, metadata={"help": "examples per step"})
    n_sessions: int = field(
        default=300, metadata={"help": "examples kept (seeded subset) if more given"}
    )
    seed: int = field(default=0, metadata={"help": "seeds subset, order, dropout"})

    def __post_init__(self) -> None:
        positive = ("r", "alpha", "epochs", "batch_size", "n_sessions")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"LoraTuning.{name}: must be >= 1")
        if self.top_layers is not None and self.top_layers < 1:
            raise ValueError("LoraTuning.top_layers: must be >= 1 or None")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("LoraTuning.max_steps: must be >= 1 or None")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("LoraTuning.dropout: must be in [0, 1)")
        if self.lr <= 0:
            raise ValueError("LoraTuning.lr: must be > 0")
        if not self.target_modules:
            raise ValueError("LoraTuning.target_modules: name at least one module")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


@dataclass(frozen=True)
class LoraExample:
    """One training example: chat prompt and answer text (a title)."""

    prompt: Messages
    answer: str


def build_examples(
    titles: Sequence[str],
    sessions: Sequence[Sequence[int]],
    next_items: Sequence[int],
    *,
    hints: str | None = None,
    domain: Domain = MOVIES,
) -> list[LoraExample]:
    """Examples from sessions and their next items (e.g. a train split)."""
    if len(sessions) != len(next_items):
        raise ValueError("sessions and next_items must have the same length")
    return [
        LoraExample(
            next_title_messages(hints, [titles[i] for i in session], domain),
            titles[int(nxt)].strip(),
        )
        for session, nxt in zip(sessions, next_items, strict=True)
    ]


def examples_hash(examples: Sequence[LoraExample]) -> str:
    """Hash of the examples' text, in order (the manifest's data hash)."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.prompt, ex.answer], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def select_examples(
    examples: Sequence[LoraExample], options: LoraTuning
) -> list[LoraExample]:
    """At most ``n_sessions`` examples: a seeded subset kept in input order."""
    return [examples[i] for i in selected_rows(len(examples), options)]


def selected_rows(n_examples: int, options: LoraTuning) -> np.ndarray:
    """Rows of the examples LoRA tunes on (sorted); evaluations hold them out."""
    if n_examples <= options.n_sessions:
        return np.arange(n_examples)
    rng = np.random.default_rng(options.seed)
    return np.sort(rng.choice(n_examples, options.n_sessions, replace=False))


def encode_example(tokenizer: Any, example: LoraExample) -> tuple[list[int], list[int]]:
    """Prompt ids and answer ids (title then EOS), tokenized as the scorer does."""
    prompt = chat_prompt_ids(tokenizer, example.prompt)
    answer = text_ids(tokenizer, example.answer) + [tokenizer.eos_token_id]
    return prompt, answer


def collate(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels are the answer tokens, -100 elsewhere.

    Labels come from the answer's position, never from comparing ids with
    ``pad_id``: with pad == EOS that comparison would erase the EOS label and
    the tuned model would never learn to stop after a title.
    """
    width = max(len(p) + len(a) for p, a in pairs)
    input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(pairs):
        n_p, n = len(prompt), len(prompt) + len(answer)
        input_ids[row, :n] = torch.tensor(list(prompt) + list(answer))
        labels[row, n_p:n] = torch.tensor(list(answer))
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def train_adapter(
    llm: LoadedLLM,
    examples: Sequence[LoraExample],
    options: LoraTuning,
    *,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Tune a LoRA adapter on a copy of the base model; returns (model, stats)."""
    if not examples:
        raise ValueError("examples: nothing to train on")
    torch.manual_seed(options.seed)
    model = _lora_model(llm, options)
    encoded = [encode_example(llm.tokenizer, ex) for ex in examples]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=0.0)

    order = _step_batches(len(encoded), options)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    for batch_index in tqdm(order, desc="lora", disable=not progress):
        batch = collate([encoded[i] for i in batch_index], llm.tokenizer.pad_token_id)
        loss = model(**{k: v.to(llm.device) for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()

    seconds = time.perf_counter() - started
    seen = sum(len(b) for b in order)
    stats = {
        "steps": len(order),
        "examples_seen": seen,
        "seconds": seconds,
        "examples_per_second": seen / seconds if seconds > 0 else float("inf"),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "losses": [round(v, 4) for v in losses],
    }
    log.info(
        "lora trained steps=%d examples=%d seconds=%.1f", len(order), seen, seconds
    )
    return model, stats


def _lora_model(llm: LoadedLLM, options: LoraTuning) -> Any:
    """A peft model wrapping a copy of the base, with fresh LoRA weights."""
    from peft import LoraConfig, get_peft_model

    base = _base_copy(llm)
    config = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        layers_to_transform=_adapted_layers(base, options.top_layers),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, config)


def _adapted_layers(model: Any, top_layers: int | None) -> list[int] | None:
    """Indexes of the last ``top_layers`` decoder layers, or ``None`` for all."""
    n_layers = model.config.get_text_config().num_hidden_layers
    if top_layers is None or top_layers >= n_layers:
        return None
    return list(range(n_layers - top_layers, n_layers))


def _step_batches(n: int, options: LoraTuning) -> list[list[int]]:
    """The example indexes of every step: seeded epoch permutations, in order."""
    generator = torch.Generator().manual_seed(options.seed)
    per_epoch = math.ceil(n / options.batch_size)
    steps = options.max_steps or options.epochs * per_epoch
    batches: list[list[int]] = []
    while len(batches) < steps:
        perm = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, options.batch_size):
            batches.append(perm[start : start + options.batch_size])
    return batches[:steps]


def _base_copy(llm: LoadedLLM) -> Any:
    # peft injects layers into the model it wraps; a copy leaves the
    # caller's zero-shot model untouched
    if llm.adapter_fingerprint is not None or hasattr(llm.model, "peft_config"):
        raise ValueError("llm: already carries an adapter; tune from the base model")
    return copy.deepcopy(llm.model)


def expected_manifest(
    llm: LoadedLLM, examples: Sequence[LoraExample], options: LoraTuning
) -> dict[str, Any]:
    """The manifest fields that decide whether a saved adapter can be reused."""
    return {
        "base_fingerprint": llm.fingerprint,
        "options": json.loads(json.dumps(asdict(options))),
        "data_hash": examples_hash(examples),
        "n_examples": len(examples),
    }


def manifest_fingerprint(manifest: dict[str, Any]) -> str:
    """Short hash of the reuse-deciding manifest fields."""
    keys = ("base_fingerprint", "options", "data_hash", "n_examples")
    fields = {k: manifest[k] for k in keys}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def tune_or_load(
    llm: LoadedLLM,
    examples: Sequence[LoraExample],
    options: LoraTuning,
    folder: str | Path,
    *,
    progress: bool = True,
) -> LoadedLLM:
    """The tuned teacher model: reuse ``folder``'s adapter if it matches, else train.

    Returns a new :class:`LoadedLLM` sharing the tokenizer, whose model is a
    peft model on a copy of the base; ``llm`` itself is not modified.
    """
    folder = Path(folder)
    selected = select_examples(examples, options)
    expected = expected_manifest(llm, selected, options)
    stored = read_manifest(folder)
    if stored is not None and all(stored.get(k) == v for k, v in expected.items()):
        log.info("lora adapter reused folder=%s", folder)
        return load_adapter(llm, folder)

    if stored is not None:
        log.info("lora manifest differs, retraining folder=%s", folder)
        (folder / MANIFEST).unlink()
    model, stats = train_adapter(llm, selected, options, progress=progress)
    model.save_pretrained(str(folder / ADAPTER_DIR))
    atomic_write_json(folder / MANIFEST, {**expected, "training": stats})
    return replace(llm, model=model, adapter_fingerprint=manifest_fingerprint(expected))


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest, or ``None`` when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_adapter(llm: LoadedLLM, folder: str | Path) -> LoadedLLM:
    """Wrap a copy of the base model with the adapter saved in ``folder``."""
    from peft import PeftModel

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"no {MANIFEST} in adapter folder {folder}")
    if manifest["base_fingerprint"] != llm.fingerprint:
        raise ValueError(
            f"adapter {folder} was tuned on base {manifest['base_fingerprint']}, "
            f"not on {llm.fingerprint}"
        )
    model = PeftModel.from_pretrained(_base_copy(llm), str(folder / ADAPTER_DIR))
    model = model.to(llm.device).eval()
    return replace(llm, model=model, adapter_fingerprint=manifest_fingerprint(manifest))

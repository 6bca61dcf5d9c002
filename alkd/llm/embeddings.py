"""Item title embeddings from the local LLM (DLLM2Rec's collaborative part).

An item's embedding is the mean of the LLM's last hidden states over the
tokens of its title, computed once per (dataset, model) and cached as a
``.npy`` file beside a small manifest, so a rerun reads it back. Titles
are batched by length (right padding, attention mask) so padding neither
changes an embedding nor costs much; titles are cut at ``max_tokens``.

Untitled items (the empty string) get the zero vector: there is nothing
for the LLM to describe, and zero adds nothing in DLLM2Rec's input offset.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from alkd.io import atomic_write_bytes, atomic_write_json, exclusive

log = logging.getLogger(__name__)


def _title_ids(
    tokenizer: Any, titles: Sequence[str], max_tokens: int
) -> list[list[int]]:
    encoded = tokenizer(list(titles), add_special_tokens=False)["input_ids"]
    return [list(ids[:max_tokens]) for ids in encoded]


@torch.inference_mode()
def _embed_batch(model: Any, ids: list[list[int]], pad_id: int) -> np.ndarray:
    """Mean last hidden state over each sequence's real tokens."""
    device = next(model.parameters()).device
    width = max(len(x) for x in ids)
    tokens = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    tokens, mask = tokens.to(device), mask.to(device)

    out = model(input_ids=tokens, attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states[-1].float()
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1)
    return pooled.cpu().numpy()


def title_embeddings(
    llm: Any,
    titles: Sequence[str],
    *,
    batch_size: int = 64,
    max_tokens: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """``(len(titles), hidden)`` float32 embeddings, zero for empty titles."""
    if batch_size < 1 or max_tokens < 1:
        raise ValueError("batch_size and max_tokens must be positive")
    ids = _title_ids(llm.tokenizer, titles, max_tokens)
    pad_id = llm.tokenizer.pad_token_id or 0
    hidden = llm.model.config.hidden_size
    out = np.zeros((len(titles), hidden), dtype=np.float32)

    # shortest first keeps each batch's padding small
    order = sorted((i for i, x in enumerate(ids) if x), key=lambda i: len(ids[i]))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="title embeddings", disable=not progress):
        rows = order[start : start + batch_size]
        out[rows] = _embed_batch(llm.model, [ids[i] for i in rows], pad_id)
    return out


def standardise(z: np.ndarray) -> np.ndarray:
    """Per-dimension z-scores over the titled items; untitled rows stay zero.

    SmolLM2's mean-pooled states share one large direction (on Games the
    mean vector has norm 39 of the rows' 41, items have mean cosine 0.89,
    one dimension averages 30.6), so a linear projector of the raw vectors
    mostly adds the same offset to every item. A constant dimension is
    only centred (its spread would divide by zero).
    """
    z = np.asarray(z, dtype=np.float64)
    titled = np.abs(z).sum(1) > 0
    if not titled.any():
        return z.astype(np.float32)
    mean, std = z[titled].mean(0), z[titled].std(0)
    out = np.zeros_like(z)
    out[titled] = (z[titled] - mean) / np.where(std > 0, std, 1.0)
    return out.astype(np.float32)


def titles_hash(titles: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(titles).encode("utf-8")).hexdigest()
    return digest[:16]


def cached_title_embeddings(
    spec: str,
    titles: Sequence[str],
    cache_dir: str | Path,
    name: str,
    *,
    device: str = "auto",
    progress: bool = True,
) -> np.ndarray:
    """:func:`title_embeddings` of model ``spec``, read from ``cache_dir``
    when it matches.

    The cache is keyed by the model's weights fingerprint and a hash of the
    titles; a mismatching cache is recomputed, never silently reused. The
    model is loaded only when the cache misses.
    """
    from alkd.llm.loading import load_llm, resolve_spec, source_fingerprint

    key = f"{source_fingerprint(resolve_spec(spec))}|{titles_hash(titles)}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = Path(cache_dir)
    array_path = folder / f"{name}-{tag}.npy"
    manifest_path = folder / f"{name}-{tag}.json"
    cached = _read_cache(array_path, manifest_path, key)
    if cached is not None:
        return cached

    # parallel cells (run_all.sh --jobs) may need the same vectors at once:
    # one process computes them (25 core-minutes on Games) while the others wait
    with exclusive(folder / ".locks" / f"{name}-{tag}.lock"):
        cached = _read_cache(array_path, manifest_path, key)
        if cached is not None:
            log.info("title embeddings computed meanwhile path=%s", array_path)
            return cached
        llm = load_llm(spec, device)
        emb = title_embeddings(llm, titles, progress=progress)
        atomic_write_bytes(array_path, _npy_bytes(emb))
        atomic_write_json(manifest_path, {"key": key, "shape": list(emb.shape)})
    log.info("title embeddings written path=%s shape=%s", array_path, emb.shape)
    return emb


def _read_cache(array_path: Path, manifest_path: Path, key: str) -> np.ndarray | None:
    """The cached vectors if their manifest names this model and these titles."""
    if not (array_path.is_file() and manifest_path.is_file()):
        return None
    if json.loads(manifest_path.read_text()).get("key") != key:
        return None
    return np.load(array_path)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()

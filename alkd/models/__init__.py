"""Backbones behind one interface: ``encode``, ``item_embeddings``, ``scores``."""

from __future__ import annotations

from alkd.models.attmix import AttMix
from alkd.models.base import SessionRecommender
from alkd.models.fpmc import FPMC
from alkd.models.stamp import STAMP

BACKBONES: dict[str, type[SessionRecommender]] = {
    "fpmc": FPMC,
    "stamp": STAMP,
    "attmix": AttMix,
}

# the paper's spelling, for tables
DISPLAY_NAMES = {"fpmc": "FPMC", "stamp": "STAMP", "attmix": "AttMix"}


def build_model(backbone: str, n_items: int, dim: int) -> SessionRecommender:
    """A fresh backbone ``fpmc``, ``stamp`` or ``attmix`` with latent size ``dim``."""
    key = backbone.lower()
    if key not in BACKBONES:
        raise ValueError(
            f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}"
        )
    return BACKBONES[key](n_items, dim)


__all__ = [
    "AttMix",
    "BACKBONES",
    "DISPLAY_NAMES",
    "FPMC",
    "STAMP",
    "SessionRecommender",
    "build_model",
]

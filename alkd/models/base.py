"""The interface every backbone shares: session encoding and item table.

A backbone scores item ``v`` for session ``s`` as ``encode(s) . e_v``, so the
difficulty of METHOD.md section 6 and the representation-based baselines
(DE, FTD, HTD) can use the two halves directly.
"""

from __future__ import annotations

import torch
from torch import nn

from alkd.data import SessionBatch


class SessionRecommender(nn.Module):
    """Base class: ``n_items + 1`` embedding rows, row 0 is the zero padding."""

    name = "base"

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.n_items = n_items
        self.dim = dim
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=1.0 / dim**0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def encode(self, batch: SessionBatch) -> torch.Tensor:
        """Session representations, (B, d)."""
        raise NotImplementedError

    def item_embeddings(self) -> torch.Tensor:
        """Output item table without the padding row, (N, d)."""
        return self.item_emb.weight[1:]

    def scores(self, batch: SessionBatch) -> torch.Tensor:
        """Scores of every item for every session, (B, N)."""
        return self.encode(batch) @ self.item_embeddings().T

    def score_items(self, batch: SessionBatch, items: torch.Tensor) -> torch.Tensor:
        """Scores of chosen items: ``items`` is (B,) or (B, K) internal ids."""
        u = self.encode(batch)  # (B, d)
        e = self.item_embeddings()[items]  # (B, d) or (B, K, d)
        if items.dim() == 1:
            return (u * e).sum(-1)  # (B,)
        return torch.einsum("bd,bkd->bk", u, e)  # (B, K)

    def embed(self, batch: SessionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Input embeddings and mask, ((B, L, d), (B, L) bool)."""
        return self.item_emb(batch.items), batch.mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real positions: x (B, L, d), mask (B, L) -> (B, d)."""
    weights = mask.to(x.dtype).unsqueeze(-1)  # (B, L, 1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def last_item(x: torch.Tensor) -> torch.Tensor:
    """The last click of a left-padded batch, (B, L, d) -> (B, d)."""
    return x[:, -1]

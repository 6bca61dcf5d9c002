"""AttMix: the Atten-Mixer readout (Zhang et al., WSDM 2023) on item embeddings.

Multi-level intent queries attend over the session items:
- concept view: for j = 1..last_k, the mean of the last j items (a group
  longer than the session is the whole session, so padding changes nothing);
- instance view: the last item itself.
Per head, each query's attention over the items is computed, the queries'
attention maps are merged by L_p pooling (``(mean_q a_q^p)^(1/p)``, which
leans towards the most confident query as p grows), and the merged map reads
the session items out. The heads and the last item are mixed by a linear map
into ``encode(s)``. The original puts this readout on an SR-GNN; the
authors' ALKDRec backbone, like this one, puts it on plain item embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from alkd.data import SessionBatch
from alkd.models.base import SessionRecommender, last_item


class AttMix(SessionRecommender):
    name = "attmix"

    def __init__(
        self, n_items: int, dim: int, heads: int = 2, last_k: int = 10, p: float = 4.0
    ) -> None:
        super().__init__(n_items, dim)
        if heads < 1 or last_k < 1 or p < 1:
            raise ValueError("AttMix needs heads >= 1, last_k >= 1 and p >= 1")
        self.heads, self.last_k, self.p = heads, last_k, p
        self.query = nn.Linear(dim, heads * dim, bias=False)
        self.key = nn.Linear(dim, heads * dim, bias=False)
        self.mix = nn.Linear((heads + 1) * dim, dim)

    def intent_queries(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Concept-view group means plus the instance view, (B, last_k + 1, d)."""
        # reverse so position 0 is the last click, then running means
        w = mask.flip(1).to(x.dtype).unsqueeze(-1)  # (B, L, 1)
        xr = x.flip(1) * w
        csum = xr.cumsum(1)[:, : self.last_k]  # (B, K', d)
        count = w.cumsum(1)[:, : self.last_k].clamp_min(1.0)
        groups = csum / count  # mean of the last j real items
        if groups.shape[1] < self.last_k:  # sessions shorter than last_k
            pad = groups[:, -1:].expand(-1, self.last_k - groups.shape[1], -1)
            groups = torch.cat([groups, pad], 1)
        return torch.cat([groups, last_item(x).unsqueeze(1)], 1)

    def encode(self, batch: SessionBatch) -> torch.Tensor:
        x, mask = self.embed(batch)  # (B, L, d)
        b, length, d = x.shape
        q = self.query(self.intent_queries(x, mask))  # (B, Q, H*d)
        k = self.key(x)  # (B, L, H*d)
        q = q.view(b, -1, self.heads, d).transpose(1, 2)  # (B, H, Q, d)
        k = k.view(b, length, self.heads, d).transpose(1, 2)  # (B, H, L, d)

        logits = q @ k.transpose(-1, -2) / d**0.5  # (B, H, Q, L)
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(logits, -1)

        # L_p pooling of the queries' attention maps, then renormalise;
        # scaled by the largest weight so a^p cannot underflow in float32
        top = attn.amax(2, keepdim=True).clamp_min(1e-30)  # (B, H, 1, L)
        # (the clamp keeps the p-th root's gradient finite at padded zeros)
        mean_p = (attn / top).pow(self.p).mean(2).clamp_min(1e-20)
        pooled = top[:, :, 0] * mean_p.pow(1.0 / self.p)
        pooled = pooled * mask[:, None, :]  # (B, H, L)
        pooled = pooled / pooled.sum(-1, keepdim=True).clamp_min(1e-30)
        readout = pooled @ x  # (B, H, d)

        mixed = torch.cat([readout.reshape(b, -1), last_item(x)], -1)
        return self.mix(mixed)  # (B, d)

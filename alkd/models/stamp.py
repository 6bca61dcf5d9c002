"""STAMP (Liu et al., KDD 2018): short-term attention/memory priority.

Attention over the session memory with the last click ``m_t`` and the
session mean ``m_s`` as the query gives ``m_a``; two MLP cells map ``m_a``
and ``m_t`` to ``h_s`` and ``h_t``; the trilinear score is
``<h_s, h_t, x_v>``, i.e. ``encode(s) = h_s * h_t``.
"""

from __future__ import annotations

import torch
from torch import nn

from alkd.data import SessionBatch
from alkd.models.base import SessionRecommender, last_item, masked_mean


class STAMP(SessionRecommender):
    name = "stamp"

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__(n_items, dim)
        self.w1 = nn.Linear(dim, dim, bias=False)
        self.w2 = nn.Linear(dim, dim, bias=False)
        self.w3 = nn.Linear(dim, dim, bias=True)  # b_a lives here
        self.w0 = nn.Linear(dim, 1, bias=False)
        self.mlp_s = nn.Linear(dim, dim)
        self.mlp_t = nn.Linear(dim, dim)

    def encode(self, batch: SessionBatch) -> torch.Tensor:
        x, mask = self.embed(batch)  # (B, L, d)
        m_s = masked_mean(x, mask)  # (B, d)
        m_t = last_item(x)  # (B, d)

        # alpha_i = w0 . sigmoid(W1 x_i + W2 m_t + W3 m_s + b_a), padding -> 0
        hidden = torch.sigmoid(
            self.w1(x) + (self.w2(m_t) + self.w3(m_s)).unsqueeze(1)
        )  # (B, L, d)
        alpha = self.w0(hidden).squeeze(-1) * mask  # (B, L)
        m_a = (alpha.unsqueeze(-1) * x).sum(1) + m_s  # (B, d)

        h_s = torch.tanh(self.mlp_s(m_a))
        h_t = torch.tanh(self.mlp_t(m_t))
        return h_s * h_t

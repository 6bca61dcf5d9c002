"""FPMC for sessions (Rendle et al. 2010), without a user.

The session factor (mean of the session's item embeddings) plays the user
and a transition embedding of the last item carries the Markov chain:
``score(s, v) = <u_s, e_v> + <t_last, e_v>``. Both terms share the item
factor ``e_v`` so the score is one dot product ``encode(s) . e_v`` in R^d.
(The authors' released notebooks run only the mean-pooling half; this is
the full model.)
"""

from __future__ import annotations

import torch
from torch import nn

from alkd.data import SessionBatch
from alkd.models.base import SessionRecommender, masked_mean


class FPMC(SessionRecommender):
    name = "fpmc"

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__(n_items, dim)
        self.transition = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.transition.weight, std=1.0 / dim**0.5)
        with torch.no_grad():
            self.transition.weight[0].zero_()

    def encode(self, batch: SessionBatch) -> torch.Tensor:
        x, mask = self.embed(batch)  # (B, L, d), (B, L)
        u = masked_mean(x, mask)  # (B, d) session factor
        t = self.transition(batch.items[:, -1])  # (B, d) last-item transition
        return u + t

"""The conventional teacher recommender as a teacher (the TR ablation)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from alkd.data import SessionDataset, make_batch, session_item_sets
from alkd.metrics import exclusion_mask
from alkd.models import SessionRecommender
from alkd.teachers.base import Answer, Cost, TeacherBase


@torch.no_grad()
def top_items(
    model: SessionRecommender,
    sessions: Sequence[Sequence[int]],
    k: int,
    *,
    batch_size: int = 1024,
) -> np.ndarray:
    """Each session's top-``k`` items under ``model``, session items excluded."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(sessions), batch_size):
        part = sessions[start : start + batch_size]
        scores = model.scores(make_batch(part).to(device))  # (B, N)
        mask = exclusion_mask(session_item_sets(part), *scores.shape, scores.device)
        scores = scores.masked_fill(mask, float("-inf"))
        out.append(torch.topk(scores, k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


class RecommenderTeacher(TeacherBase):
    """Ranks sessions with the trained teacher recommender ``T_rec``."""

    def __init__(
        self, model: SessionRecommender, dataset: SessionDataset, k: int = 25
    ) -> None:
        self.model, self.dataset, self.k = model, dataset, k
        self.fingerprint = f"recommender:{model.name}:d{model.dim}:top{k}"

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        start = time.perf_counter()
        split, _ = self.dataset.find_sessions(session_ids)
        tops = top_items(self.model, split.sessions, self.k)
        each = (time.perf_counter() - start) / max(len(tops), 1)
        return {
            int(sid): Answer(int(sid), top.tolist(), Cost(seconds=each, calls=0))
            for sid, top in zip(split.session_ids, tops)
        }


def candidate_sets(
    model: SessionRecommender,
    dataset: SessionDataset,
    session_ids: Sequence[int],
    *,
    kappa: int = 50,
    include_label: bool = False,
) -> dict[int, list[int]]:
    """``C_s``: the teacher recommender's top ``kappa`` items (METHOD.md 4.3).

    With ``include_label`` the true next item replaces the last candidate
    when ``T_rec`` missed it, as the authors' released code does; the label
    is only known for training, so this is refused for valid/test sessions.
    """
    split, code = dataset.find_sessions(session_ids)
    if include_label and (code != 0).any():
        bad = int(split.session_ids[code != 0][0])
        raise ValueError(f"include_label: session {bad} is not a train session")
    tops = top_items(model, split.sessions, kappa)
    out = {}
    for sid, top, label in zip(split.session_ids, tops, split.labels):
        cands = top.tolist()
        if include_label and label not in cands:
            cands[-1] = int(label)
        out[int(sid)] = cands
    return out

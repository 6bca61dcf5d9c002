"""Recorded GPT-4 teacher, recommender teacher and candidate sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from alkd.data import load_dataset
from alkd.models import build_model
from alkd.teachers.base import MissingAnswerError, Teacher
from alkd.teachers.recommender import RecommenderTeacher, candidate_sets, top_items
from alkd.teachers.recorded import RecordedTeacher

DATA = Path(os.environ.get("ALKD_DATA", "../shared/data/alkdrec"))
needs_data = pytest.mark.skipif(
    not (DATA / "ML").is_dir(), reason=f"release data not found at {DATA}"
)


@pytest.fixture(scope="module")
def ml():
    return load_dataset("ML", DATA)


@needs_data
@pytest.mark.parametrize("name, usable, empty", [("ML", 4991, 1), ("Games", 5207, 152)])
def test_recorded_pool_is_the_answered_train_sessions(name, usable, empty):
    ds = load_dataset(name, DATA)
    teacher = RecordedTeacher(ds)
    pool = teacher.pool()
    assert len(pool) == usable and teacher.n_empty == empty
    assert pool.max() < len(ds.train)
    answers = teacher.rank(pool[:200])
    for ranking in answers.values():
        assert 0 < len(ranking) <= 25
        assert len(set(ranking)) == len(ranking)
        assert min(ranking) >= 0 and max(ranking) < ds.n_items


@needs_data
def test_recorded_teacher_refuses_unanswered_sessions(ml):
    teacher = RecordedTeacher(ml)
    assert isinstance(teacher, Teacher)
    unanswered = next(i for i in range(len(ml.train)) if i not in teacher.rankings)
    with pytest.raises(MissingAnswerError, match=f"session {unanswered}"):
        teacher.rank([unanswered])
    with pytest.raises(MissingAnswerError):
        teacher.rank([len(ml.train) + 5])  # a valid-split session


@needs_data
def test_recorded_teacher_drops_the_made_up_id(ml):
    # ML session 3296's recorded answer holds id 9258 (> 8474) and a repeat
    teacher = RecordedTeacher(ml)
    ranking = teacher.rank([3296])[3296]
    assert 9258 not in ranking and len(ranking) == len(set(ranking)) == 23


@needs_data
def test_candidates_are_the_teacher_top_and_can_hold_the_label(ml):
    torch.manual_seed(0)
    model = build_model("stamp", ml.n_items, 8).eval()
    ids = ml.train.session_ids[:50]
    plain = candidate_sets(model, ml, ids, kappa=50)
    forced = candidate_sets(model, ml, ids, kappa=50, include_label=True)
    split, _ = ml.find_sessions(ids)
    for sid, items, label in zip(ids, split.sessions, split.labels):
        assert len(plain[sid]) == 50 and not set(plain[sid]) & set(items)
        assert label in forced[sid]
        if label in plain[sid]:
            assert forced[sid] == plain[sid]
        else:
            assert forced[sid][:49] == plain[sid][:49]
    with pytest.raises(ValueError, match="not a train session"):
        candidate_sets(model, ml, [len(ml.train)], include_label=True)


def test_top_items_matches_a_sort_and_skips_session_items():
    torch.manual_seed(1)
    model = build_model("fpmc", 30, 4).eval()
    sessions = [[1, 2, 3], [4], [5, 5, 6]]
    got = top_items(model, sessions, 5)
    from alkd.data import make_batch

    scores = model.scores(make_batch(sessions)).detach().numpy()
    for row, s in enumerate(sessions):
        order = [i for i in np.argsort(-scores[row], kind="stable") if i not in s][:5]
        assert got[row].tolist() == order


@needs_data
def test_recommender_teacher_ranks_with_costs(ml):
    torch.manual_seed(0)
    teacher = RecommenderTeacher(build_model("stamp", ml.n_items, 8), ml, k=25)
    answers = teacher.answer([0, 1, len(ml.train)])
    assert set(answers) == {0, 1, len(ml.train)}
    assert all(len(a.ranking) == 25 and a.cost.seconds >= 0 for a in answers.values())

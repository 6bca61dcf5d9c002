"""The teacher interface: rank sessions, and say what each answer cost.

A teacher answers ``rank(session_ids) -> {session_id: [item ids, best
first]}``. Every answer also carries a cost record (seconds, tokens and
calls where known) so the efficiency claim of the paper can be measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Cost:
    """What one answer cost; ``None`` where the teacher cannot know."""

    seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    calls: int | None = None


@dataclass(frozen=True)
class Answer:
    """One teacher answer for one session."""

    session_id: int
    ranking: list[int]  # internal item ids, best first (at most 25 for LLMs)
    cost: Cost = field(default_factory=Cost)
    raw: str | None = None  # the model's text where there is one


class MissingAnswerError(KeyError):
    """The teacher was asked about a session it cannot answer."""


@runtime_checkable
class Teacher(Protocol):
    """What distillation and selection need from any teacher."""

    #: stable identifier of the teacher and its settings (the store's key)
    fingerprint: str

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        """Answers with cost records for the given sessions."""
        ...

    def rank(self, session_ids: Sequence[int]) -> dict[int, list[int]]:
        """Rankings only: ``{session_id: [item ids, best first]}``."""
        ...


class TeacherBase:
    """Shared ``rank`` on top of a subclass's ``answer``."""

    fingerprint = "base"

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        raise NotImplementedError

    def rank(self, session_ids: Sequence[int]) -> dict[int, list[int]]:
        return {sid: a.ranking for sid, a in self.answer(session_ids).items()}

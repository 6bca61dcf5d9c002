"""An LLM teacher behind any OpenAI-compatible chat-completions endpoint.

The paper's teacher is GPT-4-turbo asked through an API (METHOD.md section
4). ``ApiTeacher`` sends ``POST {base_url}/chat/completions`` with
``temperature=0`` for each session, at most ``max_concurrency`` at a time,
retries what is worth retrying, and parses the reply with ``parse_ranking``.
Only the standard library is used.

The API key is read from the environment variable named by
``ApiConfig.api_key_env`` and nowhere else; it is sent as a bearer token and
kept out of logs, reprs and error messages.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import operator
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from alkd.teachers.base import Answer, Cost, TeacherBase
from alkd.teachers.parse import RANKING_LENGTH, parse_ranking

log = logging.getLogger(__name__)

#: session id -> (chat messages, the session's candidate item ids, best first)
PromptBuilder = Callable[[int], tuple[list[dict[str, str]], list[int]]]

# 408 is the server saying the request timed out: a timeout, so retried too
RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Settings of an API teacher; validated on construction."""

    #: identity/version of the prompt builder; goes into the fingerprint, so
    #: change it whenever the prompts or candidate sets change
    prompt_version: str
    #: endpoint root; the request goes to ``{base_url}/chat/completions``
    base_url: str = "https://api.openai.com/v1"
    #: the paper's teacher: GPT-4-turbo 2024-04-09 (section 4)
    model: str = "gpt-4-turbo-2024-04-09"
    #: environment variable holding the key; ``None`` sends no key (local server)
    api_key_env: str | None = "OPENAI_API_KEY"
    #: seconds to wait for one HTTP attempt
    timeout_s: float = 60.0
    #: retries after the first attempt (429, 5xx, timeouts, connection errors)
    max_retries: int = 5
    #: backoff before retry n is about base * 2**n, with jitter
    backoff_base_s: float = 1.0
    #: cap on one wait, also on an honoured ``Retry-After``
    backoff_max_s: float = 60.0
    #: requests in flight at once
    max_concurrency: int = 4
    #: completion budget: 25 ids of up to 5 digits need about 150 tokens
    max_tokens: int = 512
    #: ranking length asked for (section 4: 25 of the 50 candidates)
    k: int = RANKING_LENGTH
    #: USD per 1,000 prompt tokens, for cost accounting (optional)
    price_prompt_per_1k: float | None = None
    #: USD per 1,000 completion tokens (optional)
    price_completion_per_1k: float | None = None

    def __post_init__(self) -> None:
        for name in ("prompt_version", "model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.api_key_env is not None and not self.api_key_env:
            raise ValueError("api_key_env must be a variable name or None")
        for name in ("timeout_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.backoff_base_s >= 0:
            raise ValueError(f"backoff_base_s must be >= 0, got {self.backoff_base_s}")
        for name, low in (("max_retries", 0), ("max_concurrency", 1), ("k", 1)):
            _check_int(name, getattr(self, name), low)
        _check_int("max_tokens", self.max_tokens, 1)
        for name in ("price_prompt_per_1k", "price_completion_per_1k"):
            price = getattr(self, name)
            if price is not None and not price >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {price}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ApiConfig:
        """Build from a mapping (a profile), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown ApiConfig keys {unknown}; known: {sorted(known)}"
            )
        return cls(**values)


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class ApiError(RuntimeError):
    """A request failed for good (a non-retried status, or retries used up)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(self, reason: str, status: int | None, retry_after: float | None):
        super().__init__(reason)
        self.status, self.retry_after = status, retry_after


@dataclass
class ApiUsage:
    """Running totals of an API teacher (a snapshot when read)."""

    answers: int = 0  # answers returned
    calls: int = 0  # HTTP attempts, failed ones included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # summed per-answer wall time (overlaps when concurrent)
    filled: int = 0  # answers that needed the fill rule (fewer than k valid ids)
    usd: float | None = None  # None unless both prices are configured


class ApiTeacher(TeacherBase):
    """An LLM teacher asked through an OpenAI-compatible API.

    Args:
        config: endpoint, model, retry and cost settings.
        prompt_builder: ``session_id -> (messages, candidates)``, the chat
            messages and the session's candidate ids in recommender order.

    Raises:
        ValueError: the key's environment variable is unset or empty.
    """

    def __init__(self, config: ApiConfig, prompt_builder: PromptBuilder) -> None:
        self.config = config
        self.prompt_builder = prompt_builder
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        digest = hashlib.sha256(config.prompt_version.encode("utf-8")).hexdigest()
        self.fingerprint = f"api:{config.model}:{digest[:12]}"
        self._api_key = _read_key(config.api_key_env)
        self._usage = ApiUsage()
        self._lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"ApiTeacher(url={self.url!r}, fingerprint={self.fingerprint!r})"

    @property
    def usage(self) -> ApiUsage:
        """Totals so far: answers, HTTP calls, tokens, seconds, USD."""
        with self._lock:
            snapshot = ApiUsage(**vars(self._usage))
        prices = (self.config.price_prompt_per_1k, self.config.price_completion_per_1k)
        if None not in prices:
            snapshot.usd = (
                snapshot.prompt_tokens * prices[0]
                + snapshot.completion_tokens * prices[1]
            ) / 1000
        return snapshot

    # -- asking many -------------------------------------------------------

    def answer(self, session_ids: Sequence[int]) -> dict[int, Answer]:
        """Answers for ``session_ids`` in request order (see ``iter_answers``)."""
        wanted = list(dict.fromkeys(int(sid) for sid in session_ids))
        got = {a.session_id: a for a in self.iter_answers(wanted)}
        return {sid: got[sid] for sid in wanted}

    def iter_answers(self, session_ids: Sequence[int]) -> Iterator[Answer]:
        """Yield answers as they complete, at most ``max_concurrency`` in flight.

        Prompts are built on the calling thread. After the first failure no
        new request starts; the ones in flight are finished and yielded (they
        are paid for), then the failure is raised.
        """
        todo = deque(dict.fromkeys(int(sid) for sid in session_ids))
        limit = self.config.max_concurrency
        failure: BaseException | None = None
        with ThreadPoolExecutor(limit, thread_name_prefix="alkd-api") as pool:
            running: set[Future[Answer]] = set()
            while todo or running:
                while todo and failure is None and len(running) < limit:
                    sid = todo.popleft()
                    try:
                        messages, candidates = self._build(sid)
                    except Exception as err:
                        failure = err
                        break
                    running.add(pool.submit(self._ask, sid, messages, candidates))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is None:
                        yield future.result()
                    elif failure is None:
                        failure = future.exception()
        if failure is not None:
            log.warning("api teacher stopped error=%s not_asked=%d", failure, len(todo))
            raise failure

    def _build(self, sid: int) -> tuple[list[dict[str, str]], list[int]]:
        messages, candidates = self.prompt_builder(sid)
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"prompt_builder({sid}) gave no list of messages")
        for message in messages:
            if not isinstance(message, dict) or not {"role", "content"} <= set(message):
                raise ValueError(
                    f"prompt_builder({sid}) gave a message without role/content"
                )
        candidates = [operator.index(c) for c in candidates]
        if not candidates:
            raise ValueError(f"prompt_builder({sid}) gave no candidates")
        return messages, candidates

    # -- asking one --------------------------------------------------------

    def _ask(
        self, sid: int, messages: list[dict[str, str]], candidates: list[int]
    ) -> Answer:
        start = time.perf_counter()
        payload = {
            "model": self.config.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        }
        data, calls = self._complete(sid, payload)
        content, prompt_tokens, completion_tokens = self._decode(sid, data)
        parsed = parse_ranking(content, candidates, self.config.k)
        seconds = time.perf_counter() - start

        if parsed.n_filled:
            unusable = parsed.n_filled == len(parsed.ranking)
            level = logging.WARNING if unusable else logging.DEBUG
            log.log(level, "answer needed filling session=%d %s", sid, parsed)
        with self._lock:
            self._usage.answers += 1
            self._usage.prompt_tokens += prompt_tokens or 0
            self._usage.completion_tokens += completion_tokens or 0
            self._usage.seconds += seconds
            self._usage.filled += parsed.n_filled > 0
        cost = Cost(seconds, prompt_tokens, completion_tokens, calls)
        return Answer(session_id=sid, ranking=parsed.ranking, cost=cost, raw=content)

    def _complete(self, sid: int, payload: dict[str, Any]) -> tuple[Any, int]:
        """POST with retries; returns the decoded JSON and the attempts made."""
        body = json.dumps(payload).encode("utf-8")
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._post(body), attempt + 1
            except _Retryable as err:
                if attempt + 1 == attempts:
                    raise ApiError(
                        f"session {sid}: {self.url} failed {attempts} times, "
                        f"last: {err}",
                        err.status,
                    ) from None
                delay = self._backoff_s(attempt, err.retry_after)
                log.warning(
                    "retrying session=%d attempt=%d reason=%s wait_s=%.3f",
                    *(sid, attempt + 1, err, delay),
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter, or the server's ``Retry-After``."""
        cap = self.config.backoff_max_s
        if retry_after is not None:
            return min(retry_after, cap)
        delay = min(cap, self.config.backoff_base_s * 2**attempt)
        # "equal jitter": at least half the delay, so waits still grow
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _post(self, body: bytes) -> Any:
        """One HTTP attempt; raises ``_Retryable`` or ``ApiError``."""
        with self._lock:
            self._usage.calls += 1
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as r:
                text = r.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as err:
            raise self._status_error(err) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
            raise _Retryable(self._redact(repr(err)), None, None) from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError | ConnectionError):
                raise _Retryable(self._redact(repr(err.reason)), None, None) from None
            reason = self._redact(str(err.reason))
            raise ApiError(f"cannot reach {self.url}: {reason}") from None
        try:
            return json.loads(text)
        except ValueError:
            snippet = self._redact(text[:200])
            raise ApiError(f"{self.url} answered with non-JSON: {snippet!r}") from None

    def _status_error(self, err: urllib.error.HTTPError) -> Exception:
        try:
            text = err.read(4096).decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException):
            text = ""
        snippet = self._redact(text[:200])
        if err.code in RETRY_STATUSES:
            retry_after = retry_after_s(err.headers.get("Retry-After"))
            return _Retryable(f"HTTP {err.code}: {snippet!r}", err.code, retry_after)
        return ApiError(f"{self.url} returned HTTP {err.code}: {snippet!r}", err.code)

    def _decode(self, sid: int, data: Any) -> tuple[str, int | None, int | None]:
        """The reply text and the token counts of a chat-completions response."""
        try:
            content = data["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            snippet = self._redact(json.dumps(data)[:200])
            raise ApiError(
                f"session {sid}: no choices[0].message in {snippet}"
            ) from None
        if content is None:
            log.warning("empty message content session=%d", sid)
            content = ""
        usage = data.get("usage") or {}
        prompt_tokens = _int_or_none(usage, "prompt_tokens")
        completion_tokens = _int_or_none(usage, "completion_tokens")
        return str(content), prompt_tokens, completion_tokens

    def _redact(self, text: str) -> str:
        # a server may echo the request's headers back in an error body
        return text.replace(self._api_key, "***") if self._api_key else text


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _read_key(name: str | None) -> str | None:
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key.strip():
        raise ValueError(f"environment variable {name} (the API key) is not set")
    return key.strip()


def _int_or_none(usage: Any, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return int(value) if isinstance(value, int | float) else None

"""ApiTeacher against a local fake server, and the answer parser."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import numpy as np
import pytest
from _fake_llm_server import FakeLLMServer, Step, usage_for

from alkd.store import AnswerStore
from alkd.teachers.api import ApiConfig, ApiError, ApiTeacher, retry_after_s
from alkd.teachers.base import Teacher
from alkd.teachers.parse import ParsedRanking, parse_ranking

SECRET = "sk-test-7f3a9c1e-do-not-leak"
KEY_ENV = "ALKD_TEST_API_KEY"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests must go straight to 127.0.0.1, never through a proxy
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv(KEY_ENV, SECRET)


def candidates_of(sid: int) -> list[int]:
    """30 candidates per session, in a known 'recommender order'."""
    return [sid * 100 + j for j in range(30)]


def build_prompt(sid: int) -> tuple[list[dict[str, str]], list[int]]:
    candidates = candidates_of(sid)
    text = f"session={sid} candidates={','.join(map(str, candidates))}"
    messages = [
        {"role": "system", "content": "You rank items."},
        {"role": "user", "content": text},
    ]
    return messages, candidates


def make_teacher(server: FakeLLMServer, **overrides: object) -> ApiTeacher:
    settings: dict[str, object] = dict(
        prompt_version="test-prompts-v1",
        base_url=server.base_url,
        model="fake-model",
        api_key_env=KEY_ENV,
        timeout_s=2.0,
        max_retries=3,
        backoff_base_s=0.01,
        backoff_max_s=0.5,
        max_concurrency=4,
        max_tokens=300,
        price_prompt_per_1k=10.0,
        price_completion_per_1k=30.0,
    )
    settings.update(overrides)
    return ApiTeacher(ApiConfig(**settings), build_prompt)


@pytest.fixture
def server() -> FakeLLMServer:
    with FakeLLMServer() as running:
        yield running


# -- well-behaved answers -------------------------------------------------


def test_good_answers_rankings_costs_and_requests(server: FakeLLMServer) -> None:
    teacher = make_teacher(server)
    answers = teacher.answer([3, 1, 3, 2])

    assert isinstance(teacher, Teacher)
    assert list(answers) == [3, 1, 2]
    for sid, answer in answers.items():
        assert answer.session_id == sid
        assert answer.ranking == candidates_of(sid)[::-1][:25]
        assert answer.raw.startswith("Ranking:\n[")
        assert answer.cost.calls == 1
        assert (answer.cost.prompt_tokens, answer.cost.completion_tokens) == usage_for(
            sid
        )
        assert 0 < answer.cost.seconds < 2

    body = server.bodies[0]
    assert set(body) == {"model", "messages", "temperature", "max_tokens"}
    assert (body["model"], body["temperature"], body["max_tokens"]) == (
        "fake-model",
        0,
        300,
    )
    assert body["messages"][1]["content"].startswith("session=")
    assert server.auth_headers == [f"Bearer {SECRET}"] * 3

    usage = teacher.usage
    assert (usage.answers, usage.calls, usage.filled) == (3, 3, 0)
    assert usage.prompt_tokens == 101 + 102 + 103
    assert usage.completion_tokens == 21 + 22 + 23
    assert usage.usd == pytest.approx((306 * 10.0 + 66 * 30.0) / 1000)
    assert teacher.rank([2]) == {2: candidates_of(2)[::-1][:25]}


def test_usd_is_none_without_prices(server: FakeLLMServer) -> None:
    teacher = make_teacher(server, price_completion_per_1k=None)
    teacher.answer([1])
    assert teacher.usage.usd is None
    assert teacher.usage.prompt_tokens == 101


def bad_reply(sid: int, candidates: list[int]) -> str:
    c = candidates
    replies = {
        1: "I am sorry, I cannot rank these movies.",
        2: f"[999999, {c[5]}, -{c[6]}, 888888, {c[3]}]",
        3: f"```python\n[{c[2]}, {c[2]}, {c[9]}, {c[2]}]\n```",
        4: f"Here you go: [{c[29]}, {c[28]}]. These fit the hints best.",
        5: "",
    }
    return replies[sid]


@pytest.mark.parametrize(
    ("sid", "head"),
    [
        (1, []),  # garbage text: the recommender's top 25
        (2, [5, 3]),  # unknown and negative ids dropped
        (3, [2, 9]),  # duplicates dropped, code fence ignored
        (4, [29, 28]),  # short list, extra text
        (5, []),  # empty answer
    ],
)
def test_bad_answers_are_repaired(sid: int, head: list[int]) -> None:
    with FakeLLMServer(reply=bad_reply) as server:
        answer = make_teacher(server).answer([sid])[sid]
    c = candidates_of(sid)
    expected = [c[j] for j in head]
    expected += [item for item in c if item not in expected][: 25 - len(expected)]
    assert answer.ranking == expected
    assert answer.raw == bad_reply(sid, c)


# -- retries ---------------------------------------------------------------


def test_slow_attempt_times_out_then_retry_succeeds(server: FakeLLMServer) -> None:
    server.plan[7] = [Step(status=None, delay_s=0.6)]
    answer = make_teacher(server, timeout_s=0.15).answer([7])[7]
    assert answer.ranking == candidates_of(7)[::-1][:25]
    assert answer.cost.calls == 2
    assert server.attempts[7] == 2
    assert answer.cost.seconds >= 0.15


def test_timeouts_exhaust_retries(server: FakeLLMServer) -> None:
    server.plan[7] = [Step(status=None, delay_s=0.4)] * 3
    teacher = make_teacher(server, timeout_s=0.1, max_retries=1)
    with pytest.raises(ApiError, match="failed 2 times"):
        teacher.answer([7])
    assert server.attempts[7] == 2
    assert teacher.usage.calls == 2


def test_429_honours_retry_after(server: FakeLLMServer) -> None:
    server.plan[4] = [Step(429, headers={"Retry-After": "0.3"})]
    start = time.perf_counter()
    answer = make_teacher(server, backoff_base_s=0.001).answer([4])[4]
    assert time.perf_counter() - start >= 0.3
    assert answer.cost.calls == 2
    assert answer.cost.seconds >= 0.3


def test_429_without_retry_after_backs_off_briefly(server: FakeLLMServer) -> None:
    server.plan[4] = [Step(429), Step(429)]
    start = time.perf_counter()
    answer = make_teacher(server, backoff_base_s=0.01).answer([4])[4]
    # waits of about 0.01 and 0.02 s: far below the 0.3 s of the test above
    assert time.perf_counter() - start < 0.3
    assert answer.cost.calls == 3
    assert answer.ranking == candidates_of(4)[::-1][:25]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_then_success(server: FakeLLMServer, status: int) -> None:
    server.plan[2] = [Step(status)]
    answer = make_teacher(server).answer([2])[2]
    assert answer.cost.calls == 2
    assert server.attempts[2] == 2


def test_5xx_exhausts_retries_with_status(server: FakeLLMServer) -> None:
    server.plan[2] = [Step(503)] * 10
    with pytest.raises(ApiError, match="failed 3 times") as info:
        make_teacher(server, max_retries=2).answer([2])
    assert info.value.status == 503
    assert server.attempts[2] == 3


def test_dropped_connection_then_success(server: FakeLLMServer) -> None:
    server.plan[6] = [Step(status=0)]
    answer = make_teacher(server).answer([6])[6]
    assert answer.cost.calls == 2


def test_400_is_not_retried_and_error_is_clear(server: FakeLLMServer) -> None:
    server.plan[5] = [Step(400, body="invalid model: " + "x" * 500 + "TAIL")]
    with pytest.raises(ApiError) as info:
        make_teacher(server).answer([5])
    assert server.attempts[5] == 1
    assert info.value.status == 400
    message = str(info.value)
    assert "HTTP 400" in message and "invalid model: xxx" in message
    assert "TAIL" not in message and len(message) < 400


def test_failure_stops_new_requests_but_keeps_answers_in_flight(
    server: FakeLLMServer,
) -> None:
    server.plan[1] = [Step(status=None, delay_s=0.2)]
    server.plan[2] = [Step(401)]
    got = []
    with pytest.raises(ApiError, match="HTTP 401"):
        for answer in make_teacher(server, max_concurrency=2).iter_answers(range(1, 7)):
            got.append(answer.session_id)
    assert got == [1]
    assert sorted(server.attempts) == [1, 2]


# -- the key, concurrency, configuration -------------------------------------


def test_key_is_sent_but_never_logged_or_shown(
    server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.plan[1] = [Step(429), Step(500, body="echo {auth}")]
    server.plan[2] = [Step(403, body="your header was {auth}")]
    caplog.set_level(logging.DEBUG)
    teacher = make_teacher(server)
    teacher.answer([1])
    with pytest.raises(ApiError) as info:
        teacher.answer([2])

    assert server.auth_headers == [f"Bearer {SECRET}"] * 4
    assert "your header was Bearer ***" in str(info.value)
    assert any("retrying" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
    assert SECRET not in caplog.text
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert SECRET not in repr(teacher) and SECRET not in repr(teacher.config)


def test_missing_key_is_a_clear_error(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match=KEY_ENV):
        make_teacher(server)


def test_no_key_sends_no_authorization(server: FakeLLMServer) -> None:
    make_teacher(server, api_key_env=None).answer([1])
    assert server.auth_headers == [None]


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_limit_holds(limit: int) -> None:
    with FakeLLMServer(delay_s=0.05) as server:
        teacher = make_teacher(server, max_concurrency=limit)
        answers = teacher.answer(range(10))
    assert server.max_in_flight == limit
    assert sorted(answers) == list(range(10))
    assert teacher.usage.calls == 10


def test_fingerprint_follows_model_and_prompt_version(server: FakeLLMServer) -> None:
    first = make_teacher(server).fingerprint
    assert first.startswith("api:fake-model:") and len(first) > len("api:fake-model:")
    assert make_teacher(server, timeout_s=9.0).fingerprint == first
    assert make_teacher(server, prompt_version="v2").fingerprint != first
    assert make_teacher(server, model="other").fingerprint.startswith("api:other:")


@pytest.mark.parametrize(
    "bad",
    [
        {"prompt_version": ""},
        {"base_url": "ftp://example.org"},
        {"base_url": "not a url"},
        {"timeout_s": 0},
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"max_tokens": 0},
        {"k": 1.5},
        {"backoff_base_s": -1.0},
        {"price_prompt_per_1k": -0.1},
        {"api_key_env": ""},
    ],
)
def test_config_refuses_bad_values(bad: dict[str, object]) -> None:
    settings = {"prompt_version": "v1", **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        ApiConfig(**settings)


def test_config_from_dict_refuses_unknown_keys() -> None:
    assert ApiConfig.from_dict({"prompt_version": "v1"}).model.startswith("gpt-4")
    with pytest.raises(ValueError, match="temprature"):
        ApiConfig.from_dict({"prompt_version": "v1", "temprature": 0})


def test_bad_prompt_builder_output_is_refused(server: FakeLLMServer) -> None:
    config = ApiConfig(prompt_version="v", base_url=server.base_url, api_key_env=None)
    no_candidates = ApiTeacher(
        config, lambda sid: ([{"role": "user", "content": ""}], [])
    )
    with pytest.raises(ValueError, match="no candidates"):
        no_candidates.answer([1])
    no_role = ApiTeacher(config, lambda sid: ([{"text": "hi"}], [1, 2]))
    with pytest.raises(ValueError, match="role/content"):
        no_role.answer([1])
    assert server.bodies == []


def test_retry_after_parsing() -> None:
    assert retry_after_s("2") == 2.0
    assert retry_after_s("0.25") == 0.25
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_s(later) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_s(earlier) == 0.0


def test_store_fill_asks_the_api_once(server: FakeLLMServer, tmp_path) -> None:
    teacher = make_teacher(server, max_concurrency=3)
    with AnswerStore(tmp_path / "answers.sqlite") as store:
        first = store.fill("ML", teacher, [5, 6, 7, 8], progress=False)
        again = store.fill("ML", teacher, [8, 5, 9], progress=False)
    assert list(first) == [5, 6, 7, 8] and list(again) == [8, 5, 9]
    assert sorted(server.attempts) == [5, 6, 7, 8, 9]
    assert sum(server.attempts.values()) == 5
    assert again[8].ranking == candidates_of(8)[::-1][:25]
    assert again[8].cost.prompt_tokens == usage_for(8)[0]


# -- parse_ranking ---------------------------------------------------------

C = list(range(10, 20))  # ten candidates in 'recommender order'


@pytest.mark.parametrize(
    ("text", "ranking", "counts"),
    [
        ("[12, 15, 11, 19, 10]", [12, 15, 11, 19, 10], (5, 0, 0, 0)),
        ("```python\n[13, 14]\n```", [13, 14, 10, 11, 12], (2, 0, 0, 3)),
        ("Sure: [17, 16, 18, 10, 11]. Also 42.", [17, 16, 18, 10, 11], (5, 0, 0, 0)),
        ("", [10, 11, 12, 13, 14], (0, 0, 0, 5)),
        (None, [10, 11, 12, 13, 14], (0, 0, 0, 5)),
        ("[99, 12, -13, 13]", [12, 13, 10, 11, 14], (4, 2, 0, 3)),
        ("[12.0, 13.5, 14.00]", [12, 14, 10, 11, 13], (3, 1, 0, 3)),
        ("[15, 15, 16, 15]", [15, 16, 10, 11, 12], (4, 0, 2, 3)),
        ("[19, 18, 17, 16, 15, 14, 13]", [19, 18, 17, 16, 15], (7, 0, 0, 0)),
        ("[\n  11,\n  12,\n]", [11, 12, 10, 13, 14], (2, 0, 0, 3)),
        ("1. 18\n2. 17\n3) 16", [18, 17, 16, 10, 11], (3, 0, 0, 2)),
        ("I would pick 14, then 12", [14, 12, 10, 11, 13], (2, 0, 0, 3)),
        ("[Answer]: [13, 12]", [13, 12, 10, 11, 14], (2, 0, 0, 3)),
        ("[19, 18, 1", [19, 18, 10, 11, 12], (3, 1, 0, 3)),
        ("['14', \"13\"]", [14, 13, 10, 11, 12], (2, 0, 0, 3)),
        ("ids 11-12", [11, 12, 10, 13, 14], (2, 0, 0, 3)),
        ("[item11, 12]", [12, 10, 11, 13, 14], (1, 0, 0, 4)),
    ],
)
def test_parse_ranking_known_answers(
    text: str | None, ranking: list[int], counts: tuple[int, int, int, int]
) -> None:
    parsed = parse_ranking(text, C, k=5)
    assert parsed == ParsedRanking(ranking, *counts)


def test_parse_ranking_small_candidate_sets() -> None:
    assert parse_ranking("[3]", [1, 2, 3], k=5).ranking == [3, 1, 2]
    assert parse_ranking("[6]", np.array([5, 5, 6]), k=5).ranking == [6, 5]
    assert parse_ranking("[1, 2]", [], k=5) == ParsedRanking([], 2, 2, 0, 0)
    with pytest.raises(ValueError, match="k must"):
        parse_ranking("[1]", [1], k=0)


def test_parse_ranking_matches_a_brute_force_reference() -> None:
    rng = random.Random(0)
    candidates = rng.sample(range(1000, 2000), 50)
    for _ in range(200):
        pool = candidates + [5, 77, 3000]
        tokens = [rng.choice(pool) for _ in range(rng.randint(0, 40))]
        text = "noise " + str(tokens) + " 1234 more noise"
        expected: list[int] = []
        for t in tokens:
            if t in candidates and t not in expected:
                expected.append(t)
        expected = expected[:25]
        expected += [c for c in candidates if c not in expected][: 25 - len(expected)]
        parsed = parse_ranking(text, candidates)
        assert parsed.ranking == expected
        assert parsed.n_parsed == len(tokens)


def test_api_config_from_environment(monkeypatch):
    from alkd.remote_teacher import api_config_from_env

    monkeypatch.setenv("ALKD_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ALKD_API_MODEL", "local-model")
    monkeypatch.setenv("ALKD_API_KEY_ENV", "")  # a local server needs no key
    config = api_config_from_env("v1")
    assert config.base_url == "http://127.0.0.1:9/v1"
    assert config.model == "local-model" and config.api_key_env is None

    monkeypatch.delenv("ALKD_API_BASE")
    monkeypatch.delenv("ALKD_API_KEY_ENV")
    default = api_config_from_env("v1")
    assert default.base_url.startswith("https://api.openai.com")
    assert default.api_key_env == "OPENAI_API_KEY"

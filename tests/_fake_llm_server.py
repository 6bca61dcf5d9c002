"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1.

Tests start it on port 0 in a thread. The test's prompt builder writes
``session=<id> candidates=<id>,<id>,...`` into the last message, so the
server knows which session it answers. Per session, ``plan[sid]`` lists
scripted misbehaviours (``Step``) used by the first attempts, in order;
later attempts get the normal reply ``reply(sid, candidates)``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v1/chat/completions"
_SESSION = re.compile(r"session=(\d+) candidates=([\d,]*)")


@dataclass
class Step:
    """One scripted attempt: wait ``delay_s``, then answer with ``status``.

    ``status=None`` sends the normal reply (after the delay: a slow
    success, or a client timeout when the delay is long enough);
    ``status=0`` closes the connection without a response; other statuses
    send ``body`` (``{auth}`` in it is replaced by the Authorization header
    received) with ``headers``.
    """

    status: int | None = 500
    delay_s: float = 0.0
    body: str = '{"error": {"message": "scripted failure"}}'
    headers: dict[str, str] = field(default_factory=dict)


def reversed_reply(sid: int, candidates: list[int]) -> str:
    """A well-behaved answer: the candidates in reverse order, as a list."""
    return "Ranking:\n[" + ", ".join(str(c) for c in reversed(candidates)) + "]"


def usage_for(sid: int) -> tuple[int, int]:
    """The (prompt, completion) token counts this server reports."""
    return 100 + sid, 20 + sid


class FakeLLMServer:
    """Start with ``with FakeLLMServer() as server:``; ``server.base_url``."""

    def __init__(
        self,
        reply: Callable[[int, list[int]], str] = reversed_reply,
        delay_s: float = 0.0,
    ) -> None:
        self.reply = reply
        self.delay_s = delay_s  # added to every request (concurrency tests)
        self.plan: dict[int, list[Step]] = {}
        self.attempts: Counter[int] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # a short poll interval makes shutdown quick (the default waits 0.5 s)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.01,), daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_step(self, sid: int) -> Step | None:
        """The scripted step of this attempt (counts the attempt)."""
        with self.lock:
            attempt = self.attempts[sid]
            self.attempts[sid] += 1
            steps = self.plan.get(sid, [])
            return steps[attempt] if attempt < len(steps) else None

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_POST(self) -> None:
            server.enter()
            self._counted = True
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left
            finally:
                self._leave()

        def _leave(self) -> None:
            # leave before the reply goes out: once the client has its answer
            # it may start the next request before this thread runs on
            if self._counted:
                self._counted = False
                server.leave()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            auth = self.headers.get("Authorization")
            with server.lock:
                server.bodies.append(body)
                server.auth_headers.append(auth)
            if self.path != PATH:
                self._send(404, '{"error": "no such path"}', {})
                return
            match = _SESSION.search(body["messages"][-1]["content"])
            sid = int(match.group(1))
            candidates = [int(c) for c in match.group(2).split(",") if c]

            step = server.next_step(sid)
            time.sleep(server.delay_s + (step.delay_s if step else 0.0))
            if step is not None and step.status == 0:
                # no response at all: the client sees the connection drop
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif step is not None and step.status is not None:
                text = step.body.replace("{auth}", auth or "")
                self._send(step.status, text, step.headers)
            else:
                self._send(200, json.dumps(_completion(sid, candidates)), {})

        def _send(self, status: int, text: str, headers: dict[str, str]) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self._leave()
            self.wfile.write(data)

    def _completion(sid: int, candidates: list[int]) -> dict[str, Any]:
        prompt_tokens, completion_tokens = usage_for(sid)
        content = server.reply(sid, candidates)
        return {
            "id": f"fake-{sid}",
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return Handler

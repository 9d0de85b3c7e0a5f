"""The HTTP base every service client stands on, against a real HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from videogen_resources.errors import ServiceError
from videogen_resources.http import (
    HttpPolicy,
    HttpService,
    redact,
    retry_after_seconds,
    server_message,
)

SECRET = "sk-test-very-secret-0123456789"


@dataclass
class Answer:
    """One scripted answer: status, body, headers, and a delay before it is sent."""

    status: int = 200
    body: object = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class ScriptedServer(ThreadingHTTPServer):
    """Answers from a queue (then 200 ``{"ok": true}``), counting connections and requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: deque[Answer] = deque()
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def next_answer(self) -> Answer:
        with self.lock:
            return self.answers.popleft() if self.answers else Answer()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a reused client sends many requests on one
    server: ScriptedServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, dict(self.headers.items())))
        answer = self.server.next_answer()
        if answer.delay_s:
            time.sleep(answer.delay_s)
        if isinstance(answer.body, str | bytes):
            data = answer.body.encode() if isinstance(answer.body, str) else answer.body
            ctype = "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(answer.body).encode(), "application/json"
        self.send_response(answer.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def service(server: ScriptedServer, **policy: object) -> HttpService:
    settings: dict[str, object] = {"backoff_s": 0.01, "max_retries": 2, "read_s": 5.0}
    settings.update(policy)
    return HttpService(
        "test",
        base_url=server.url,
        policy=HttpPolicy(**settings),  # type: ignore[arg-type]
        headers={"Authorization": f"Bearer {SECRET}"},
        secrets=lambda: [SECRET],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one client for the resource's lifetime ----------------------------------------------------


def test_one_client_and_one_connection_serve_many_requests(server: ScriptedServer) -> None:
    http = service(server)
    client = http.client
    for i in range(10):
        assert http.request("GET", f"/item/{i}").json() == {"ok": True}
    assert http.client is client
    assert len(server.requests) == 10
    assert server.connections == 1  # kept alive, not one connection (or client) per request
    http.close()
    http.request("GET", "/again")  # a closed service makes a new client on the next call
    assert http.client is not client
    assert server.connections == 2
    http.close()


def test_a_forked_process_makes_its_own_client(server: ScriptedServer) -> None:
    http = service(server)
    http.request("GET", "/parent")
    inherited = http.client
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's pooled sockets are not its to use
        ok = http.client is not inherited and http.request("GET", "/child").status_code == 200
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert http.client is inherited  # the parent's client is untouched
    assert server.connections == 2
    http.close()


def test_timeouts_are_explicit() -> None:
    policy = HttpPolicy(connect_s=2.0, read_s=7.0, write_s=3.0, pool_s=1.0)
    timeout = HttpService("test", policy=policy).client.timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (2.0, 7.0, 3.0, 1.0)
    default = HttpService("test", policy=HttpPolicy(connect_s=2.0, read_s=7.0)).client.timeout
    assert (default.connect, default.read, default.write, default.pool) == (2.0, 7.0, 7.0, 2.0)


# -- retries -------------------------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured(server: ScriptedServer) -> None:
    server.answers.append(Answer(429, {"error": "slow down"}, {"Retry-After": "0.5"}))
    started = time.monotonic()
    assert service(server).request("GET", "/x").status_code == 200
    assert time.monotonic() - started >= 0.5
    assert len(server.requests) == 2


def test_retry_after_as_an_http_date_is_honoured_and_capped(server: ScriptedServer) -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    server.answers.append(Answer(503, "busy", {"Retry-After": soon}))
    started = time.monotonic()
    service(server, max_backoff_s=0.3).request("GET", "/x")
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.5  # the date asked for ~2 s; the policy caps a wait at 0.3 s
    assert len(server.requests) == 2


def test_retry_after_values() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:10 GMT", now=now) == 10.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    assert HttpPolicy(max_backoff_s=5.0).delay(1, retry_after=60.0) == 5.0
    assert HttpPolicy(max_backoff_s=5.0, max_retry_after_s=30.0).delay(1, retry_after=60.0) == 30
    assert [HttpPolicy(backoff_s=1.0, max_backoff_s=5.0).delay(n) for n in (1, 2, 3, 4)] == [
        1.0,
        2.0,
        4.0,
        5.0,
    ]


def test_retries_are_bounded_and_say_so(server: ScriptedServer) -> None:
    server.answers.extend(Answer(502, {"message": "bad gateway"}) for _ in range(5))
    with pytest.raises(ServiceError) as info:
        service(server, max_retries=2).request("GET", "/x")
    err = info.value
    assert (err.service, err.status, err.retryable) == ("test", 502, True)
    assert err.server_message == "bad gateway"
    assert "gave up after 3 attempts" in str(err)
    assert len(server.requests) == 3


def test_an_unsafe_post_is_not_retried(server: ScriptedServer) -> None:
    server.answers.append(Answer(503, {"detail": "try later"}))
    with pytest.raises(ServiceError) as info:
        service(server).request("POST", "/jobs", json={"n": 1})
    assert info.value.status == 503 and info.value.retryable
    assert len(server.requests) == 1


def test_a_post_declared_safe_is_retried(server: ScriptedServer) -> None:
    server.answers.append(Answer(503, {"detail": "try later"}))
    assert service(server).request("POST", "/speak", safe=True, json={}).status_code == 200
    assert [r[:2] for r in server.requests] == [("POST", "/speak"), ("POST", "/speak")]


def test_statuses_outside_the_retry_set_fail_at_once(server: ScriptedServer) -> None:
    server.answers.append(Answer(500, "boom"))
    with pytest.raises(ServiceError) as info:
        service(server).request("GET", "/x")
    assert info.value.status == 500 and not info.value.retryable
    assert len(server.requests) == 1
    server.answers.append(Answer(500, "boom"))
    with_500 = service(server, retry_statuses=frozenset({500}))
    assert with_500.request("GET", "/x").status_code == 200  # a service may add 500


def test_a_refused_connection_is_retried_even_for_an_unsafe_post() -> None:
    http = HttpService(
        "test",
        base_url=f"http://127.0.0.1:{free_port()}",
        policy=HttpPolicy(backoff_s=0.01, max_retries=2),
    )
    with pytest.raises(ServiceError) as info:
        http.request("POST", "/jobs")
    assert info.value.retryable and info.value.status is None
    assert "ConnectError" in str(info.value) and "gave up after 3 attempts" in str(info.value)


# -- failures as ServiceError --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"error": {"message": "Model Not Exist", "type": "invalid_request_error"}},
            "Model Not Exist",
        ),
        ({"error": "queue full"}, "queue full"),
        ({"message": "bad voice"}, "bad voice"),
        ({"detail": {"error": {"message": "CUDA out of memory"}}}, "CUDA out of memory"),
        (
            {"detail": [{"loc": ["body", "speed"], "msg": "must be positive", "type": "x"}]},
            "speed: must be positive",
        ),
        ("plain text from a proxy", "plain text from a proxy"),
        ({"unexpected": 1}, '{"unexpected": 1}'),
    ],
)
def test_errors_carry_the_status_and_the_servers_message(
    server: ScriptedServer, body: object, message: str
) -> None:
    server.answers.append(Answer(400, body))
    with pytest.raises(ServiceError) as info:
        service(server).request("GET", "/thing")
    err = info.value
    assert (err.service, err.status, err.retryable) == ("test", 400, False)
    assert err.server_message == message
    assert "GET /thing failed" in str(err) and message in str(err)
    assert len(server.requests) == 1


def test_a_long_server_message_is_truncated(server: ScriptedServer) -> None:
    server.answers.append(Answer(400, "x" * 10_000))
    with pytest.raises(ServiceError) as info:
        service(server, message_chars=300).request("GET", "/x")
    assert info.value.server_message == "x" * 300


def test_advice_names_what_a_status_means(server: ScriptedServer) -> None:
    http = service(server)
    http.advice = {404: "not found (is the voice right?)"}.get
    server.answers.append(Answer(404, {"detail": "no such voice"}))
    with pytest.raises(ServiceError, match=r"GET /v: not found \(is the voice right\?\)"):
        http.request("GET", "/v")


def test_check_false_returns_the_error_answer(server: ScriptedServer) -> None:
    server.answers.append(Answer(404, "nope"))
    assert service(server).request("GET", "/x", check=False).status_code == 404
    server.answers.extend([Answer(503), Answer(503)])
    assert service(server).request("GET", "/x", retries=1, check=False).status_code == 503
    assert len(server.requests) == 3


def test_a_timeout_is_a_service_error(server: ScriptedServer) -> None:
    server.answers.extend([Answer(delay_s=1.0), Answer(delay_s=1.0)])
    http = service(server, read_s=0.2, max_retries=1)
    with pytest.raises(ServiceError) as info:
        http.request("GET", "/slow")
    err = info.value
    assert err.retryable and err.status is None
    assert "ReadTimeout" in str(err) and "timed out" in str(err)
    assert len(server.requests) == 2  # a safe call that timed out is tried again


def test_a_policy_may_leave_timeouts_unrepeated(server: ScriptedServer) -> None:
    server.answers.append(Answer(delay_s=1.0))
    with pytest.raises(ServiceError, match="timed out"):
        service(server, read_s=0.2, retry_timeouts=False).request("GET", "/slow")
    assert len(server.requests) == 1


def test_a_broken_stream_is_a_service_error(server: ScriptedServer) -> None:
    http = service(server)
    server.answers.append(Answer(delay_s=1.0))
    http.policy = HttpPolicy(read_s=0.2)
    http.close()
    with pytest.raises(ServiceError, match="ReadTimeout"), http.stream("GET", "/file") as resp:
        resp.read()


# -- secrets -------------------------------------------------------------------------------------


def test_secrets_never_reach_messages_logs_or_repr(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"Invalid key {SECRET} (sk-***6789)"}}
    server.answers.extend([Answer(429, echo), Answer(401, echo)])
    http = service(server)
    with pytest.raises(ServiceError) as info:
        http.request("GET", "/x")
    shown = [str(info.value), repr(info.value.server_message), repr(http), caplog.text]
    assert all(SECRET not in text and "6789" not in text for text in shown)
    assert server.requests[0][2]["Authorization"] == f"Bearer {SECRET}"  # but it was sent
    assert redact(f"key={SECRET}", [SECRET]) == "key=***"


def test_server_message_of_a_response() -> None:
    response = httpx.Response(500, json={"detail": "model not loaded"})
    assert server_message(response) == "model not loaded"
    assert server_message(httpx.Response(502, text="  <html>Bad Gateway</html> ")) == (
        "<html>Bad Gateway</html>"
    )

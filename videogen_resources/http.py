"""One HTTP client base for the studio's services (ComfyUI, Chatterbox, the LLM, source pages).

An `HttpService` holds one ``httpx.Client`` for its resource's lifetime (made on first use in
each process, closed by `HttpService.close`), with explicit connect/read/write/pool timeouts.
`HttpService.request` is the one place that retries: only a call that is safe to repeat (an
idempotent method, or a POST its service declares safe) is repeated, on a failed connection, a
timeout (when the policy says so) or a status of the policy's retry set, after an exponential
back-off with a cap or the server's ``Retry-After`` (seconds or an HTTP date, capped). Every
failure becomes a `ServiceError` carrying the status and what the server said (its JSON
``error``/``message``/``detail`` field, or its text, truncated), with the service's secrets
removed from every message and log line.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from videogen_resources.errors import ServiceError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses worth repeating a safe call for: rate limited, and a proxy or server not ready."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_MASKED_KEY = re.compile(r"\*{3,}[A-Za-z0-9_-]{1,12}")  # a server's echo such as "sk-***abcd"

T = TypeVar("T")


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retries of one service's HTTP calls."""

    connect_s: float = 5.0
    read_s: float = 30.0
    write_s: float | None = None  # None: the read timeout
    pool_s: float | None = None  # waiting for a free pooled connection; None: connect_s
    max_retries: int = 3
    backoff_s: float = 0.5  # first delay; doubles each retry
    max_backoff_s: float = 30.0
    max_retry_after_s: float | None = None  # cap of a server's Retry-After; None: max_backoff_s
    retry_statuses: frozenset[int] = RETRY_STATUSES
    retry_timeouts: bool = True  # a safe call whose answer timed out is repeated
    message_chars: int = 2000  # most characters of a server's message kept

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_s,
            read=self.read_s,
            write=self.read_s if self.write_s is None else self.write_s,
            pool=self.connect_s if self.pool_s is None else self.pool_s,
        )

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        if retry_after is not None:
            cap = self.max_backoff_s if self.max_retry_after_s is None else self.max_retry_after_s
            return max(0.0, min(cap, retry_after))
        return max(0.0, min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1)))


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from now: delta-seconds or an HTTP date; None if
    absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def server_message(response: httpx.Response, limit: int = 2000) -> str:
    """What a server said in an error answer: its JSON ``error``/``message``/``detail`` field
    (nested, or a FastAPI validation list), else its text; truncated to ``limit``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:limit]
    text = _message_of(body)
    return (text if text is not None else json.dumps(body))[:limit]


def _message_of(body: Any, depth: int = 0) -> str | None:
    if depth > 3:
        return None
    if isinstance(body, str):
        return body
    if isinstance(body, list) and body:  # FastAPI request validation: [{loc, msg, type}, ...]
        parts = []
        for item in body:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", []) if p != "body"]
                where = ".".join(loc)
                msg = str(item.get("msg", ""))
                parts.append(f"{where}: {msg}" if where else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if key in body:
                found = _message_of(body[key], depth + 1)
                if found:
                    return found
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, and any masked echo of one (``***abcd``), replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _MASKED_KEY.sub("***", text)


def _path_of(url: str) -> str:
    return urlsplit(url).path or "/"


@dataclass
class HttpService:
    """One service's HTTP client: a pooled ``httpx.Client`` reused across calls, one request
    method owning retries, every failure a `ServiceError`.

    ``base_url`` may be empty, then calls take absolute URLs (one client for several servers).
    ``secrets`` gives the strings never to show (API keys); ``advice`` says what an error
    status means for this service (put after ``"<METHOD> <path>: "`` in the error's message).
    """

    service: str
    base_url: str = ""
    policy: HttpPolicy = field(default_factory=HttpPolicy)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a key
    secrets: Callable[[], Iterable[str]] = field(default=lambda: (), repr=False)
    advice: Callable[[int], str | None] | None = field(default=None, repr=False)
    follow_redirects: bool = False
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _pid: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- the client ----------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """The pooled client, made on first use in this process."""
        client, pid = self._client, os.getpid()
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is None or self._pid != pid:
                # a forked child never uses (or closes) its parent's sockets
                self._client = httpx.Client(
                    base_url=self.base_url.rstrip("/"),
                    timeout=self.policy.timeout(),
                    headers=self.headers,
                    follow_redirects=self.follow_redirects,
                )
                self._pid = pid
            return self._client

    def close(self) -> None:
        """Close the connection pool (a later call makes a new one)."""
        with self._lock:
            client, self._client = self._client, None
            if client is not None and self._pid == os.getpid():
                client.close()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())

    def where(self, url: str) -> str:
        """``url`` as written in messages (the base URL put before a relative path)."""
        if "://" in url or not self.base_url:
            return url
        return self.base_url.rstrip("/") + "/" + url.lstrip("/")

    # -- calls ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        safe: bool | None = None,
        retries: int | None = None,
        check: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call, repeated where safe; returns the answer (below 400 unless ``check`` is
        False) or raises `ServiceError`.

        ``safe``: the call may be repeated (None: when the method is idempotent). ``retries``
        overrides the policy's count. A connection that could not be made sent nothing, so it
        is retried even for an unsafe call. With ``check`` False the last error answer is
        returned to the caller instead of raised.
        """
        method = method.upper()

        def attempt(final: bool) -> httpx.Response:
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                raise self.transport_error(exc, method, url) from exc
            if response.status_code < 400:
                return response
            error = self.status_error(response, method, url)
            if not check and (final or not error.retryable):
                return response
            if error.retryable:
                error.retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise error

        if safe is None:
            safe = method in IDEMPOTENT_METHODS
        return self.retrying(attempt, what=f"{method} {_path_of(url)}", safe=safe, retries=retries)

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """One streamed call, not repeated (run it inside `retrying`): a failed connection or a
        broken or timed-out answer becomes `ServiceError`. The caller checks the status."""
        try:
            with self.client.stream(method.upper(), url, **kwargs) as response:
                yield response
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, method.upper(), url) from exc

    def retrying(
        self,
        attempt: Callable[[bool], T],
        *,
        what: str,
        safe: bool = True,
        retries: int | None = None,
    ) -> T:
        """Run ``attempt`` until it returns, repeating it after a retryable `ServiceError` while
        the budget lasts (when not ``safe``, only after a connection that was never made).

        ``attempt`` is told whether an error answer would be the last one tried. Waits follow
        the policy: the error's ``retry_after`` when the server gave one, else back-off.
        """
        budget = max(0, self.policy.max_retries if retries is None else retries)
        tries = 0
        while True:
            tries += 1
            try:
                return attempt(tries > budget or not safe)
            except ServiceError as error:
                cause = error.__cause__
                unsent = isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
                slow = isinstance(cause, httpx.TimeoutException) and not unsent
                if (
                    not error.retryable
                    or tries > budget
                    or not (safe or unsent)
                    or (slow and not self.policy.retry_timeouts)
                ):
                    if tries > 1 and error.retryable:
                        raise ServiceError(
                            self.service,
                            f"gave up after {tries} attempts: {error.message}",
                            status=error.status,
                            server_message=error.server_message,
                            retryable=True,
                        ) from error
                    raise
                delay = self.policy.delay(tries, error.retry_after)
                log.warning(
                    "%s: %s failed (%s); retry %d of %d in %.2fs",
                    self.service,
                    what,
                    self.redact(str(error)),
                    tries,
                    budget,
                    delay,
                )
                time.sleep(delay)

    # -- failures ------------------------------------------------------------------------------

    def transport_error(self, exc: httpx.HTTPError, method: str, url: str) -> ServiceError:
        """A failed connection, a broken or timed-out answer, as a `ServiceError`."""
        where = self.where(url)
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            text = f"cannot connect to {where}: {type(exc).__name__}: {exc}"
            retryable = True
        elif isinstance(exc, httpx.TimeoutException):
            text = f"{method} {where} timed out: {type(exc).__name__}: {exc}"
            retryable = True
        else:
            text = f"{method} {where} failed: {type(exc).__name__}: {exc}"
            retryable = isinstance(exc, httpx.TransportError)
        error = ServiceError(self.service, self.redact(text), retryable=retryable)
        error.__cause__ = exc
        return error

    def status_error(
        self, response: httpx.Response, method: str, url: str, *, retryable: bool | None = None
    ) -> ServiceError:
        """An error answer as a `ServiceError` with the status and the server's message."""
        status = response.status_code
        advice = self.advice(status) if self.advice is not None else None
        what = f"{method} {_path_of(url)}"
        text = f"{what}: {advice}" if advice else f"{what} failed"
        return ServiceError(
            self.service,
            self.redact(text),
            status=status,
            server_message=self.redact(server_message(response, self.policy.message_chars)),
            retryable=(status in self.policy.retry_statuses) if retryable is None else retryable,
        )

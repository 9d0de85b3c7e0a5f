"""Process-wide bookkeeping of ComfyUI servers and jobs: each server's load and state, the jobs
this process has queued, and stopping them all at once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection

from videogen_resources.comfyui.models import SERVICE, ObjectInfo
from videogen_resources.errors import ServiceError
from videogen_resources.http import HttpPolicy, HttpService


@dataclass
class ServerState:
    """What this process knows about one server."""

    in_flight: int = 0
    down_until: float = 0.0
    object_info: ObjectInfo | None = None
    object_info_at: float = 0.0
    version: str | None = None


@dataclass
class Registry:
    """Every server's state, by normalized URL."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    servers: dict[str, ServerState] = field(default_factory=dict)

    def state(self, url: str) -> ServerState:
        with self.lock:
            return self.servers.setdefault(url, ServerState())


REGISTRY = Registry()


def norm_url(url: str) -> str:
    """A server URL as the registry keys it: with a scheme, without a trailing slash."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


@dataclass(eq=False)
class QueuedJob:
    """A prompt queued on one server by `ComfyUIResource.submit`, bound to that server.

    It holds the WebSocket opened for it (its own client id) and counts as in flight on its
    server until `ComfyUIResource.finish` or `ComfyUIResource.cancel` releases it.
    """

    server: str
    prompt_id: str
    client_id: str
    workflow: dict[str, Any]
    outputs_dir: Path
    output_nodes: list[str] | None
    start: float  # time.monotonic() just before the prompt was posted
    say: Callable[[str], None]
    cancel_check: Callable[[], bool] | None
    _ws: ClientConnection | None
    _state: ServerState
    _released: bool = False

    def __post_init__(self) -> None:
        with REGISTRY.lock:
            LIVE_JOBS.add(self)

    @property
    def released(self) -> bool:
        return self._released

    def take_ws(self) -> ClientConnection:
        """Hand the WebSocket over (to the follower, which closes it)."""
        ws, self._ws = self._ws, None
        if ws is None:
            raise RuntimeError(f"ComfyUI prompt {self.prompt_id} is already being followed")
        return ws

    def release(self) -> None:
        """Close the WebSocket if still held and stop counting the job as in flight (once)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if not self._released:
            self._released = True
            with REGISTRY.lock:
                self._state.in_flight -= 1
                LIVE_JOBS.discard(self)


LIVE_JOBS: set[QueuedJob] = set()  # queued by this process and not yet finished or cancelled


def stop_live_jobs(
    timeout_s: float = 1.0, *, cancel_check: Callable[[], bool] | None = None
) -> list[str]:
    """Take every prompt this process has queued or running off its server, at once and from
    any thread (a render stopped by Ctrl-C, a run cancelled in the UI): the waiting prompts are
    deleted from each server's queue first, then the running ones interrupted. In the other
    order a server starts the next waiting prompt the moment the running one stops, and that
    prompt can no longer be deleted. With ``cancel_check``, only the jobs queued with that
    check (one step's batch). Returns their prompt ids; the followers then see the prompts end
    as interrupted. Never raises."""
    with REGISTRY.lock:
        jobs = [
            job for job in LIVE_JOBS if cancel_check is None or job.cancel_check is cancel_check
        ]
    jobs.sort(key=lambda job: job.start)  # queue order: the running one first
    by_server: dict[str, list[str]] = {}
    for job in jobs:
        by_server.setdefault(job.server, []).append(job.prompt_id)
    http = HttpService(
        SERVICE, policy=HttpPolicy(connect_s=timeout_s, read_s=timeout_s, max_retries=0)
    )
    try:
        for server, ids in by_server.items():
            with contextlib.suppress(ServiceError):
                http.request("POST", f"{server}/queue", json={"delete": ids})
        for job in jobs:
            with contextlib.suppress(ServiceError):
                http.request("POST", f"{job.server}/interrupt", json={"prompt_id": job.prompt_id})
    finally:
        http.close()
    return [job.prompt_id for job in jobs]


class ServerUnreachable(Exception):
    """A server that cannot be reached: the job goes to another one."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error

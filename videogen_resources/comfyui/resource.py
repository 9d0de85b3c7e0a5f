"""The ComfyUI resource: its settings, the choice of server, and running a job end to end."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr
from websockets.exceptions import InvalidHandshake, InvalidURI

from videogen_resources.comfyui.client import RETRY_STATUSES_COMFYUI, ComfyUIClient
from videogen_resources.comfyui.follower import Follower
from videogen_resources.comfyui.models import (
    SAFE_TYPES,
    SERVICE,
    HistoryEntry,
    ObjectInfo,
    OutputFile,
    QueueState,
    RunResult,
    SystemStats,
    safe_subfolder,
    sanitize_filename,
)
from videogen_resources.comfyui.pool import (
    REGISTRY,
    QueuedJob,
    ServerUnreachable,
    norm_url,
)
from videogen_resources.errors import ServiceError
from videogen_resources.http import HttpPolicy

log = logging.getLogger(__name__)


def _env_flag(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in {"0", "false", "no", "off"}


class ComfyUIResource(dg.ConfigurableResource):
    """One or several ComfyUI servers, each its own GPU slot; jobs go to the least busy one."""

    urls: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8188"],
        description="Base URLs of the ComfyUI servers (each one a GPU slot).",
    )
    timeout_s: float = Field(
        default=300.0,
        description="Wall-clock limit of one generation, queueing included.",
    )
    connect_timeout_s: float = Field(default=5.0, description="TCP/WebSocket connect timeout.")
    read_timeout_s: float = Field(default=30.0, description="Read timeout of one HTTP call.")
    max_retries: int = Field(
        default=3,
        description="Retries of a safe call on connection errors, HTTP 429 and 5xx.",
    )
    backoff_s: float = Field(default=0.5, description="First retry delay; doubles each retry.")
    max_backoff_s: float = Field(
        default=30.0, description="Longest single retry delay (a server's Retry-After too)."
    )
    max_download_bytes: int = Field(
        default=2 * 1024**3,
        description="Refuse output files larger than this many bytes.",
    )
    poll_interval_s: float = Field(
        default=2.0,
        description="How often /history is polled when the WebSocket is silent.",
    )
    down_cooldown_s: float = Field(
        default=30.0,
        description="How long a server that refused connections stays out.",
    )
    object_info_ttl_s: float = Field(
        default=300.0,
        description="How long a server's /object_info is cached in-process.",
    )
    server_folder: str = Field(
        default="videogen",
        description="Subfolder of ComfyUI's input/ and output/ the studio writes into, one "
        "folder per project below it (uploads and generated files).",
    )
    cleanup: bool = Field(
        default_factory=lambda: _env_flag("COMFYUI_CLEANUP", default=True),
        description="Delete the studio's generated files on the server once downloaded (needs "
        "comfyui_dir: ComfyUI has no HTTP endpoint that deletes files). Env COMFYUI_CLEANUP.",
    )
    comfyui_dir: str | None = Field(
        default_factory=lambda: os.environ.get("COMFYUI_DIR") or None,
        description="ComfyUI's base folder (holding input/ and output/) as this machine sees "
        "it, when it does (same machine or a mounted share). Env COMFYUI_DIR.",
    )
    step_log_interval_s: float = Field(
        default=2.0,
        description="Sampler progress (step n/m) is logged at a sampler's first and last step "
        "and at most this often in between.",
    )
    resubmit_lost: bool = Field(
        default=True,
        description="A prompt its server lost (ComfyUI restarted: after the WebSocket reconnects "
        "the prompt is in neither /queue nor /history) is queued again once with the same "
        "inputs and seed; False fails it at once.",
    )

    _client: ComfyUIClient | None = PrivateAttr(default=None)

    # ----------------------------------------------------------------------------- plumbing

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (it is made again on the next call)."""
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> ComfyUIClient:
        """The HTTP client of this resource, made on first use and kept for its lifetime."""
        if self._client is None:
            self._client = ComfyUIClient(
                HttpPolicy(
                    connect_s=self.connect_timeout_s,
                    read_s=self.read_timeout_s,
                    max_retries=self.max_retries,
                    backoff_s=self.backoff_s,
                    max_backoff_s=self.max_backoff_s,
                    retry_statuses=RETRY_STATUSES_COMFYUI,
                    retry_timeouts=False,
                ),
                max_download_bytes=self.max_download_bytes,
                object_info_ttl_s=self.object_info_ttl_s,
            )
        return self._client

    def _servers(self) -> list[str]:
        if not self.urls:
            raise ServiceError(SERVICE, "no ComfyUI server URL configured")
        return [norm_url(u) for u in self.urls]

    def _base(self, server: str | None) -> str:
        return norm_url(server) if server else self._servers()[0]

    # ------------------------------------------------------------------ one remote operation each

    def system_stats(self, server: str | None = None) -> SystemStats:
        """GET /system_stats."""
        return self.client.system_stats(self._base(server))

    def object_info(self, server: str | None = None, *, cached: bool = False) -> ObjectInfo:
        """GET /object_info, parsed (both choice-list forms); ``cached`` reuses a recent answer."""
        return self.client.object_info(self._base(server), cached=cached)

    def queue_prompt(
        self, workflow: dict[str, Any], client_id: str, server: str | None = None
    ) -> str:
        """POST /prompt; returns the prompt id. A 400 fails at once with node errors rendered."""
        return self.client.queue_prompt(self._base(server), workflow, client_id)

    def history(self, prompt_id: str, server: str | None = None) -> HistoryEntry | None:
        """GET /history/{prompt_id}; None when the server does not know it (answers ``{}``)."""
        return self.client.history(self._base(server), prompt_id)

    def queue(self, server: str | None = None) -> QueueState:
        """GET /queue: which prompts run and wait."""
        return self.client.queue(self._base(server))

    def interrupt(self, prompt_id: str | None = None, server: str | None = None) -> None:
        """POST /interrupt (only ``prompt_id`` when given, so other jobs are left alone)."""
        self.client.interrupt(self._base(server), prompt_id)

    def delete_queued(self, prompt_ids: list[str], server: str | None = None) -> None:
        """POST /queue ``{"delete": [...]}``: drop prompts that are still waiting (a prompt that
        already runs is left alone; interrupt it)."""
        self.client.delete_queued(self._base(server), prompt_ids)

    def upload_image(
        self,
        path: str | Path,
        server: str | None = None,
        *,
        overwrite: bool = False,
        subfolder: str = "",
        name: str | None = None,
    ) -> str:
        """POST /upload/image (into ``subfolder`` of the server's input/, as ``name`` when
        given); returns the name to put in LoadImage (the server may rename)."""
        return self.client.upload_image(
            self._base(server), Path(path), overwrite=overwrite, subfolder=subfolder, name=name
        )

    def download(
        self,
        filename: str,
        subfolder: str,
        type: str,
        dest_dir: str | Path,
        server: str | None = None,
        *,
        dest_name: str | None = None,
    ) -> Path:
        """GET /view into ``dest_dir`` (never outside it), atomically, refusing files too large."""
        return self.client.download(
            self._base(server), filename, subfolder, type, dest_dir, dest_name=dest_name
        )

    # ---------------------------------------------------------------------------- scheduling

    def server_loads(self) -> dict[str, int | None]:
        """Each server's load: its /queue (running + pending prompts); None = down."""
        loads: dict[str, int | None] = {}
        now = time.monotonic()
        for url in self._servers():
            state = REGISTRY.state(url)
            if state.down_until > now:
                loads[url] = None
                continue
            try:
                q = self.queue(url)
            except ServiceError:
                state.down_until = now + self.down_cooldown_s
                loads[url] = None
                continue
            # The server's own queue (running + pending) is the truth: a job of ours that the
            # server has finished but that we have not downloaded yet no longer keeps it busy.
            loads[url] = q.size
        return loads

    def pick_server(self, exclude: set[str] | None = None) -> str:
        """The least busy server that is up (ties: the first configured)."""
        exclude = exclude or set()
        loads = {u: v for u, v in self.server_loads().items() if u not in exclude}
        up = {u: v for u, v in loads.items() if v is not None}
        if not up:
            raise ServiceError(
                SERVICE,
                "no ComfyUI server is reachable: " + ", ".join(self._servers()),
                retryable=True,
            )
        # ties: fewer of our own jobs not yet collected, then the first configured
        return min(up, key=lambda u: (up[u] or 0, REGISTRY.state(u).in_flight))

    def mark_down(self, server: str) -> None:
        """Take a server out of rotation for ``down_cooldown_s``."""
        REGISTRY.state(norm_url(server)).down_until = time.monotonic() + self.down_cooldown_s

    # ---------------------------------------------------------------------------- run a job

    def run_workflow(
        self,
        workflow: dict[str, Any] | Callable[[str], dict[str, Any]],
        *,
        outputs_dir: str | Path,
        progress: Callable[[str], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
        output_nodes: list[str] | None = None,
    ) -> RunResult:
        """Run one API-format workflow on the least busy server and download its outputs.

        The WebSocket is opened before queueing (so no message is missed); the run is followed
        to completion, then history is read and the outputs (of ``output_nodes`` when given)
        are downloaded into ``outputs_dir``. ``workflow`` may be a function of the chosen
        server's URL that builds the prompt there (e.g. after uploading images to it).
        This is `submit` followed by `finish`.
        """
        job = self.submit(
            workflow,
            outputs_dir=outputs_dir,
            progress=progress,
            cancel_check=cancel_check,
            output_nodes=output_nodes,
        )
        return self.finish(job)

    def submit(
        self,
        workflow: dict[str, Any] | Callable[[str], dict[str, Any]],
        *,
        outputs_dir: str | Path,
        progress: Callable[[str], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
        output_nodes: list[str] | None = None,
    ) -> QueuedJob:
        """Queue one workflow on the least busy server without waiting for it.

        Opens the job's own WebSocket, then POSTs the prompt; a server that cannot be reached
        is taken out of rotation and the next one is tried. The job counts as in flight on its
        server until `finish` or `cancel` is called with the handle returned (exactly one of
        them must be, or the WebSocket stays open and the server looks busier than it is).
        """
        tried: set[str] = set()
        last: ServiceError | None = None
        for _ in range(len(self._servers())):
            server = self.pick_server(exclude=tried)
            tried.add(server)
            state = REGISTRY.state(server)
            with REGISTRY.lock:
                state.in_flight += 1
            try:
                try:
                    prompt = workflow(server) if callable(workflow) else workflow
                except ServiceError as exc:
                    if exc.retryable and exc.status is None:
                        raise ServerUnreachable(exc) from exc
                    raise
                return self._submit_on(
                    server,
                    prompt,
                    outputs_dir=Path(outputs_dir),
                    progress=progress,
                    cancel_check=cancel_check,
                    output_nodes=output_nodes,
                )
            except ServerUnreachable as exc:
                log.warning("ComfyUI %s unreachable, trying another server: %s", server, exc)
                self.mark_down(server)
                last = exc.error
                with REGISTRY.lock:
                    state.in_flight -= 1
            except BaseException:
                with REGISTRY.lock:
                    state.in_flight -= 1
                raise
        assert last is not None
        raise last

    def finish(
        self,
        job: QueuedJob,
        *,
        on_finished: Callable[[], None] | None = None,
    ) -> RunResult:
        """Follow a queued job to completion, read its history and download its outputs.

        Errors are those of `run_workflow`; a timeout, a ``cancel_check`` that turns True or
        an interruption from outside (KeyboardInterrupt, run termination) interrupts the prompt
        on its server. The wall-clock limit counts from the call, so a job queued ahead behind
        another one is not charged for that wait. ``on_finished`` is called once the prompt
        has finished successfully on its server, before its outputs are downloaded (a batch
        queues its next job there, while the server starts the one queued behind this one).
        """
        if job.released:
            raise RuntimeError(f"ComfyUI prompt {job.prompt_id} was already finished or cancelled")
        try:
            return self._finish(job, on_finished)
        finally:
            job.release()

    def cancel(self, job: QueuedJob) -> None:
        """Take a job that will not be finished off its server: delete it from the queue when it
        still waits there, interrupt it when it already runs. Never raises ServiceError."""
        if job.released:
            return
        try:
            with contextlib.suppress(ServiceError):
                self.delete_queued([job.prompt_id], job.server)
            with contextlib.suppress(ServiceError):
                self.interrupt(job.prompt_id, job.server)
            job.say(f"ComfyUI {job.server}: prompt {job.prompt_id} cancelled")
        finally:
            job.release()

    def remove_server_files(
        self,
        files: list[OutputFile],
        say: Callable[[str], None] | None = None,
        *,
        types: tuple[str, ...] = ("output", "temp"),
    ) -> list[Path]:
        """Delete files from the server's folders (``comfyui_dir``); returns what was deleted.
        ComfyUI has no HTTP endpoint that deletes files, so without ``comfyui_dir`` nothing can
        be deleted. Only files of ``types`` (downloaded outputs unless told) below
        ``server_folder`` are touched: never another client's."""
        if not self.comfyui_dir:
            return []
        base = Path(self.comfyui_dir).expanduser()
        own = self.server_folder.strip("/")
        removed: list[Path] = []
        for out in files:
            if out.type not in types or out.type not in SAFE_TYPES or not own:
                continue
            sub = out.subfolder.replace("\\", "/").strip("/")
            if sub != own and not sub.startswith(own + "/"):
                continue
            try:
                safe_subfolder(sub)
                name = sanitize_filename(out.filename)
            except ValueError:
                continue
            folder = (base / out.type).resolve()
            target = (folder / sub / name).resolve()
            if not target.is_relative_to(folder / own):
                continue
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
                removed.append(target)
        if removed and say is not None:
            say(f"ComfyUI: removed {len(removed)} file(s) of ours from {base}")
        return removed

    def remove_uploads(self, names: list[str], say: Callable[[str], None] | None = None) -> None:
        """Delete pictures uploaded for a finished job (names as `upload_image` answered them)
        from the server's input/ (``comfyui_dir``), when ``cleanup`` is on."""
        if not self.cleanup:
            return
        files = []
        for name in names:
            sub, _, filename = name.rpartition("/")
            files.append(OutputFile(node_id="", filename=filename, subfolder=sub, type="input"))
        self.remove_server_files(files, say, types=("input",))

    def _submit_on(
        self,
        server: str,
        workflow: dict[str, Any],
        *,
        outputs_dir: Path,
        progress: Callable[[str], None] | None,
        cancel_check: Callable[[], bool] | None,
        output_nodes: list[str] | None,
    ) -> QueuedJob:
        client_id = uuid.uuid4().hex
        say = progress or (lambda _line: None)
        try:
            ws = self.client.open_ws(server, client_id)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ServerUnreachable(
                ServiceError(SERVICE, f"cannot open WebSocket to {server}: {exc}", retryable=True)
            ) from exc
        start = time.monotonic()
        try:
            prompt_id = self.queue_prompt(workflow, client_id, server)
        except ServiceError as exc:
            with contextlib.suppress(Exception):
                ws.close()
            if exc.retryable and exc.status is None:
                raise ServerUnreachable(exc) from exc
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                ws.close()
            raise
        say(f"ComfyUI {server}: queued prompt {prompt_id}")
        return QueuedJob(
            server=server,
            prompt_id=prompt_id,
            client_id=client_id,
            workflow=workflow,
            outputs_dir=outputs_dir,
            output_nodes=output_nodes,
            start=start,
            say=say,
            cancel_check=cancel_check,
            _ws=ws,
            _state=REGISTRY.state(server),
        )

    def _finish(self, job: QueuedJob, on_finished: Callable[[], None] | None) -> RunResult:
        server, prompt_id, say = job.server, job.prompt_id, job.say
        follower = Follower(
            self,
            server,
            job.client_id,
            prompt_id,
            job.take_ws(),
            job.start,
            say,
            job.cancel_check,
            job.workflow,
        )
        follower.deadline = max(follower.deadline, time.monotonic() + self.timeout_s)
        try:
            entry = follower.follow()
        finally:
            job.prompt_id = prompt_id = follower.prompt_id
        if on_finished is not None:
            on_finished()
        files: list[Path] = []
        outputs = entry.outputs if entry is not None else []
        if not outputs:
            outputs = follower.executed_outputs
        if job.output_nodes is not None:
            outputs = [o for o in outputs if o.node_id in set(job.output_nodes)]
        job.outputs_dir.mkdir(parents=True, exist_ok=True)
        for out in outputs:
            files.append(
                self.download(out.filename, out.subfolder, out.type, job.outputs_dir, server)
            )
        if self.cleanup:
            self.remove_server_files(outputs, say)
        elapsed = time.monotonic() - job.start
        say(f"ComfyUI {server}: prompt {prompt_id} done in {elapsed:.1f}s, {len(files)} file(s)")
        return RunResult(
            prompt_id=prompt_id,
            server=server,
            client_id=job.client_id,
            files=files,
            outputs=outputs,
            progress=follower.events,
            cached_nodes=follower.cached,
            elapsed_s=elapsed,
            reconnects=follower.reconnects,
            lost_prompt=follower.resubmitted,
        )

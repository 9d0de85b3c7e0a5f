"""Following one ComfyUI prompt over its WebSocket to the end: progress, reconnects, history
polls, a prompt lost by a restarted server, timeouts and cancellation."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection

from videogen_resources.comfyui.models import (
    SERVICE,
    HistoryEntry,
    OutputFile,
    ProgressEvent,
    files_of_node,
)
from videogen_resources.comfyui.pool import stop_live_jobs
from videogen_resources.errors import ServiceError

if TYPE_CHECKING:
    from videogen_resources.comfyui.resource import ComfyUIResource


class Follower:
    """Follows one prompt over the WebSocket, reconnecting and polling /history as needed."""

    def __init__(
        self,
        res: ComfyUIResource,
        server: str,
        client_id: str,
        prompt_id: str,
        ws: ClientConnection,
        start: float,
        say: Callable[[str], None],
        cancel_check: Callable[[], bool] | None,
        workflow: dict[str, Any],
    ) -> None:
        self.res, self.server, self.client_id, self.prompt_id = res, server, client_id, prompt_id
        self.ws: ClientConnection | None = ws
        self.start, self.say, self.cancel_check = start, say, cancel_check
        self.workflow = workflow
        self.events: list[ProgressEvent] = []
        self.cached: list[str] = []
        self.executed_outputs: list[OutputFile] = []
        self.reconnects = 0
        self.deadline = start + res.timeout_s
        self.last_poll = time.monotonic()
        self.last_step_at = 0.0
        self.resubmitted: str | None = None  # the lost prompt's id, once queued again

    def _event(
        self,
        kind: str,
        text: str = "",
        node: str | None = None,
        value: float | None = None,
        maximum: float | None = None,
    ) -> None:
        self.events.append(
            ProgressEvent(
                t=round(time.monotonic() - self.start, 4),
                kind=kind,
                node=node,
                value=value,
                max=maximum,
                text=text,
            )
        )

    def _class_of(self, node: str | None) -> str:
        item = self.workflow.get(node or "") if node else None
        return str(item.get("class_type")) if isinstance(item, dict) else "?"

    def follow(self) -> HistoryEntry | None:
        try:
            return self._follow()
        except ServiceError:
            raise
        except BaseException:
            # Stopped from outside (KeyboardInterrupt, Dagster's run termination) or by a bug:
            # the prompt would otherwise go on using the GPU with nobody waiting for it.
            self._interrupt()
            raise
        finally:
            self._close()

    def _close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close()
            self.ws = None

    def _follow(self) -> HistoryEntry | None:
        poll = max(0.05, self.res.poll_interval_s)
        while True:
            now = time.monotonic()
            if self.cancel_check is not None and self.cancel_check():
                # the prompts of this batch waiting behind this one go first: interrupted
                # alone, this one would hand the GPU to the next
                stopped = stop_live_jobs(cancel_check=self.cancel_check)
                if self.prompt_id in stopped:
                    self._event("interrupt_sent")
                else:  # (queued again after a restart, under a new id)
                    self._interrupt()
                raise ServiceError(SERVICE, f"prompt {self.prompt_id} cancelled")
            if now >= self.deadline:
                self._interrupt()
                raise ServiceError(
                    SERVICE,
                    f"prompt {self.prompt_id} on {self.server} ran past its "
                    f"{self.res.timeout_s:g}s timeout and was interrupted",
                    retryable=False,
                )
            if self.ws is None:
                self._reconnect()
                if self.ws is not None:
                    entry = self._after_reconnect()
                    if entry is not None:
                        return entry
            if self.ws is None:  # still no socket: poll history
                entry = self._poll_history(force=True)
                if entry is not None:
                    return entry
                time.sleep(min(poll, max(0.0, self.deadline - time.monotonic())))
                continue
            try:
                msg = self.ws.recv(timeout=min(poll, max(0.01, self.deadline - now)))
            except TimeoutError:
                entry = self._poll_history()
                if entry is not None:
                    return entry
                continue
            except (ConnectionClosed, OSError) as exc:
                self.say(f"ComfyUI {self.server}: WebSocket dropped ({exc}); reconnecting")
                self._event("ws_dropped", str(exc))
                self._close()
                entry = self._poll_history(force=True)
                if entry is not None:
                    return entry
                continue
            if isinstance(msg, bytes):
                continue  # preview frames
            done = self._handle(msg)
            if done:
                return self._final_history()

    def _reconnect(self) -> None:
        try:
            self.ws = self.res.client.open_ws(self.server, self.client_id)
            self.reconnects += 1
            self._event("ws_reconnected")
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError):
            self.ws = None

    def _after_reconnect(self) -> HistoryEntry | None:
        """After a reconnect: the prompt's history when it finished meanwhile; None when it is
        still queued or running. A prompt in neither /queue nor /history was lost by a server
        restart: it is queued again once (same inputs, same seed), or fails at once."""
        try:
            queue = self.res.queue(self.server)
            if self.prompt_id in queue.running or self.prompt_id in queue.pending:
                return None
            # read after /queue: a prompt leaves the queue and enters history in one step
            entry = self.res.history(self.prompt_id, self.server)
        except ServiceError:
            return None  # cannot tell now; the next drop or poll looks again
        if entry is not None:
            if not entry.finished:
                return None
            self._raise_if_failed(entry)
            return entry
        lost = self.prompt_id
        self._event("prompt_lost", lost)
        if self.resubmitted is not None or not self.res.resubmit_lost:
            again = (
                f" (it had been queued again after prompt {self.resubmitted} was lost)"
                if self.resubmitted is not None
                else ""
            )
            raise ServiceError(
                SERVICE,
                f"ComfyUI {self.server} restarted and lost prompt {lost}{again}; "
                "check the server, then render again",
                retryable=False,
            )
        self.prompt_id = self.res.queue_prompt(self.workflow, self.client_id, self.server)
        self.resubmitted = lost
        self.executed_outputs = []
        self.deadline = max(self.deadline, time.monotonic() + self.res.timeout_s)
        self._event("resubmitted", self.prompt_id)
        self.say(
            f"ComfyUI {self.server} restarted and lost prompt {lost}; queued it again as "
            f"{self.prompt_id} (same inputs, same seed)"
        )
        return None

    def _interrupt(self) -> None:
        with contextlib.suppress(ServiceError):
            self.res.interrupt(self.prompt_id, self.server)
        self._event("interrupt_sent")

    def _poll_history(self, force: bool = False) -> HistoryEntry | None:
        now = time.monotonic()
        if not force and now - self.last_poll < self.res.poll_interval_s:
            return None
        self.last_poll = now
        try:
            entry = self.res.history(self.prompt_id, self.server)
        except ServiceError:
            return None
        if entry is None or not entry.finished:
            return None
        self._raise_if_failed(entry)
        return entry

    def _final_history(self) -> HistoryEntry | None:
        # History is written just before the final messages; read it once, briefly retrying.
        for _ in range(5):
            entry = self.res.history(self.prompt_id, self.server)
            if entry is not None and entry.finished:
                self._raise_if_failed(entry)
                return entry
            time.sleep(0.1)
        return None

    def _raise_if_failed(self, entry: HistoryEntry) -> None:
        if entry.status_str != "error":
            return
        err = entry.message("execution_error")
        if err is not None:
            raise self._execution_error(err)
        intr = entry.message("execution_interrupted")
        if intr is not None:
            raise self._interrupted(intr)
        raise ServiceError(SERVICE, f"prompt {self.prompt_id} failed on {self.server}")

    def _execution_error(self, data: dict[str, Any]) -> ServiceError:
        node = data.get("node_id")
        node_type = data.get("node_type") or self._class_of(str(node) if node else None)
        exc_msg = str(data.get("exception_message") or "").strip()
        exc_type = str(data.get("exception_type") or "")
        return ServiceError(
            SERVICE,
            f"execution error in node {node} ({node_type}): {exc_type}: {exc_msg}".rstrip(": "),
            server_message=exc_msg or None,
            retryable=False,
        )

    def _interrupted(self, data: dict[str, Any]) -> ServiceError:
        node = data.get("node_id")
        return ServiceError(
            SERVICE,
            f"prompt {self.prompt_id} was interrupted at node {node} "
            f"({data.get('node_type') or self._class_of(node)})",
        )

    def _handle(self, raw: str) -> bool:
        try:
            msg = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(msg, dict):
            return False
        kind = str(msg.get("type"))
        raw_data = msg.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        pid = data.get("prompt_id")
        if pid is not None and pid != self.prompt_id:
            return False  # another client's or another prompt's message
        if kind == "execution_start":
            self._event(kind, "started")
            self.say(f"ComfyUI {self.server}: prompt {self.prompt_id} started")
        elif kind == "execution_cached":
            nodes = [str(n) for n in data.get("nodes") or []]
            self.cached.extend(nodes)
            self._event(kind, f"{len(nodes)} cached")
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                if pid == self.prompt_id:
                    self._event(kind, "finished")
                    return True
                return False
            self._event(kind, self._class_of(str(node)), node=str(node))
            self.say(f"ComfyUI: node {node} ({self._class_of(str(node))})")
        elif kind == "progress":
            value, maximum = data.get("value"), data.get("max")
            node = data.get("node")
            self._event(
                kind,
                node=str(node) if node else None,
                value=float(value) if isinstance(value, int | float) else None,
                maximum=float(maximum) if isinstance(maximum, int | float) else None,
            )
            if isinstance(value, int | float) and isinstance(maximum, int | float) and maximum:
                # the first and last step of a sampler, and between them one line every
                # step_log_interval_s: enough to follow it in the run's log, not a flood
                now = time.monotonic()
                first, last = value <= 1, value >= maximum
                if first or last or now - self.last_step_at >= self.res.step_log_interval_s:
                    self.last_step_at = now
                    self.say(
                        f"ComfyUI: node {node} ({self._class_of(str(node))}) "
                        f"step {int(value)}/{int(maximum)}"
                    )
        elif kind == "executed":
            node = str(data.get("node"))
            out = data.get("output") if isinstance(data.get("output"), dict) else {}
            files = files_of_node(node, out or {})
            self.executed_outputs = [o for o in self.executed_outputs if o.node_id != node]
            self.executed_outputs.extend(files)
            self._event(kind, f"{len(files)} file(s)", node=node)
        elif kind == "execution_success":
            self._event(kind, "success")
            return True
        elif kind == "execution_error":
            self._event(
                kind, str(data.get("exception_message") or ""), node=str(data.get("node_id"))
            )
            raise self._execution_error(data)
        elif kind == "execution_interrupted":
            self._event(kind, node=str(data.get("node_id")))
            raise self._interrupted(data)
        elif kind == "progress_state":
            pass  # per-node state; `executing`/`progress` carry what the studio reports
        return False

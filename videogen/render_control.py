"""How `videogen render` is held, stopped and reported: one render per project at a time, one
Ctrl-C stops it (the run canceled, its services told, nothing retried), a failure leaves a log.

- The project lock is ``<studio>/locks/<project>.render.lock``, held with ``flock`` for as long
  as the render runs; it records the holder's pid, host, render id and start time. The kernel
  drops the lock when its process dies however it ends, so a lock left by a killed render is
  never "stale": the next render simply takes it.
- A stop request (SIGINT, SIGTERM) marks the render's unfinished Dagster runs CANCELING and asks
  every step of this process to stop (`videogen_assets.cancel`): a ComfyUI prompt is
  interrupted and the prompts still queued are deleted, no step is retried and the runs end
  CANCELED. The render gives its steps `STOP_GRACE_S` to wind down, then stops regardless; a
  second Ctrl-C stops at once.
- A failed render writes the full event log of its runs (with every stack trace) to
  ``<studio>/logs/render-<project>-<time>.log``; the console gets one line naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import dagster as dg

from videogen_assets.cancel import clear_stop, request_stop, stop_requested, stop_service_jobs
from videogen_assets.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    no_compute_log_capture,
)
from videogen_domain.atomic import atomic_write_text
from videogen_domain.errors import InputError

STOP_GRACE_S = 1.5
"""Seconds a stopped render waits for its steps to end by themselves."""

RENDER_TAG = "videogen/render"
PROJECT_TAG = "videogen_domain/project"

_UNFINISHED = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.QUEUED,
)


class RenderBusy(InputError):
    """Another render of the project holds its lock."""


class RenderFailed(InputError):
    """A render failed; the message says why and where its full log is."""

    def __init__(self, message: str, log_file: Path | None) -> None:
        self.log_file = log_file
        where = f" (full log: {log_file})" if log_file else ""
        super().__init__(f"{message}{where}")


class RenderCanceled(Exception):
    """A render stopped by Ctrl-C (or SIGTERM)."""

    def __init__(self, project: str, run_ids: list[str], *, abandoned: bool) -> None:
        self.project = project
        self.run_ids = run_ids
        self.abandoned = abandoned  # steps still running in this process: exit without waiting
        runs = ", ".join(r[:8] for r in run_ids) or "none started"
        super().__init__(
            f"render of {project!r} canceled (runs marked canceled: {runs}); "
            f"run `videogen render {project}` to continue"
        )


# ------------------------------------------------------------------------------------ lock


def lock_path(root: Path, project: str) -> Path:
    """The render lock file of a project."""
    return root / "locks" / f"{project}.render.lock"


@dataclass
class RenderLock:
    """The held lock of one project (release it with `release`, or let the process end)."""

    path: Path
    handle: IO[str]

    def note(self, **facts: Any) -> None:
        """Rewrite the holder's facts in the lock file (pid, host, render, runs)."""
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps(facts))
        self.handle.flush()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.seek(0)
            self.handle.truncate()
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def holder_text(facts: dict[str, Any], instance: dg.DagsterInstance | None = None) -> str:
    """Who holds a lock, in words: pid, host, render id and its Dagster run in progress."""
    pid, host = facts.get("pid", "?"), facts.get("host", "?")
    render = str(facts.get("render", "?"))
    runs: list[str] = []
    if instance is not None and render != "?":
        with contextlib.suppress(Exception):
            runs = [
                r.run_id
                for r in instance.get_runs(
                    dg.RunsFilter(tags={RENDER_TAG: render}, statuses=list(_UNFINISHED)), limit=3
                )
            ]
    run = f"run {runs[0]}" if runs else f"render {render[:8]}"
    return f"{run}, pid {pid} on {host}, since {facts.get('started', '?')}"


def acquire_lock(
    root: Path,
    project: str,
    *,
    wait: bool = False,
    instance: dg.DagsterInstance | None = None,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.2,
) -> RenderLock:
    """Take the project's render lock, or raise `RenderBusy` naming its holder (``wait``: wait
    for it, telling ``on_wait`` once who holds it)."""
    path = lock_path(root, project)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    told = False
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            who = holder_text(_holder(handle), instance)
            if not wait:
                handle.close()
                raise RenderBusy(
                    f"project {project!r} is being rendered by {who}; wait for it, stop it, "
                    "or run `videogen render --wait` to start when it ends",
                    field="project",
                ) from None
            if not told and on_wait is not None:
                on_wait(f"waiting for the render of {project!r} held by {who}")
                told = True
            time.sleep(poll_s)
    return RenderLock(path=path, handle=handle)


# --------------------------------------------------------------------------- runs in progress


def busy_partitions(
    instance: dg.DagsterInstance, project: str, ordered_keys: list[str], mine: str
) -> tuple[dict[str, set[str]], list[str]]:
    """Per asset kind of ``project``, the partitions that a run not of this render (one launched
    by the daemon's automation, a backfill, the UI) is making now; and those runs' ids.
    A run without a partition over a partitioned asset counts as making all of them."""
    busy: dict[str, set[str]] = {}
    runs: list[str] = []
    index = {k: i for i, k in enumerate(ordered_keys)}
    for run in instance.get_runs(dg.RunsFilter(statuses=list(_UNFINISHED))):
        if run.tags.get(RENDER_TAG) == mine:
            continue
        kinds = [k.path[-1] for k in run.asset_selection or () if k.path[0] == project]
        if not kinds:
            continue
        tags = run.tags
        if PARTITION_NAME_TAG in tags:
            parts = {tags[PARTITION_NAME_TAG]}
        elif ASSET_PARTITION_RANGE_START_TAG in tags:
            lo = index.get(tags[ASSET_PARTITION_RANGE_START_TAG], 0)
            hi = index.get(tags.get(ASSET_PARTITION_RANGE_END_TAG, ""), len(ordered_keys) - 1)
            parts = set(ordered_keys[lo : hi + 1])
        else:
            parts = set(ordered_keys) | {""}  # "" stands for an unpartitioned asset
        for kind in kinds:
            busy.setdefault(kind, set()).update(parts)
        runs.append(run.run_id)
    return busy, runs


# ------------------------------------------------------------------------------------- stop


class Stopper:
    """Watches for SIGINT/SIGTERM while a render runs its work in a worker thread."""

    def __init__(self, instance: dg.DagsterInstance, render_tag: str) -> None:
        self.instance = instance
        self.render_tag = render_tag
        self.requested = threading.Event()
        self.marked: list[str] = []

    def _handler(self, signo: int, frame: FrameType | None) -> None:
        if self.requested.is_set():
            os._exit(130)  # a second Ctrl-C: stop now
        request_stop()
        self.requested.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Route SIGINT and SIGTERM to this stopper (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, self._handler)
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _runs(self, statuses: tuple[dg.DagsterRunStatus, ...]) -> list[dg.DagsterRun]:
        return list(
            self.instance.get_runs(
                dg.RunsFilter(tags={RENDER_TAG: self.render_tag}, statuses=list(statuses))
            )
        )

    def mark_canceling(self) -> None:
        """Mark the render's unfinished runs CANCELING (their steps see it and stop)."""
        for run in self._runs(_UNFINISHED):
            if run.status != dg.DagsterRunStatus.CANCELING:
                with contextlib.suppress(Exception):
                    self.instance.report_run_canceling(run, message="canceled by Ctrl-C")
            self.marked.append(run.run_id)

    def finish(self) -> list[str]:
        """After the stop: every run of the render that did not end CANCELED is reported so
        (those still unfinished, and those that failed because of the stop)."""
        ids = list(dict.fromkeys(self.marked))
        for run in self._runs((*_UNFINISHED, dg.DagsterRunStatus.FAILURE)):
            if run.status in _UNFINISHED or run.run_id in self.marked:
                with contextlib.suppress(Exception):
                    self.instance.report_run_canceled(run, message="canceled by Ctrl-C")
                if run.run_id not in ids:
                    ids.append(run.run_id)
        return ids


def run_stoppable(
    work: Callable[[], Any], stopper: Stopper, project: str, grace_s: float = STOP_GRACE_S
) -> Any:
    """Run ``work`` in a worker thread, this thread watching for a stop request; returns its
    result, re-raises its exception, or raises `RenderCanceled` once stopped."""
    clear_stop()
    if threading.current_thread() is not threading.main_thread():
        return work()  # no signals here (a thread of a test or a server): run in place
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="videogen-render", daemon=True)
    with stopper.installed():
        worker.start()
        deadline: float | None = None
        while worker.is_alive():
            worker.join(0.05)
            if stopper.requested.is_set() and deadline is None:
                deadline = time.monotonic() + grace_s
                told = threading.Thread(target=tell_services, name="videogen-stop", daemon=True)
                told.start()
                stopper.mark_canceling()
                told.join(max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                break
        if stopper.requested.is_set() or stop_requested():
            alive = worker.is_alive()
            if alive:
                _stop_children()
            raise RenderCanceled(project, stopper.finish(), abandoned=alive)
    if "error" in box:
        raise box["error"]
    return box.get("result")


@contextlib.contextmanager
def without_output_capture(instance: dg.DagsterInstance) -> Iterator[None]:
    """Run this process's in-process runs without Dagster's stdout/stderr capture.

    The capture redirects the process's output to a file and starts a ``tail`` and a Python
    watcher process per run to copy it back to the terminal; a Ctrl-C reaches those children
    too and the watcher prints a KeyboardInterrupt traceback. A render's runs keep their full
    event log (the UI, the log file of a failed render); only their raw stdout/stderr is not
    kept (the steps log through Dagster, not print)."""
    with no_compute_log_capture(instance):
        yield


def tell_services() -> None:
    """Tell the services this process uses to stop its jobs now (`cancel.stop_service_jobs`)."""
    stop_service_jobs()


def _stop_children() -> None:
    """Terminate this process's child processes (an ffmpeg encode the step still waits for)."""
    me = str(os.getpid())
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = stat[stat.rindex(")") + 2 :].split()[1]
            if ppid == me:
                os.kill(int(entry.name), signal.SIGTERM)


# -------------------------------------------------------------------------------------- log


def write_render_log(
    root: Path, project: str, instance: dg.DagsterInstance, render_tag: str, error: BaseException
) -> Path | None:
    """Write the full event log of a render's runs (stack traces included) under
    ``<studio>/logs/``; returns its path (None when it cannot be written)."""

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = root / "logs" / f"render-{project}-{stamp}.log"
    lines = [f"videogen render {project} on {socket.gethostname()} (render {render_tag})", ""]
    try:
        runs = instance.get_runs(dg.RunsFilter(tags={RENDER_TAG: render_tag}))
        for run in reversed(list(runs)):
            lines.append(f"=== run {run.run_id} ({run.status.value}) ===")
            for entry in instance.all_logs(run.run_id):
                when = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC).strftime("%H:%M:%S")
                step = entry.step_key or "-"
                level = logging.getLevelName(entry.level)
                lines.append(f"{when} {level} {step}: {entry.message}")
                event = entry.dagster_event
                data = getattr(event, "event_specific_data", None) if event else None
                err = getattr(data, "error", None)
                if err is not None:
                    lines.append(err.to_string())
            lines.append("")
        lines.append("=== error ===")
        lines.extend(traceback.format_exception(error))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "\n".join(lines) + "\n")
    except Exception:
        return None
    return path


def root_cause(exc: BaseException) -> str:
    """The message of the error that made a render fail: the step's own (a service's, a
    Failure's description), not Dagster's wrapper."""
    inner: BaseException = exc
    seen = 0
    while isinstance(inner, dg.DagsterError) and getattr(inner, "user_exception", None):
        inner = inner.user_exception  # type: ignore[attr-defined]
        seen += 1
        if seen > 10:
            break
    if isinstance(inner, dg.Failure):
        text = inner.description or str(inner)
    else:
        text = str(inner) or type(inner).__name__
    return " ".join(text.split()) or type(inner).__name__

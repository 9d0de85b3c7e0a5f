"""Run workers that die are noticed, and the step processes they started stop with them.

Dagster's default run launcher starts each run in a process that the code server spawns (the run
worker); with the multiprocess executor each step of the run runs in a child process of that
worker. Under Dagster 1.13 two things go wrong when such processes are killed:

- The default launcher cannot tell run monitoring whether a worker is alive
  (``supports_check_run_worker_health`` is False). Only the code server that spawned the worker
  notices its death (within half a second) and marks the run failed. When the code server dies
  too (``videogen ui``'s process group killed, a crash or power loss of the machine), the run
  stays STARTED for ever: run monitoring skips it, run retries never see a failure and
  declarative automation never requests its partitions again (they count as in progress).
  `StudioRunLauncher`, the studio's ``run_launcher`` in ``dagster.yaml``, is the default launcher
  plus that health check: a run it launched on this machine whose worker process is gone is
  reported FAILED, so run monitoring marks the run failed and run retries re-execute it.
- A step process does not stop when its run worker is killed. It goes on as an orphan,
  generating and logging materializations into a run that is already marked failed, while the
  retry of that run generates the same partitions again; two writers race on the same files.
  `stop_with_run_worker` (called by `WatchedStudioResource` as a step process sets it up) makes the
  step interrupt itself the way Dagster's own termination does (SIGINT): the file being written
  is not renamed into place and its temporary file is removed, its ffmpeg is killed, the step
  ends in the failed run without a step retry (an interrupted step is never retried:
  `videogen_assets.cancel`) and the run's retry makes the batch again. Should the
  process not end by itself, it exits 20 seconds later.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import DagsterEventType
from dagster_shared.ipc import send_interrupt

from videogen_assets.dagster_internals import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from videogen_domain.atomic import process_alive
from videogen_resources.studio import StudioResource

WORKER_HOST_TAG = "videogen/worker_host"
"""The host whose code server runs the run's worker (set when the launcher launches a run on a
code server of its own machine); only a launcher on that host judges the worker."""

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_STARTED_PREFIX = "Started process for run"
_STOP_GRACE_S = 20.0


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The process id of a run's worker and when it started, from the engine event the worker
    logs first ("Started process for run (pid: N)"), or None before it has."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20
    ).records
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or not entry.message.startswith(_STARTED_PREFIX):
            continue
        pid = event.engine_event_data.metadata.get("pid")
        text = str(getattr(pid, "value", ""))
        if text.isdigit():
            return int(text), entry.timestamp
    return None


def _started_after(pid: int, timestamp: float) -> bool:
    """Whether process ``pid`` started after ``timestamp`` (so it is not the process that was
    given that id before: ids are reused, after a reboot in particular). False when the system
    cannot tell (no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started > timestamp + 2.0  # btime and clock ticks are coarse


def worker_status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[WorkerStatus, str]:
    """Whether the worker of a run launched on this host still exists."""
    host = socket.gethostname()
    if run.tags.get(WORKER_HOST_TAG) != host:
        return WorkerStatus.RUNNING, "not launched on this host by the studio's launcher"
    found = run_worker_pid(instance, run.run_id)
    if found is None:
        return WorkerStatus.RUNNING, "the run worker has not reported its process yet"
    pid, started = found
    if process_alive(pid) and not _started_after(pid, started):
        return WorkerStatus.RUNNING, f"the run worker process (pid {pid}) is running"
    return WorkerStatus.FAILED, (
        f"the run worker process (pid {pid} on {host}) is gone: it was killed, or its code "
        "server and the daemon that started them were"
    )


class StudioRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default run launcher with a worker health check for run monitoring.

    Configured in the studio's ``dagster.yaml``::

        run_launcher:
          module: videogen_assets.run_workers
          class: StudioRunLauncher
    """

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.remote_job_origin
        if context.workspace is not None and origin is not None:
            name = origin.repository_origin.code_location_origin.location_name
            with contextlib.suppress(Exception):
                client: Any = getattr(context.workspace.get_code_location(name), "client", None)
                if client is not None and (client.socket or client.host in _LOCAL_HOSTS):
                    self._instance.add_run_tags(run.run_id, {WORKER_HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        status, message = worker_status(self._instance, run)
        return CheckRunHealthResult(status, message)


_guarded = False
_guard_lock = threading.Lock()


def stop_with_run_worker(instance: dg.DagsterInstance | None, run_id: str | None) -> bool:
    """In a step process spawned by a run worker, stop the step when that worker dies.

    Does nothing (and returns False) anywhere else: in the run worker itself (in-process
    execution), in `videogen render`, in sensors, in Celery workers. Returns True when the
    watch is on.
    """
    global _guarded
    parent = multiprocessing.parent_process()
    if parent is None or instance is None or run_id is None:
        return False
    with _guard_lock:
        if _guarded:
            return True
        found = run_worker_pid(instance, run_id)
        if found is None or found[0] != os.getppid():
            return False
        _guarded = True
    threading.Thread(
        target=_stop_when_gone, args=(parent.sentinel,), name="stop-with-run-worker", daemon=True
    ).start()
    return True


def _stop_when_gone(sentinel: int) -> None:
    wait([sentinel])  # ready once the parent process has exited, however it ended
    send_interrupt()
    time.sleep(_STOP_GRACE_S)
    os._exit(1)  # the interrupt did not end the process (its events queue to a dead parent)


class WatchedStudioResource(StudioResource):
    """The studio resource of the graph's Definitions: every step uses it, so as a step process
    sets it up, the step stops if the run worker that spawned it dies (`stop_with_run_worker`)."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In a step process spawned by a run worker, stop the step if that worker dies."""
        stop_with_run_worker(context.instance, context.run_id)

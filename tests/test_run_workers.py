"""The pieces that make dead run workers visible and their leftovers go away, one by one:
the studio launcher's worker health check, the step guard outside a step process, and an
atomic write clearing what a killed write of the same file left.

`test_daemon_crash.py` runs them for real under the Dagster daemon."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRun

from videogen_assets import run_workers
from videogen_assets.dagster_internals import EngineEventData, WorkerStatus, make_new_run_id
from videogen_assets.definitions import build_definitions
from videogen_assets.run_workers import (
    WORKER_HOST_TAG,
    StudioRunLauncher,
    WatchedStudioResource,
    run_worker_pid,
    stop_with_run_worker,
    worker_status,
)
from videogen_domain.atomic import atomic_write_bytes
from videogen_resources.settings import BackendSettings


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _run(instance: dg.DagsterInstance, tags: dict[str, str], pid: int | None) -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="j", run_id=make_new_run_id(), tags=tags))
    if pid is not None:  # what the code server's run worker logs first
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
        )
    return run


@pytest.mark.slow
def test_the_launcher_judges_only_workers_it_launched_on_this_host(
    instance: dg.DagsterInstance,
) -> None:
    here = {WORKER_HOST_TAG: socket.gethostname()}
    dead, alive = _dead_pid(), os.getpid()
    assert worker_status(instance, _run(instance, here, dead))[0] == WorkerStatus.FAILED
    assert worker_status(instance, _run(instance, here, alive))[0] == WorkerStatus.RUNNING
    # not started yet, launched elsewhere, or not launched by the studio's launcher at all
    assert worker_status(instance, _run(instance, here, None))[0] == WorkerStatus.RUNNING
    other = {WORKER_HOST_TAG: f"not-{socket.gethostname()}"}
    assert worker_status(instance, _run(instance, other, dead))[0] == WorkerStatus.RUNNING
    assert worker_status(instance, _run(instance, {}, dead))[0] == WorkerStatus.RUNNING


def test_the_worker_pid_is_read_from_the_workers_first_engine_event(
    instance: dg.DagsterInstance,
) -> None:
    run = _run(instance, {}, 4242)
    instance.report_engine_event("Executing steps in process (pid: 7).", run)
    found = run_worker_pid(instance, run.run_id)
    assert found is not None and found[0] == 4242
    assert run_worker_pid(instance, _run(instance, {}, None).run_id) is None


def test_the_studio_launcher_supports_worker_health_checks() -> None:
    assert StudioRunLauncher().supports_check_run_worker_health


def test_the_step_guard_stays_off_outside_a_step_process(instance: dg.DagsterInstance) -> None:
    run = _run(instance, {}, os.getpid())
    assert stop_with_run_worker(instance, run.run_id) is False  # no multiprocessing parent
    assert stop_with_run_worker(None, None) is False


def test_every_step_of_the_graph_sets_up_the_step_guard(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The graph's studio resource, used by every asset, installs the guard as a step sets it up.
    defs = build_definitions(tmp_path / "studio", BackendSettings())
    studio = defs.resources["studio"]
    assert isinstance(studio, WatchedStudioResource)
    calls: list[tuple[object, object]] = []
    monkeypatch.setattr(run_workers, "stop_with_run_worker", lambda i, r: calls.append((i, r)))
    studio.setup_for_execution(dg.build_init_resource_context(instance=instance))
    assert calls == [(instance, None)]


def test_a_write_clears_what_a_killed_write_of_the_same_file_left(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".clip.mp4.{dead}-abc123.mp4"
    live = tmp_path / f".clip.mp4.{alive}-def456.mp4"
    other = tmp_path / f".keyframe.png.{dead}-ghi789.png"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    atomic_write_bytes(tmp_path / "clip.mp4", b"whole")
    assert (tmp_path / "clip.mp4").read_bytes() == b"whole"
    assert not stale.exists()
    assert live.exists(), "a write still in progress is left alone"
    assert other.exists(), "another file's temporaries are that file's write's business"

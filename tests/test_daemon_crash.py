"""Contract: a batch of clips that the real Dagster daemon is generating survives a SIGKILL of
its run worker, of the daemon alone, or of the daemon with everything it started.

Each scenario runs `dagster-daemon run` on the studio's workspace (a temporary studio and
DAGSTER_HOME with the studio's dagster.yaml), lets declarative automation request the clips of a
new 8-sentence project (one batch run over all sentences, launched by the daemon's run
launcher) and kills something while that batch is writing a clip:

- the run worker (the process the code server spawned for the run): the code server notices
  within a second and marks the run failed; the step process the worker had started stops too
  (instead of going on as an orphan beside the retry); run retries re-execute the clip step;
- the daemon alone: its code server outlives it, the run in flight finishes by itself, the
  orphaned code server exits once it misses the daemon's heartbeat, and a new daemon carries on;
- the daemon's whole process group (daemon, code server, run worker, step, ffmpeg: a crash or
  power loss): the run would stay STARTED for ever under Dagster's default launcher; the
  studio's launcher lets run monitoring in the next daemon see the worker is gone, mark the run
  failed, and run retries re-execute it.

After each, once the daemon has made every partition again: every clip decodes fully with as
many frames as its narration lasts; no temporary file of an interrupted write is left in the
sentences' folders; every sentence has one database row and no generation job points at a
missing sentence; every partition of every per-sentence asset has a latest materialization whose
data version is the content hash of the file on disk; and no run of them is left in progress.
(The project outputs that automation makes afterwards are not waited for: they wait for the
clips' backfill to be marked done, which Dagster's backfill daemon does on its 30-second loop.)

Narration, shots and keyframes are made in this process first, so that the daemon's own work
is the one batch under test: at its first evaluation, declarative automation requests every
clip, missing with all its inputs made (`made_when_first_seen`), in one evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import yaml
from dagster import DagsterEventType, RunsFilter

from tests.support.crash import (
    REPO,
    SCRIPT_8,
    sentence_rows,
    studio_env,
    temp_leftovers,
    videogen_cmd,
)
from videogen.operations import QUIET, sync
from videogen_assets.context import file_digest, key
from videogen_assets.dagster_files import DAGSTER_YAML, WORKSPACE_YAML
from videogen_assets.dagster_internals import (
    IN_PROGRESS_RUN_STATUSES,
    extract_data_version_from_entry,
)
from videogen_assets.definitions import build_definitions
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_resources.audio import wav_num_samples
from videogen_resources.media import probe
from videogen_resources.settings import BackendSettings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups"),
]

log = logging.getLogger(__name__)

PROJECT = "volcanoes"
N = 8
IDS = [f"{PROJECT}.s{i:04d}" for i in range(1, N + 1)]
FILES = {
    "narration": "narration.wav",
    "shot": "shot.json",
    "keyframe": "keyframe.png",
    "clip": "clip.mp4",
}
# Run monitoring polls every 30 s in the studio's dagster.yaml; the test polls every 2 s so the
# dead worker of the last scenario is seen within seconds. What is under test is the launcher's
# health check, which runs on every poll; how often it runs is only latency.
MONITOR_POLL_S = 2
T = TypeVar("T")


def _until(what: str, check: Callable[[], T | None], timeout: float, step: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _ps(pid: int) -> tuple[int, str] | None:
    """(parent pid, command line) of a live, not defunct process; None when it is gone."""
    out = subprocess.run(
        ["ps", "-o", "ppid=,stat=,args=", "-p", str(pid)], capture_output=True, text=True
    ).stdout.split(None, 2)
    if len(out) < 3 or out[1].startswith("Z"):
        return None
    return int(out[0]), out[2]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class Scenario:
    """What one scenario did and left behind (its processes are gone when tests read it)."""

    kind: str
    base: Path
    root: Path
    home: Path
    folder: Path
    killed_run: str = ""
    worker_pid: int = 0
    step_pid: int = 0
    code_server_pid: int = 0
    writing_at_kill: list[str] = field(default_factory=list)
    leftovers_after_kill: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


class Studio:
    """A temporary studio with the project, and the daemons started on it."""

    def __init__(self, base: Path, kind: str) -> None:
        self.s = Scenario(kind, base, base / "studio", base / "dagster_home", Path())
        self.s.folder = self.s.root / "projects" / PROJECT
        self.daemons: list[subprocess.Popen[bytes]] = []
        self.env = studio_env(self.s.root, self.s.home)

    def create(self, instance: dg.DagsterInstance) -> None:
        script = self.s.base / "script.md"
        script.write_text(SCRIPT_8, encoding="utf-8")
        subprocess.run(
            videogen_cmd(
                self.s.root, "new", "Volcanoes", "--name", PROJECT, "--script", str(script)
            ),
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        sync(self.s.root, PROJECT, instance=instance)  # the observations the daemon would publish

    def materialize(self, instance: dg.DagsterInstance, kind: str) -> None:
        """One batch over all sentences in this process, as `videogen render` makes it."""
        defs = build_definitions(self.s.root, BackendSettings.from_env(self.env))
        assets = [
            a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))
        ]
        result = dg.materialize(
            assets,
            instance=instance,
            resources=dict(defs.resources or {}),
            run_config=QUIET,
            selection=[key(PROJECT, kind)],
            tags={
                "dagster/asset_partition_range_start": IDS[0],
                "dagster/asset_partition_range_end": IDS[-1],
            },
        )
        assert result.success, kind

    def start_daemon(self) -> subprocess.Popen[bytes]:
        logfile = open(self.s.base / f"daemon{len(self.daemons) + 1}.log", "wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-w", str(WORKSPACE_YAML)],
            cwd=str(REPO),
            env=self.env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its code servers and runs join it
        )
        logfile.close()
        self.daemons.append(daemon)
        return daemon

    def stop(self) -> None:
        for daemon in self.daemons:
            _kill_group(daemon.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=30)

    def daemon_log(self) -> str:
        logs = sorted(self.s.base.glob("daemon*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)


def _clips(folder: Path) -> list[Path]:
    return sorted((folder / "sentences").glob("*/clip.mp4"))


def _writing(folder: Path) -> list[Path]:
    return sorted((folder / "sentences").glob("*/.clip.mp4.*"))


def _engine_pid(instance: dg.DagsterInstance, run_id: str, event: DagsterEventType) -> int | None:
    """The pid a run's worker ("Started process for run") or its step process reported."""
    for rec in instance.get_records_for_run(run_id, of_type=event, limit=50).records:
        entry = rec.event_log_entry
        if event == DagsterEventType.ENGINE_EVENT and not entry.message.startswith(
            "Started process for run"
        ):
            continue
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid")
        if pid is not None:
            return int(pid.value)
    return None


def _clip_batch_started(instance: dg.DagsterInstance) -> tuple[str, int, int] | None:
    """The STARTED batch run of clips, its worker pid and its clip step's pid, once known."""
    for run in instance.get_runs(RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if key(PROJECT, "clip") not in (run.asset_selection or set()):
            continue
        worker = _engine_pid(instance, run.run_id, DagsterEventType.ENGINE_EVENT)
        step = _engine_pid(instance, run.run_id, DagsterEventType.STEP_WORKER_STARTED)
        if worker and step:
            return run.run_id, worker, step
    return None


def _sentence_runs_in_progress(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress that materialize per-sentence assets."""
    sentence_keys = {key(PROJECT, kind) for kind in PER_SENTENCE}
    return [
        run
        for run in instance.get_runs(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)))
        if sentence_keys & set(run.asset_selection or ())
    ]


def _partitions_done(instance: dg.DagsterInstance) -> bool:
    """Every partition of every per-sentence asset made, and no run of them in progress."""
    for kind in PER_SENTENCE:
        if set(instance.get_materialized_partitions(key(PROJECT, kind))) != set(IDS):
            return False
    return not _sentence_runs_in_progress(instance)


def _run(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp(kind)
    studio = Studio(base, kind)
    s = studio.s
    s.home.mkdir()
    config = yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))
    assert config["run_launcher"]["class"] == "StudioRunLauncher"  # the product's setting
    config["run_monitoring"]["poll_interval_seconds"] = MONITOR_POLL_S
    (s.home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    try:
        with s.instance() as instance:
            studio.create(instance)
            studio.materialize(instance, "narration")
            studio.materialize(instance, "shot")
            studio.materialize(instance, "keyframe")
            # Every input of the clips made, no clip yet: the daemon's first automation
            # evaluation requests all eight clips at once, and the studio batches them into one
            # run (the subject of this test). Made before the daemon starts, so no tick can land
            # between two of the keyframes and split the clips into two runs.
            daemon = studio.start_daemon()
            run_id, s.worker_pid, s.step_pid = _until(
                "a batch run of clips launched by the daemon",
                lambda: _clip_batch_started(instance),
                120,
            )
            s.killed_run = run_id
            worker = _ps(s.worker_pid)
            assert worker is not None, "the run worker is not running"
            s.code_server_pid = worker[0]
            code_server = _ps(s.code_server_pid)
            assert code_server is not None and "dagster api grpc" in code_server[1]
            assert code_server[0] == daemon.pid, "the code server is the daemon's child"
            step = _ps(s.step_pid)
            assert step is not None and step[0] == s.worker_pid, "the step is the worker's child"
            writing = _until(
                "a clip being written with others already made",
                lambda: w if 0 < len(_clips(s.folder)) < N and (w := _writing(s.folder)) else [],
                60,
                step=0.02,
            )
            s.writing_at_kill = [p.name for p in writing]
            killed_at = time.time()
            if kind == "run_worker":
                os.kill(s.worker_pid, signal.SIGKILL)
            elif kind == "daemon":
                os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=30)
            else:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=30)
            _after_kill(studio, instance, killed_at)
            _until("every partition to be made", lambda: _partitions_done(instance), 180)
            s.facts["partitions_done_after_kill_s"] = round(time.time() - killed_at, 1)
            if kind == "daemon":
                _until(
                    "the orphaned code server to exit",
                    lambda: _ps(s.code_server_pid) is None,
                    max(1.0, 60 - (time.time() - killed_at)),
                )
                s.facts["code_server_exit_after_kill_s"] = round(time.time() - killed_at, 1)
    except BaseException:
        log.error("daemon logs of %s:\n%s", kind, studio.daemon_log())
        raise
    finally:
        studio.stop()
    log.info("%s: %s", kind, s.facts)
    yield s


def _after_kill(studio: Studio, instance: dg.DagsterInstance, killed_at: float) -> None:
    s = studio.s
    if s.kind == "run_worker":
        _until("the killed run to be marked failed", lambda: _status(instance, s) == "FAILURE", 15)
        s.facts["failed_after_kill_s"] = round(time.time() - killed_at, 1)
        _until("the orphaned step process to stop", lambda: _ps(s.step_pid) is None, 40)
        s.facts["step_gone_after_kill_s"] = round(time.time() - killed_at, 1)
    elif s.kind == "daemon":
        survivor = _ps(s.code_server_pid)
        s.facts["code_server_alive_after_kill"] = survivor is not None
        s.facts["code_server_parent_after_kill"] = survivor[0] if survivor else None
        s.facts["worker_alive_after_kill"] = _ps(s.worker_pid) is not None
        studio.start_daemon()
        _until("the run in flight to finish", lambda: _status(instance, s) == "SUCCESS", 60)
        s.facts["run_finished_after_kill_s"] = round(time.time() - killed_at, 1)
    else:
        gone = [p for p in (s.code_server_pid, s.worker_pid, s.step_pid) if _ps(p) is not None]
        assert gone == [], "the process group is gone"
        s.facts["status_before_new_daemon"] = _status(instance, s)
        studio.start_daemon()
        started = time.time()
        _until("run monitoring to fail the dead run", lambda: _status(instance, s) == "FAILURE", 60)
        s.facts["failed_after_new_daemon_s"] = round(time.time() - started, 1)
    if s.kind != "daemon":
        s.leftovers_after_kill = [p.name for p in temp_leftovers(s.folder)]


def _status(instance: dg.DagsterInstance, s: Scenario) -> str:
    run = instance.get_run_by_id(s.killed_run)
    return run.status.value if run else ""


@pytest.fixture(scope="module")
def run_worker_killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield from _run(tmp_path_factory, "run_worker")


@pytest.fixture(scope="module")
def daemon_killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield from _run(tmp_path_factory, "daemon")


@pytest.fixture(scope="module")
def daemon_group_killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield from _run(tmp_path_factory, "daemon_group")


SCENARIOS = ["run_worker_killed", "daemon_killed", "daemon_group_killed"]


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return request.getfixturevalue(request.param)


# --- what each kill did ------------------------------------------------------------------


def _events(instance: dg.DagsterInstance, run_id: str, event: DagsterEventType) -> list[Any]:
    return list(instance.all_logs(run_id, of_type=event))


def _retries_of(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id})))


def test_the_kill_landed_mid_batch(scenario: Scenario) -> None:
    """A clip was being written and some, not all, were made when the kill came."""
    assert len(scenario.writing_at_kill) == 1, scenario.writing_at_kill
    with scenario.instance() as instance:
        run = instance.get_run_by_id(scenario.killed_run)
        assert run is not None
        assert run.tags.get("dagster/from_automation_condition") == "true"
        assert run.tags["dagster/asset_partition_range_start"] == IDS[0]
        assert run.tags["dagster/asset_partition_range_end"] == IDS[-1]


def test_a_killed_run_worker_fails_its_run_stops_its_step_and_is_retried(
    run_worker_killed: Scenario,
) -> None:
    s = run_worker_killed
    assert s.facts["failed_after_kill_s"] < 5
    assert s.facts["step_gone_after_kill_s"] < 25  # the interrupt, or the exit 20 s after it
    assert s.leftovers_after_kill == [], "the interrupted write removed its temporary file"
    with s.instance() as instance:
        run = instance.get_run_by_id(s.killed_run)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        messages = [
            e.message for e in _events(instance, s.killed_run, DagsterEventType.ENGINE_EVENT)
        ]
        assert any(
            f"Run execution process for {s.killed_run} was terminated by signal 9" in m
            for m in messages
        ), messages
        # the step stopped with its worker: it never finished in the failed run
        assert _events(instance, s.killed_run, DagsterEventType.STEP_SUCCESS) == []
        made = _events(instance, s.killed_run, DagsterEventType.ASSET_MATERIALIZATION)
        assert len(made) < N
        retries = _retries_of(instance, s.killed_run)
        assert [r.status for r in retries] == [dg.DagsterRunStatus.SUCCESS]
        assert retries[0].tags["dagster/retry_number"] == "1"
        steps = {
            e.step_key for e in _events(instance, retries[0].run_id, DagsterEventType.STEP_SUCCESS)
        }
        assert steps == {f"{PROJECT}__clip"}


def test_a_killed_daemon_leaves_its_run_to_finish_and_its_code_server_to_exit(
    daemon_killed: Scenario,
) -> None:
    s = daemon_killed
    assert s.facts["code_server_alive_after_kill"] and s.facts["worker_alive_after_kill"]
    assert s.facts["code_server_exit_after_kill_s"] < 60  # the daemon's heartbeat TTL is 20 s
    with s.instance() as instance:
        run = instance.get_run_by_id(s.killed_run)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert _retries_of(instance, s.killed_run) == []
        made = _events(instance, s.killed_run, DagsterEventType.ASSET_MATERIALIZATION)
        assert sorted(e.dagster_event.partition for e in made) == IDS


def test_a_killed_daemon_group_is_found_by_run_monitoring_and_retried(
    daemon_group_killed: Scenario,
) -> None:
    s = daemon_group_killed
    assert s.facts["status_before_new_daemon"] == "STARTED"
    assert s.facts["failed_after_new_daemon_s"] < 30
    # SIGKILL gave the write no chance to clean up; the retry's write of that clip removed it
    assert [n.startswith(".clip.mp4.") for n in s.leftovers_after_kill] == [True]
    with s.instance() as instance:
        failures = _events(instance, s.killed_run, DagsterEventType.RUN_FAILURE)
        assert len(failures) == 1
        assert "Detected run worker status FAILED" in failures[0].message
        assert f"the run worker process (pid {s.worker_pid} " in failures[0].message
        retries = _retries_of(instance, s.killed_run)
        assert [r.status for r in retries] == [dg.DagsterRunStatus.SUCCESS]


# --- the end state, after every kind of kill ------------------------------------------


def test_every_clip_decodes_fully_and_matches_its_narration(scenario: Scenario) -> None:
    clips = _clips(scenario.folder)
    assert [c.parent.name for c in clips] == IDS
    for clip in clips:
        samples, rate = wav_num_samples(clip.parent / "narration.wav")
        info = probe(clip)  # decodes every frame
        assert info.video is not None and info.audio is not None, clip
        assert info.video.frames == math.ceil(samples * info.video.fps / rate - 1e-9), clip


def test_no_temporary_file_is_left_in_the_sentences(scenario: Scenario) -> None:
    assert temp_leftovers(scenario.folder / "sentences") == []


def test_database_has_one_row_per_sentence_and_no_orphan_jobs(scenario: Scenario) -> None:
    rows, texts, orphans = sentence_rows(scenario.root, PROJECT)
    assert sorted(r[0] for r in rows) == IDS and all(count == 1 for _id, count in rows)
    assert texts == (N, N)
    assert orphans == 0
    assert sorted(p.name for p in (scenario.folder / "sentences").iterdir()) == IDS


def test_latest_materialization_of_each_partition_matches_the_file(scenario: Scenario) -> None:
    with scenario.instance() as instance:
        for kind in PER_SENTENCE:
            asset = key(PROJECT, kind)
            assert set(instance.get_materialized_partitions(asset)) == set(IDS), kind
            for sid in IDS:
                record = instance.get_latest_data_version_record(asset, partition_key=sid)
                assert record is not None, (kind, sid)
                version = extract_data_version_from_entry(record.event_log_entry)
                on_disk = file_digest(scenario.folder / "sentences" / sid / FILES[kind])
                assert version is not None and version.value == on_disk, (kind, sid)


def test_no_run_of_the_sentences_is_left_in_progress(scenario: Scenario) -> None:
    with scenario.instance() as instance:
        assert _sentence_runs_in_progress(instance) == []

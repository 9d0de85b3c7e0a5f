"""Contract: with ``VIDEOGEN_EXECUTOR=celery`` the studio's runs execute their steps as Celery
tasks in `dagster-celery` workers set up as ``deploy/celery/`` describes, and the instance's pools
still bound those steps.

A real ``redis-server`` (started here on 127.0.0.1, on a free port, without persistence) is the
broker and result backend; a real worker starts the documented way (``dagster-celery worker start
-A dagster_celery.app -y deploy/celery/celery.yaml``) with the studio's environment. Then a
run of the selected assets on the studio's code location (as ``dagster asset materialize`` makes
it, but without the assets' ``up_to_date`` checks, which only the ``progress`` sensor evaluates)
runs

- one sentence's whole chain: narration and shot, then keyframe, then clip, four tasks, each
  reading what an earlier task wrote, and
- a partition range of two sentences for narration and shot (two batched steps).

Every step is submitted to the Celery queue ``dagster``, reported as executed by this worker, and
runs in a pool process of the worker, a fresh one per step (``worker_max_tasks_per_child: 1``);
the files exist, and each partition's latest materialization comes from that run with the
content hash of its file as data version. After an edit of the project (its style) the same job
run again records the edited code version, not the one a pool process loaded before. A job of
pooled ops shows that pool ``gpu`` (one slot) keeps its steps from overlapping in the worker
while the worker's concurrency (2) bounds all steps.

Without the ``redis-server`` binary (Debian package ``redis-server``) the tests that need it are
skipped with that reason. Without an executor choice the studio keeps Dagster's default executor.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType

from tests.support.crash import REPO, SCRIPT_8, studio_env, videogen_cmd
from tests.support.samples import SMALL_SCRIPT
from tests.support.steps import max_overlap, step_spans
from videogen.operations import create_project
from videogen_assets.concurrency import configure_pools
from videogen_assets.context import file_digest, key
from videogen_assets.dagster_internals import (
    extract_data_provenance_from_entry,
    extract_data_version_from_entry,
)
from videogen_assets.definitions import build_definitions
from videogen_assets.executors import DEFAULT_CELERY_URL, ExecutorSettings, build_executor
from videogen_assets.partitions import partitions_name
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_resources.settings import BackendSettings

PROJECT = "volcanoes"
SCRIPT_3 = SCRIPT_8.split("\n## ", 1)[0] + "\n"  # the first section: three sentences
FILES = {
    "narration": "narration.wav",
    "shot": "shot.json",
    "keyframe": "keyframe.png",
    "clip": "clip.mp4",
}
CELERY_CONFIG = REPO / "deploy" / "celery" / "celery.yaml"
WORKER_CONCURRENCY = 2

# dagster-celery registers its task again for every step it submits (harmless)
pytestmark = pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")


# --- the executor choice (no broker needed) ---------------------------------------------------


def test_the_default_is_one_process_per_sentence_run_and_dagsters_multiprocess_on_request() -> None:
    from videogen_assets.sentence_executor import sentence_or_batch_executor

    settings = ExecutorSettings.from_env({})
    assert settings.kind == "auto"
    assert build_executor(settings) is sentence_or_batch_executor
    multi = ExecutorSettings.from_env({"VIDEOGEN_EXECUTOR": "multiprocess"})
    assert build_executor(multi) is dg.multi_or_in_process_executor


def test_celery_is_chosen_by_the_environment() -> None:
    pytest.importorskip("dagster_celery")
    settings = ExecutorSettings.from_env(
        {"VIDEOGEN_EXECUTOR": " Celery ", "VIDEOGEN_CELERY_BROKER": "redis://broker:6379/1"}
    )
    assert settings.kind == "celery"
    assert settings.celery_broker == "redis://broker:6379/1"
    assert settings.celery_backend == DEFAULT_CELERY_URL
    executor = build_executor(settings)
    assert executor.name == "celery"
    assert executor.config_schema.as_field().is_required is False  # configured: nothing to ask


def test_an_unknown_executor_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="VIDEOGEN_EXECUTOR='dask'"):
        ExecutorSettings.from_env({"VIDEOGEN_EXECUTOR": "dask"})


def test_the_studio_definitions_use_the_chosen_executor(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("dagster_celery")
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(studio_root, title="Alpha", name="alpha", script_file=script)
    monkeypatch.delenv("VIDEOGEN_EXECUTOR", raising=False)
    job = build_definitions(studio_root, BackendSettings()).resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "sentence_or_batch"
    monkeypatch.setenv("VIDEOGEN_EXECUTOR", "multiprocess")
    job = build_definitions(studio_root, BackendSettings()).resolve_implicit_global_asset_job_def()
    assert job.executor_def is dg.multi_or_in_process_executor
    monkeypatch.setenv("VIDEOGEN_EXECUTOR", "celery")
    job = build_definitions(studio_root, BackendSettings()).resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "celery"


# --- a real broker and a real worker ----------------------------------------------------------


@dataclass
class Cluster:
    """A studio with one project, its Dagster instance, a broker and one worker."""

    root: Path
    home: Path
    env: dict[str, str]
    broker: str
    worker: subprocess.Popen[bytes]
    worker_name: str
    worker_log: Path
    instance: dg.DagsterInstance


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(base: Path) -> tuple[subprocess.Popen[bytes], int]:
    import redis

    port = _free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--daemonize", "no", "--dir", str(base)]
    with (base / "redis.log").open("wb") as log:
        proc = subprocess.Popen(["redis-server", *args], stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(base / 'redis.log').read_text()[-2000:]}")
        try:
            if client.ping():
                return proc, port
        except redis.exceptions.ConnectionError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not accept connections within 20 s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes], *, group: bool) -> None:
    """Stop a process this test started (and, with group, the processes it started)."""
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    if group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # pool processes left behind, if any
        except ProcessLookupError:
            pass
    elif proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _wait_until_ready(worker: subprocess.Popen[bytes], log: Path, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if f"{name}@" in text and " ready." in text:
            return
        if worker.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"the celery worker did not get ready (exit {worker.poll()}):\n{tail}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    pytest.importorskip("dagster_celery")
    pytest.importorskip("redis")
    base = tmp_path_factory.mktemp("celery")
    root, home = base / "studio", base / "dagster_home"
    home.mkdir()
    redis_proc, port = _start_redis(base)
    worker: subprocess.Popen[bytes] | None = None
    try:
        broker = f"redis://127.0.0.1:{port}/0"
        bindir = str(Path(sys.executable).parent)  # `celery`, which the worker command runs
        env = studio_env(
            root,
            home,
            VIDEOGEN_EXECUTOR="celery",
            VIDEOGEN_CELERY_BROKER=broker,
            VIDEOGEN_CELERY_BACKEND=broker,
            PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]),
        )
        script = base / "script.md"
        script.write_text(SCRIPT_3, encoding="utf-8")
        subprocess.run(
            videogen_cmd(root, "new", "Volcanoes", "--name", PROJECT, "--script", str(script)),
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        name = f"videogen-test-{uuid.uuid4().hex[:6]}"
        worker_log = base / "worker.log"
        # as deploy/celery/README.md starts a worker, with two pool processes
        cmd = [sys.executable, "-m", "dagster_celery.cli", "worker", "start"]
        cmd += ["-A", "dagster_celery.app", "-y", str(CELERY_CONFIG), "-n", name]
        cmd += ["--", "-c", str(WORKER_CONCURRENCY)]
        with worker_log.open("wb") as log:
            worker = subprocess.Popen(
                cmd,
                env=env,
                cwd=base,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the worker and its pool
            )
        _wait_until_ready(worker, worker_log, name)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield Cluster(root, home, env, broker, worker, name, worker_log, instance)
    finally:
        if worker is not None:
            _stop(worker, group=True)
        _stop(redis_proc, group=False)


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (Linux /proc, else `ps`)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    else:
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            child, parent = (int(x) for x in line.split())
            children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@contextmanager
def _watch_worker(c: Cluster) -> Iterator[set[int]]:
    """The processes the worker had below it at any moment while the block ran (each step gets
    a fresh pool process that is gone by the end: ``worker_max_tasks_per_child: 1``)."""
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(_descendants(c.worker.pid))
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)


# `dagster asset materialize --select A,B --partition P | --partition-range S...E`, but run
# without the ``up_to_date`` checks (videogen_assets/progress.py), which only the ``progress``
# sensor evaluates: Dagster 1.13 adds every check of a selected asset to a run (the CLI and
# `dg launch` have no way to leave them out, and no check option keeps a check out of
# `AssetSelection.assets`). Same code location, implicit asset job, partition tags and Celery
# executor as the CLI; the run's asset_check_selection holds the checks that are part of the
# assets (the keyframe's and clip's check_specs, which run in the asset's own step).
_LAUNCH = """
import os, sys
import dagster as dg
from videogen_assets.progress import CHECK_NAME
from videogen_assets.dagster_internals import ReconstructableJob, ReconstructableRepository
from videogen_assets.dagster_internals import create_execution_plan, execute_run
from videogen_assets.dagster_internals import snapshot_from_execution_plan

select, option, value = sys.argv[1:4]
keys = {dg.AssetKey.from_user_string(s) for s in select.split(",")}
repo = ReconstructableRepository.for_module(
    "videogen_assets.definitions", "defs", working_directory=os.getcwd()
)
repo_def = repo.get_definition()
implicit = repo_def.get_implicit_job_def_for_assets(keys)
assert implicit is not None, keys
if option == "--partition":
    tags = dict(implicit.get_tags_for_partition_key(value, selected_asset_keys=keys))
else:
    start, end = value.split("...")
    tags = {
        "dagster/asset_partition_range_start": start,
        "dagster/asset_partition_range_end": end,
    }
checks = {
    ck for ck in repo_def.asset_graph.asset_check_keys
    if ck.asset_key in keys and ck.name != CHECK_NAME
}
job = ReconstructableJob(repo, implicit.name).get_subset(
    asset_selection=keys, asset_check_selection=checks
)
job_def = job.get_definition()
with dg.DagsterInstance.get() as instance:
    plan = create_execution_plan(job, instance_ref=instance.get_ref(), tags=tags)
    run = instance.create_run(
        job_name=job_def.name,
        run_id=None,
        run_config={},
        status=None,
        tags=tags,
        root_run_id=None,
        parent_run_id=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        execution_plan_snapshot=snapshot_from_execution_plan(
            plan, job_def.get_job_snapshot_id()
        ),
        job_snapshot=job_def.get_job_snapshot(),
        parent_job_snapshot=job_def.get_parent_job_snapshot(),
        asset_selection=frozenset(keys),
        asset_check_selection=frozenset(checks),
        resolved_op_selection=None,
        op_selection=None,
        remote_job_origin=None,
        job_code_origin=job.get_python_origin(),
        asset_graph=job_def.asset_layer.asset_graph,
    )
    sys.exit(0 if execute_run(job, run, instance).success else 1)
"""


def _materialize(
    c: Cluster, assets: list[str], *partition_args: str
) -> tuple[dg.DagsterRun, set[int]]:
    """Materialize the assets on the studio's code location as `dagster asset materialize`
    would, without their ``up_to_date`` checks (see ``_LAUNCH``): the run it made and the
    worker's processes meanwhile."""
    before = {r.run_id for r in c.instance.get_runs()}
    selection = ",".join(f"{PROJECT}/{a}" for a in assets)
    cmd = [sys.executable, "-c", _LAUNCH, selection, *partition_args]
    with _watch_worker(c) as pool:
        done = subprocess.run(cmd, env=c.env, cwd=c.root.parent, capture_output=True, timeout=240)
    worker_tail = c.worker_log.read_text(errors="replace")[-3000:]
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:] + worker_tail
    runs = [r for r in c.instance.get_runs() if r.run_id not in before]
    assert len(runs) == 1, runs
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS
    return runs[0], pool


def _step_keys(assets: list[str]) -> set[str]:
    return {f"{PROJECT}__{a}" for a in assets}


def _assert_ran_in_the_worker(c: Cluster, run_id: str, steps: set[str], pool: set[int]) -> None:
    """Each step went to queue `dagster`, this worker ran it, each in a pool process of its own."""
    submitted: set[str] = set()
    executed: set[str] = set()
    step_pids: dict[str, int] = {}
    for entry in c.instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.ENGINE_EVENT:
            if f'Submitting celery task for step "{event.step_key}" to queue "dagster"' in (
                event.message or ""
            ):
                submitted.add(event.step_key)
            metadata = getattr(event.event_specific_data, "metadata", {}) or {}
            worker = metadata.get("Celery worker")
            if worker is not None and str(worker.value).startswith(f"{c.worker_name}@"):
                executed.add(event.step_key)
        elif event.event_type == DagsterEventType.STEP_START:
            assert event.pid is not None
            step_pids[event.step_key] = event.pid
    assert submitted == steps
    assert executed == steps
    assert set(step_pids) == steps
    assert set(step_pids.values()) <= pool, (step_pids, pool)
    assert len(set(step_pids.values())) == len(steps), step_pids


def _sentences(c: Cluster) -> list[str]:
    return sorted(c.instance.get_dynamic_partitions(partitions_name(PROJECT)))


def _assert_materialized(c: Cluster, run: dg.DagsterRun, assets: list[str], ids: list[str]) -> None:
    folder = c.root / "projects" / PROJECT / "sentences"
    for kind in assets:
        asset = key(PROJECT, kind)
        for sid in ids:
            path = folder / sid / FILES[kind]
            assert path.is_file() and path.stat().st_size > 0, path
            records = c.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[sid]), limit=1
            ).records
            assert len(records) == 1, (kind, sid)
            assert records[0].run_id == run.run_id, (kind, sid)
            version = extract_data_version_from_entry(records[0].event_log_entry)
            assert version is not None and version.value == file_digest(path), (kind, sid)


@pytest.mark.slow
def test_a_sentence_chain_runs_step_by_step_in_the_celery_worker(cluster: Cluster) -> None:
    ids = _sentences(cluster)
    assert len(ids) == 3
    assets = list(PER_SENTENCE)
    run, pool = _materialize(cluster, assets, "--partition", ids[0])
    _assert_ran_in_the_worker(cluster, run.run_id, _step_keys(assets), pool)
    _assert_materialized(cluster, run, assets, ids[:1])


@pytest.mark.slow
def test_batched_steps_over_a_partition_range_run_in_the_celery_worker(cluster: Cluster) -> None:
    ids = _sentences(cluster)
    assets = ["narration", "shot"]
    run, pool = _materialize(cluster, assets, "--partition-range", f"{ids[1]}...{ids[2]}")
    _assert_ran_in_the_worker(cluster, run.run_id, _step_keys(assets), pool)
    _assert_materialized(cluster, run, assets, ids[1:])
    log = cluster.worker_log.read_text(errors="replace")
    assert log.count("Task execute_plan[") >= 2 * (4 + 2)  # received and succeeded, per step
    assert "succeeded in" in log


@pytest.mark.slow
def test_pools_bound_the_steps_the_celery_executor_hands_out(cluster: Cluster) -> None:
    from videogen_assets.dagster_internals import ReconstructableJob

    configure_pools(cluster.instance, gpu_servers=1)
    job = ReconstructableJob.for_file(
        str(Path(__file__).parent / "support" / "celery_pool_jobs.py"), "celery_pooled_job"
    )
    executor = {"broker": cluster.broker, "backend": cluster.broker}
    with (
        _watch_worker(cluster) as pool,
        dg.execute_job(
            job, instance=cluster.instance, run_config={"execution": {"config": executor}}
        ) as result,
    ):
        assert result.success
        run_id = result.run_id
    steps = {f"gpu_{i}" for i in range(3)} | {f"tts_{i}" for i in range(4)}
    _assert_ran_in_the_worker(cluster, run_id, steps, pool)
    spans = step_spans(cluster.instance, run_id)
    gpu = sorted(v for k, v in spans.items() if k.startswith("gpu_"))
    tts = [v for k, v in spans.items() if k.startswith("tts_")]
    assert len(gpu) == 3 and len(tts) == 4
    assert max_overlap(gpu) == 1, gpu  # the pool: one slot
    for a, b in itertools.pairwise(gpu):
        assert b[0] >= a[1], gpu
    # tts (4 slots) would allow more: the worker's concurrency (-c 2) is the bound
    assert max_overlap(list(spans.values())) == WORKER_CONCURRENCY, spans


@pytest.mark.slow
def test_a_step_records_the_code_version_of_the_studio_as_it_is_now(cluster: Cluster) -> None:
    """The studio builds its definitions from the studio folder: after an edit (here the
    project's style, part of the shot's code version) the worker runs the step with the edited
    definitions, not with the ones a pool process loaded for an earlier run of the same job."""
    ids = _sentences(cluster)
    brief = cluster.root / "projects" / PROJECT / "project.yaml"
    original = brief.read_text(encoding="utf-8")
    assert "style: documentary" in original
    shot = key(PROJECT, "shot")
    recorded: list[str | None] = []
    try:
        for style in ("anime", "documentary"):
            brief.write_text(original.replace("documentary", style), encoding="utf-8")
            run, _pool = _materialize(cluster, ["shot"], "--partition", ids[0])
            record = cluster.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=shot, asset_partitions=[ids[0]]), limit=1
            ).records[0]
            assert record.run_id == run.run_id
            provenance = extract_data_provenance_from_entry(record.event_log_entry)
            assert provenance is not None
            now = build_definitions(cluster.root, BackendSettings.from_env(cluster.env))
            assert (
                provenance.code_version == now.resolve_assets_def(shot).code_versions_by_key[shot]
            ), style
            recorded.append(provenance.code_version)
    finally:
        brief.write_text(original, encoding="utf-8")
    assert recorded[0] != recorded[1]

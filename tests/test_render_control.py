"""`videogen render` under control: one Ctrl-C (SIGINT to the process group, or to the main pid
alone) stops it within 2 s with exit status 130 and one line, the run marked canceled, ComfyUI's
queue emptied and left empty, no step retried, and the next render completes; an interrupted or
cancelled step is never retried by its RetryPolicy; one render per project at a time (the
second names the holder's run and pid, or waits with --wait; a dead holder never blocks); a
failed render prints one line naming its full log file under <studio>/logs/; partitions that
another run is making are left to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from tests.support.servers.comfyui import FakeComfyUI
from videogen import render_control as rc
from videogen.cli import main
from videogen.operations import create_project
from videogen_domain.errors import InputError
from videogen_resources.workflows import newer_node_schemas

pytestmark = pytest.mark.slow  # renders in `videogen` subprocesses

SCRIPT = "# T\nMagma rises.\nLava flows.\nRock melts.\n"
VIDEOGEN = str(Path(sys.executable).with_name("videogen"))


def _studio(tmp_path: Path) -> tuple[dict[str, str], Path]:
    script = tmp_path / "s.md"
    script.write_text(SCRIPT, encoding="utf-8")
    root = tmp_path / "studio"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DAGSTER_HOME", "COMFYUI_URL", "CHATTERBOX_URL", "VIDEOGEN_TTS"}
    }
    env["VIDEOGEN_HOME"] = str(root)
    subprocess.run(
        [VIDEOGEN, "new", "T", "--name", "t", "--script", str(script)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env, root


def _instance(root: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(root / ".dagster"))


@pytest.mark.parametrize("target", ["group", "pid"])
def test_one_ctrl_c_stops_the_render(tmp_path: Path, target: str) -> None:
    env, root = _studio(tmp_path)
    with FakeComfyUI(job_seconds=60, version="0.7.0", extra_nodes=newer_node_schemas()) as comfy:
        env["COMFYUI_URL"] = comfy.url
        proc = subprocess.Popen(
            [VIDEOGEN, "render", "t"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's job has
        )
        try:
            t0 = time.monotonic()
            while not comfy.requests_to("POST", "/prompt") and time.monotonic() - t0 < 240:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
            assert comfy.requests_to("POST", "/prompt"), "no keyframe was ever queued"
            time.sleep(0.5)  # one prompt running, the next one waiting in the queue
            assert not comfy.queue_empty()
            stopped_at = time.monotonic()
            if target == "group":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                os.kill(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            elapsed = time.monotonic() - stopped_at
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 130, err
        assert elapsed <= 2.0, f"stopped after {elapsed:.2f}s"
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        lines = [ln for ln in err.splitlines() if ln.startswith("canceled:")]
        assert len(lines) == 1 and "videogen render t" in lines[0], err
        assert comfy.queue_empty()
        prompts = len(comfy.requests_to("POST", "/prompt"))
        time.sleep(3.0)  # a retry policy would queue again after 2 s
        assert comfy.queue_empty()
        assert len(comfy.requests_to("POST", "/prompt")) == prompts, "a step was retried"
        assert comfy.interrupts, "the running prompt was not interrupted"

        instance = _instance(root)
        runs = instance.get_runs()
        statuses = {r.run_id: r.status for r in runs}
        canceled = [r for r in runs if r.status == dg.DagsterRunStatus.CANCELED]
        assert len(canceled) == 1, statuses  # the run that was making keyframes
        others = set(statuses.values()) - {dg.DagsterRunStatus.CANCELED}
        assert others <= {dg.DagsterRunStatus.SUCCESS}, statuses
        retried = [
            e
            for r in canceled
            for e in instance.all_logs(r.run_id)
            if e.dagster_event
            and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        ]
        assert not retried

        if target == "group":  # the next render picks up where this one stopped
            comfy.job_seconds = 0.05
            done = subprocess.run(
                [VIDEOGEN, "render", "t"], env=env, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stderr
            assert (root / "projects" / "t" / "rough_cut.mp4").exists()


def test_an_interrupted_step_is_never_retried(instance: dg.DagsterInstance) -> None:
    """Dagster applies a RetryPolicy to an interrupt; the studio's assets stop instead."""
    from videogen_assets.cancel import stops_on_cancel

    attempts: list[int] = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.1))
    @stops_on_cancel
    def interrupted(context):  # type: ignore[no-untyped-def]
        attempts.append(1)
        raise KeyboardInterrupt

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.1))
    @stops_on_cancel
    def flaky(context):  # type: ignore[no-untyped-def]
        attempts.append(2)
        if attempts.count(2) == 1:
            raise RuntimeError("a passing fault")
        yield dg.MaterializeResult()

    result = dg.materialize([interrupted], instance=instance, raise_on_error=False)
    assert not result.success and attempts == [1]
    events = [e.event_type for e in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    # an ordinary failure is still retried by the policy
    assert dg.materialize([flaky], instance=instance).success and attempts.count(2) == 2


def test_a_run_cancelled_in_the_ui_is_not_retried(instance: dg.DagsterInstance) -> None:
    """A step failing while its run is CANCELING ends the run CANCELED, without a retry."""
    from videogen_assets.cancel import run_cancel_check, stops_on_cancel

    attempts: list[float] = []
    started = threading.Event()

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.1))
    @stops_on_cancel
    def slow(context):  # type: ignore[no-untyped-def]
        attempts.append(time.monotonic())
        cancelled = run_cancel_check(context)
        started.set()
        t0 = time.monotonic()
        while not cancelled():
            assert time.monotonic() - t0 < 30
            time.sleep(0.05)
        raise RuntimeError("the service said: interrupted")  # what a service answers

    results: list[dg.ExecuteInProcessResult] = []
    worker = threading.Thread(
        target=lambda: results.append(
            dg.materialize([slow], instance=instance, raise_on_error=False)
        )
    )
    worker.start()
    assert started.wait(60)
    [run] = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED]
    instance.report_run_canceling(run)
    worker.join(60)
    assert not worker.is_alive()
    assert len(attempts) == 1
    final = instance.get_run_by_id(run.run_id)
    assert final is not None and final.status == dg.DagsterRunStatus.CANCELED


_HOLDER = """
import sys, time
from pathlib import Path
from videogen.render_control import acquire_lock
lock = acquire_lock(Path(sys.argv[1]), "t")
lock.note(pid=__import__("os").getpid(), host="here", render="abc123", started="now")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(root: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_render_is_refused_naming_the_holder(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    script = tmp_path / "s.md"
    script.write_text(SCRIPT, encoding="utf-8")
    create_project(studio_root, title="T", name="t", script_file=script)
    holder = _hold(studio_root, 60)
    try:
        runner = CliRunner()
        res = runner.invoke(main, ["--home", str(studio_root), "render", "t"])
        assert res.exit_code == 1
        [line] = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert f"pid {holder.pid}" in line and "abc123"[:6] in line and "--wait" in line
        assert "Traceback" not in res.output
    finally:
        holder.kill()
        holder.wait()
    # the holder died (kill -9): its lock is gone with it
    lock = rc.acquire_lock(studio_root, "t")
    lock.release()


def test_wait_takes_the_lock_when_the_holder_ends(tmp_path: Path) -> None:
    holder = _hold(tmp_path, 1.0)
    heard: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"pid {holder.pid}"):
        rc.acquire_lock(tmp_path, "t")
    lock = rc.acquire_lock(tmp_path, "t", wait=True, on_wait=heard.append)
    assert time.monotonic() - t0 >= 0.5 and holder.wait(10) == 0
    assert len(heard) == 1 and f"pid {holder.pid}" in heard[0]
    lock.release()


def test_partitions_of_runs_in_progress_are_busy(instance: dg.DagsterInstance) -> None:
    from dagster import DagsterRun

    keys = ["t.s1", "t.s2", "t.s3", "t.s4"]
    ranged = DagsterRun(
        job_name="__ASSET_JOB",
        run_id="r" * 32,
        status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["t", "clip"])}),
        tags={
            "dagster/asset_partition_range_start": "t.s2",
            "dagster/asset_partition_range_end": "t.s3",
        },
    )
    single = DagsterRun(
        job_name="__ASSET_JOB",
        run_id="q" * 32,
        status=dg.DagsterRunStatus.CANCELING,
        asset_selection=frozenset({dg.AssetKey(["t", "narration"])}),
        tags={"dagster/partition": "t.s4"},
    )
    mine = DagsterRun(
        job_name="__ASSET_JOB",
        run_id="m" * 32,
        status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["t", "shot"])}),
        tags={"dagster/partition": "t.s1", rc.RENDER_TAG: "me"},
    )
    other_project = DagsterRun(
        job_name="__ASSET_JOB",
        run_id="o" * 32,
        status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["u", "clip"])}),
        tags={"dagster/partition": "u.s1"},
    )
    done = DagsterRun(
        job_name="__ASSET_JOB",
        run_id="d" * 32,
        status=dg.DagsterRunStatus.SUCCESS,
        asset_selection=frozenset({dg.AssetKey(["t", "keyframe"])}),
        tags={"dagster/partition": "t.s1"},
    )
    for run in (ranged, single, mine, other_project, done):
        instance.add_run(run)
    busy, runs = rc.busy_partitions(instance, "t", keys, "me")
    assert busy == {"clip": {"t.s2", "t.s3"}, "narration": {"t.s4"}}
    assert sorted(runs) == sorted([ranged.run_id, single.run_id])


def test_failed_render_is_one_line_naming_its_log(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.servers.tts import ChatterboxServer, Fault

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    script = tmp_path / "s.md"
    script.write_text("# One\nA single short line.\n", encoding="utf-8")
    runner = CliRunner()
    home = ["--home", str(studio_root)]
    assert runner.invoke(main, [*home, "new", "Tides", "--script", str(script)]).exit_code == 0
    with ChatterboxServer(flavour="openai") as server:
        for _ in range(4):
            server.queue(Fault(kind="400", path="/v1/audio/speech"))
        monkeypatch.setenv("CHATTERBOX_URL", server.url)
        res = runner.invoke(main, [*home, "render", "tides"])
    assert res.exit_code == 1
    out = res.output
    [line] = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert "Maximum 3000 characters" in line and "full log: " in line
    assert "Traceback" not in out and 'File "' not in out and "dagster._core" not in out
    log = Path(line.split("full log: ", 1)[1].rstrip(")"))
    assert log.parent == studio_root / "logs" and log.is_file()
    text = log.read_text(encoding="utf-8")
    assert "Maximum 3000 characters" in text and 'File "' in text  # the stack traces are kept


def _mats(instance: dg.DagsterInstance, project: str, kind: str) -> dict[str, int]:
    out: dict[str, int] = {}
    records = instance.fetch_materializations(dg.AssetKey([project, kind]), limit=1000).records
    for rec in records:
        out[rec.partition_key or ""] = out.get(rec.partition_key or "", 0) + 1
    return out


def test_render_makes_only_what_is_stale_per_asset_and_partition(
    studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from videogen.operations import render
    from videogen_resources.settings import BackendSettings

    settings = BackendSettings(clip_preset="ultrafast")
    script = tmp_path / "s.md"
    script.write_text(SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        studio_root, title="T", name="t", script_file=script, instance=instance
    )
    render(studio_root, "t", instance=instance, settings=settings)
    ids = sorted(_mats(instance, "t", "narration"))
    assert len(ids) == 3
    outputs = ("rough_cut", "subtitles", "storyboard", "export")
    once = {kind: 1 for kind in outputs}
    assert {k: sum(_mats(instance, "t", k).values()) for k in outputs} == once

    # Nothing changed: nothing is made again, the project outputs included.
    runs_before = len(instance.get_runs())
    assert render(studio_root, "t", instance=instance, settings=settings) is None
    assert len(instance.get_runs()) == runs_before

    # A directive changes the shot of one sentence: its narration is up to date and stays.
    text = script.read_text(encoding="utf-8").replace(
        "Lava flows.\n", "Lava flows.\n> camera: zoom-in\n"
    )
    (folder / "script.md").write_text(text, encoding="utf-8")
    render(studio_root, "t", instance=instance, settings=settings)
    assert _mats(instance, "t", "narration") == dict.fromkeys(ids, 1)
    edited = ids[1]
    expected = {i: (2 if i == edited else 1) for i in ids}
    assert _mats(instance, "t", "shot") == expected
    assert _mats(instance, "t", "clip") == expected
    twice = {kind: 2 for kind in outputs}  # an input changed: rebuilt once
    assert {k: sum(_mats(instance, "t", k).values()) for k in outputs} == twice

    # A project output's file is missing: the outputs are rebuilt, nothing else.
    (folder / "storyboard.html").unlink()
    render(studio_root, "t", instance=instance, settings=settings)
    assert (folder / "storyboard.html").exists()
    assert _mats(instance, "t", "clip") == expected
    assert sum(_mats(instance, "t", "storyboard").values()) == 3

    # Moving a sentence changes the rough cut's order: the outputs are rebuilt.
    lines = text.splitlines(keepends=True)
    moved = [lines[0], lines[4], *lines[1:4]]  # "Rock melts." first
    (folder / "script.md").write_text("".join(moved), encoding="utf-8")
    render(studio_root, "t", instance=instance, settings=settings)
    assert sum(_mats(instance, "t", "rough_cut").values()) == 4


def test_status_warns_when_the_script_is_far_longer_than_the_brief(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    runner = CliRunner()
    home = ["--home", str(studio_root)]
    long_script = tmp_path / "long.md"
    body = "".join(f"Wave number {i} rolls onto the grey beach.\n" for i in range(30))
    long_script.write_text("# Sea\n" + body, encoding="utf-8")  # 30 x 8 = 240 words
    short_script = tmp_path / "short.md"
    short_script.write_text(SCRIPT, encoding="utf-8")
    for name, script in (("long", long_script), ("short", short_script)):
        res = runner.invoke(main, [*home, "new", name, "--minutes", "1", "--script", str(script)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(main, [*home, "status", "long"])
    assert res.exit_code == 0
    [line] = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert "240 words" in line and "1.6x" in line and "1 minutes (150 words)" in line
    res = runner.invoke(main, [*home, "status", "short"])
    assert res.exit_code == 0 and "warning:" not in res.output


def test_a_run_cancelled_in_the_ui_empties_the_comfyui_queue_within_2s(
    studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A batch of keyframes on a slow server: the run turns CANCELING (as the UI's terminate
    does first); within 2 s the running prompt is interrupted and the queued one deleted, the
    queue stays empty, nothing is retried, and the run ends CANCELED."""
    from videogen.operations import sync
    from videogen_assets.context import key
    from videogen_assets.definitions import build_definitions
    from videogen_resources.settings import BackendSettings

    script = tmp_path / "s.md"
    script.write_text(SCRIPT, encoding="utf-8")
    create_project(studio_root, title="T", name="t", script_file=script, instance=instance)
    sync(studio_root, "t", instance=instance)
    with FakeComfyUI(job_seconds=60, version="0.7.0", extra_nodes=newer_node_schemas()) as comfy:
        defs = build_definitions(studio_root, BackendSettings(comfyui_urls=[comfy.url]))
        assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
        resources = dict(defs.resources or {})
        ids = sorted(instance.get_dynamic_partitions("t__sentences"))
        assert len(ids) == 3

        def run(kind: str) -> dg.ExecuteInProcessResult:
            return dg.materialize(
                assets,
                instance=instance,
                resources=resources,
                selection=[key("t", kind)],
                tags={
                    "dagster/asset_partition_range_start": ids[0],
                    "dagster/asset_partition_range_end": ids[-1],
                },
                raise_on_error=False,
            )

        assert run("shot").success
        results: list[dg.ExecuteInProcessResult] = []
        worker = threading.Thread(target=lambda: results.append(run("keyframe")))
        worker.start()
        t0 = time.monotonic()
        while len(comfy.requests_to("POST", "/prompt")) < 2 and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        time.sleep(0.3)
        assert len(comfy.requests_to("POST", "/prompt")) == 2 and not comfy.queue_empty()
        [started] = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED]
        cancelled_at = time.monotonic()
        instance.report_run_canceling(started)
        while not comfy.queue_empty() and time.monotonic() - cancelled_at < 10:
            time.sleep(0.02)
        emptied = time.monotonic() - cancelled_at
        assert emptied <= 2.0, f"the queue emptied {emptied:.2f}s after the cancel"
        worker.join(30)
        assert not worker.is_alive()
        time.sleep(3.0)  # a retry policy would queue again after 2 s
        assert comfy.queue_empty() and len(comfy.requests_to("POST", "/prompt")) == 2
        assert comfy.deleted and comfy.interrupts
    final = instance.get_run_by_id(started.run_id)
    assert final is not None and final.status == dg.DagsterRunStatus.CANCELED
    events = [e.event_type for e in results[0].all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events

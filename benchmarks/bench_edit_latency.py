"""Edit-to-regenerated latency with the real Dagster daemon running.

Creates and renders a small project, starts `dagster-daemon run` on the studio's workspace, then
edits one sentence of script.md and measures the time until that sentence's clip (and then the
rough cut) carry a new materialization. The generation time itself (the steps' own durations) is
reported beside it, so the orchestration share can be read off.

Target: <= 20 s beyond the generation time itself.

Usage: python benchmarks/bench_edit_latency.py [--timeout 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType

from videogen.dagster_files import DAGSTER_YAML, WORKSPACE_YAML
from videogen.operations import create_project, render
from videogen_assets.concurrency import configure_pools
from videogen_resources.settings import BackendSettings

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """# Opening
The sky over the volcano glows red.
Ash falls like grey snow.

## Ending
Life returns to the slopes.
"""


def _latest_ts(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> float:
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    return rec[0].timestamp if rec else 0.0


def _step_seconds(instance: dg.DagsterInstance, since: float) -> float:
    total = 0.0
    from dagster._core.storage.dagster_run import RunsFilter

    for run in instance.get_runs(RunsFilter()):
        starts: dict[str, float] = {}
        for rec in instance.get_records_for_run(run.run_id, limit=10000).records:
            e = rec.event_log_entry
            ev = e.dagster_event
            if ev is None or ev.step_key is None or e.timestamp < since:
                continue
            if ev.event_type == DagsterEventType.STEP_START:
                starts[ev.step_key] = e.timestamp
            elif ev.event_type == DagsterEventType.STEP_SUCCESS and ev.step_key in starts:
                total += e.timestamp - starts[ev.step_key]
    return total


def _timeline(instance: dg.DagsterInstance, since: float) -> list[str]:
    """What happened after the save, in seconds from it: each run's creation, start, steps and
    end (where the orchestration time goes)."""
    from dagster._core.storage.dagster_run import RunsFilter

    lines: list[tuple[float, str]] = []
    for rec in instance.get_run_records(RunsFilter()):
        if rec.create_timestamp.timestamp() < since:
            continue
        run = rec.dagster_run
        what = ",".join(sorted(k.path[-1] for k in run.asset_selection or ()))
        part = run.tags.get("dagster/partition", "")
        lines.append((rec.create_timestamp.timestamp() - since, f"run created  {what} {part}"))
        if rec.start_time:
            lines.append((rec.start_time - since, f"run started  {what}"))
        if rec.end_time:
            lines.append((rec.end_time - since, f"run ended    {what} ({run.status.value})"))
        for r in instance.get_records_for_run(run.run_id, limit=10000).records:
            ev = r.event_log_entry.dagster_event
            if ev is None or ev.step_key is None:
                continue
            if ev.event_type in (
                DagsterEventType.STEP_START,
                DagsterEventType.STEP_SUCCESS,
                DagsterEventType.STEP_SKIPPED,
            ):
                name = ev.event_type.value.lower().replace("_", " ")
                lines.append((r.event_log_entry.timestamp - since, f"  {name:12} {ev.step_key}"))
    for rec in instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["latency", "sentence"])), limit=5
    ).records:
        if rec.timestamp >= since:
            lines.append((rec.timestamp - since, f"observed     sentence {rec.partition_key}"))
    return [f"{t:7.2f} s  {text}" for t, text in sorted(lines)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vg-latency-"))
    root, home = base / "studio", base / "home"
    home.mkdir()
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["VIDEOGEN_HOME"] = str(root)
    os.environ["VIDEOGEN_CLIP_PRESET"] = "ultrafast"
    script = base / "s.md"
    script.write_text(SCRIPT, encoding="utf-8")
    instance = dg.DagsterInstance.get()
    configure_pools(instance, gpu_servers=0)
    create_project(root, title="Latency", name="latency", script_file=script, instance=instance)
    render(root, "latency", instance=instance, settings=BackendSettings(clip_preset="ultrafast"))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(WORKSPACE_YAML)],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(20)  # daemon start, first sensor ticks over the unchanged studio
        clip = dg.AssetKey(["latency", "clip"])
        cut = dg.AssetKey(["latency", "rough_cut"])
        pk = "latency.s0002"
        before_clip, before_cut = _latest_ts(instance, clip, pk), _latest_ts(instance, cut, None)
        path = root / "projects" / "latency" / "script.md"
        path.write_text(SCRIPT.replace("grey snow", "soft grey snow"), encoding="utf-8")
        saved = time.time()
        t_clip = t_cut = None
        clip_ts = 0.0
        while time.time() - saved < args.timeout:
            if t_clip is None and _latest_ts(instance, clip, pk) > before_clip:
                t_clip = time.time() - saved
                clip_ts = _latest_ts(instance, clip, pk)
            # the rough cut that includes the new clip (an earlier one may follow the narration)
            if t_clip is not None and _latest_ts(instance, cut, None) > max(before_cut, clip_ts):
                t_cut = time.time() - saved
                break
            time.sleep(0.5)
        work = _step_seconds(instance, saved)
        timeline = _timeline(instance, saved)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        finally:
            # the daemon's code server may outlive it (it waits for its heartbeat to time out)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
    print("timeline after the save:")
    for line in timeline:
        print(line)
    print("edit of one sentence, daemon running (sensor every 2 s, automation every 3 s)")
    print(f"saved -> clip regenerated: {t_clip if t_clip is None else round(t_clip, 1)} s")
    print(f"saved -> rough cut regenerated: {t_cut if t_cut is None else round(t_cut, 1)} s")
    print(f"generation time itself (sum of step durations): {work:.1f} s")
    if t_cut is not None:
        print(f"orchestration beyond generation: {t_cut - work:.1f} s  (target <= 20 s)")
    if os.environ.get("VIDEOGEN_BENCH_KEEP"):
        print(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Contract: the studio's default executor runs a run over one sentence (an edit's chain) in the
run's own process, and a batch over a range of sentences with Dagster's multiprocess executor
(a process per step), both launched the way Dagster launches runs (`dagster asset materialize`
on the studio's code location, a persistent instance)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType

from tests.support.crash import SCRIPT_8, studio_env, videogen_cmd

PROJECT = "volcanoes"
SCRIPT_3 = SCRIPT_8.split("\n## ", 1)[0] + "\n"  # three sentences
CHAIN = ["narration", "shot", "keyframe", "clip"]

pytestmark = pytest.mark.slow


def _pids(instance: dg.DagsterInstance, run_id: str) -> tuple[int, set[int]]:
    """The pid of the run's process and the pids its steps started in."""
    run_pid, steps = -1, set()
    for rec in instance.get_records_for_run(run_id, limit=10000).records:
        ev = rec.event_log_entry.dagster_event
        if ev is None:
            continue
        if ev.event_type == DagsterEventType.RUN_START:
            run_pid = ev.pid or -1
        elif ev.event_type == DagsterEventType.STEP_START:
            steps.add(ev.pid or -1)
    return run_pid, steps


def test_one_sentence_runs_in_process_and_a_batch_runs_a_process_per_step(
    tmp_path: Path,
) -> None:
    root, home = tmp_path / "studio", tmp_path / "home"
    home.mkdir()
    script = tmp_path / "s.md"
    script.write_text(SCRIPT_3, encoding="utf-8")
    env = studio_env(root, home)
    env.pop("VIDEOGEN_EXECUTOR", None)
    subprocess.run(
        videogen_cmd(root, "new", "Volcanoes", "--name", PROJECT, "--script", str(script)),
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ids = sorted(instance.get_dynamic_partitions(f"{PROJECT}__sentences"))
        assert len(ids) == 3

        def materialize(assets: list[str], *partition_args: str) -> dg.DagsterRun:
            before = {r.run_id for r in instance.get_runs()}
            cmd = [sys.executable, "-m", "dagster", "asset", "materialize"]
            cmd += ["-m", "videogen_assets.definitions"]
            cmd += ["--select", ",".join(f"{PROJECT}/{a}" for a in assets), *partition_args]
            done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, timeout=300)
            assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
            (run,) = [r for r in instance.get_runs() if r.run_id not in before]
            assert run.status == dg.DagsterRunStatus.SUCCESS
            return run

        one = materialize(CHAIN, "--partition", ids[0])
        run_pid, step_pids = _pids(instance, one.run_id)
        assert run_pid > 0 and step_pids == {run_pid}, "one sentence: every step in the run"

        batch = materialize(["narration", "shot"], "--partition-range", f"{ids[1]}...{ids[2]}")
        run_pid, step_pids = _pids(instance, batch.run_id)
        assert len(step_pids) == 2 and run_pid not in step_pids, "a batch: a process per step"

        for kind in CHAIN:
            done = instance.get_materialized_partitions(dg.AssetKey([PROJECT, kind]))
            assert ids[0] in done
        for kind in ("narration", "shot"):
            done = instance.get_materialized_partitions(dg.AssetKey([PROJECT, kind]))
            assert set(ids) <= done
        clip = root / "projects" / PROJECT / "sentences" / ids[0] / "clip.mp4"
        assert clip.stat().st_size > 0

"""Pool limits set by `configure_pools` hold in a real multiprocess run: steps of pool `gpu`
(one slot per ComfyUI server) never overlap, while `tts` steps run side by side."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.support.steps import max_overlap, step_spans
from videogen_assets.concurrency import configure_pools


def test_configure_pools_sets_slots_and_is_idempotent(instance: dg.DagsterInstance) -> None:
    limits = configure_pools(instance, gpu_servers=2)
    assert limits == {"gpu": 2, "tts": 4, "render": os.cpu_count() or 1}
    assert configure_pools(instance, gpu_servers=2) == limits
    for pool, slots in limits.items():
        assert instance.event_log_storage.get_concurrency_info(pool).slot_count == slots


def _configure_after(home: str, barrier: Any, results: Any) -> None:
    instance = dg.DagsterInstance.from_config(home)
    try:
        barrier.wait(timeout=60)
        configure_pools(instance, gpu_servers=1)
        results.put("ok")
    except BaseException as exc:  # reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        instance.dispose()


@pytest.mark.slow
def test_processes_configuring_pools_at_once_all_succeed(
    tmp_path: Path, empty_instance_home: Path
) -> None:
    """Two `videogen new` at once both set the pools of a fresh instance: the one that loses the
    race to create a pool reads it again instead of failing on the unique key."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(4):
        home = tmp_path / f"home{attempt}"
        shutil.copytree(empty_instance_home, home)
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [
            ctx.Process(target=_configure_after, args=(str(home), barrier, results))
            for _ in range(4)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert outcomes == ["ok"] * 4, outcomes


@pytest.mark.slow
def test_gpu_steps_never_overlap_while_tts_steps_do(instance: dg.DagsterInstance) -> None:
    from videogen_assets.dagster_internals import ReconstructableJob

    configure_pools(instance, gpu_servers=1)
    # step subprocesses load the job from its file, as a code location would
    job = ReconstructableJob.for_file(
        str(Path(__file__).parent / "support" / "pool_jobs.py"), "pooled_job"
    )
    result = dg.execute_job(job, instance=instance)
    assert result.success
    spans = step_spans(instance, result.run_id)
    gpu = sorted(v for k, v in spans.items() if k.startswith("gpu_"))
    tts = [v for k, v in spans.items() if k.startswith("tts_")]
    assert len(gpu) == 3 and len(tts) == 4
    assert max_overlap(gpu) == 1, gpu
    for (_, end), (nxt, _) in itertools.pairwise(gpu):
        assert nxt >= end
    assert 2 <= max_overlap(tts) <= 4, tts

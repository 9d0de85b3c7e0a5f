"""Pool limits set by `configure_pools` hold in a real multiprocess run: steps of pool `gpu`
(one slot per ComfyUI server) never overlap, while `tts` steps run side by side."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType

from videogen_assets.concurrency import configure_pools


def _intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    start: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for rec in instance.get_records_for_run(run_id, limit=100000).records:
        entry = rec.event_log_entry
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            start[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            spans[event.step_key] = (start[event.step_key], entry.timestamp)
    return spans


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best


def test_configure_pools_sets_slots_and_is_idempotent(instance: dg.DagsterInstance) -> None:
    limits = configure_pools(instance, gpu_servers=2)
    assert limits == {"gpu": 2, "tts": 4, "render": os.cpu_count() or 1}
    assert configure_pools(instance, gpu_servers=2) == limits
    for pool, slots in limits.items():
        assert instance.event_log_storage.get_concurrency_info(pool).slot_count == slots


def test_gpu_steps_never_overlap_while_tts_steps_do(instance: dg.DagsterInstance) -> None:
    from dagster._core.definitions.reconstruct import ReconstructableJob

    configure_pools(instance, gpu_servers=1)
    # step subprocesses load the job from its file, as a code location would
    job = ReconstructableJob.for_file(str(Path(__file__).with_name("pool_jobs.py")), "pooled_job")
    result = dg.execute_job(job, instance=instance)
    assert result.success
    spans = _intervals(instance, result.run_id)
    gpu = sorted(v for k, v in spans.items() if k.startswith("gpu_"))
    tts = [v for k, v in spans.items() if k.startswith("tts_")]
    assert len(gpu) == 3 and len(tts) == 4
    assert _max_overlap(gpu) == 1, gpu
    for (_, end), (nxt, _) in itertools.pairwise(gpu):
        assert nxt >= end
    assert 2 <= _max_overlap(tts) <= 4, tts

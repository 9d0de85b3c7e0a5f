"""Pool limits set by `configure_pools` hold in a real multiprocess run: steps of pool `gpu`
(one slot per ComfyUI server) never overlap, while `tts` steps run side by side."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

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

"""Tiny pooled ops for the concurrency test (loaded by reconstructable in step subprocesses)."""

from __future__ import annotations

import time

import dagster as dg

SLEEP_S = 1.0


def _sleeper(name: str, pool: str) -> dg.OpDefinition:
    @dg.op(name=name, pool=pool)
    def _op() -> None:
        time.sleep(SLEEP_S)

    return _op


GPU_OPS = [_sleeper(f"gpu_{i}", "gpu") for i in range(3)]
TTS_OPS = [_sleeper(f"tts_{i}", "tts") for i in range(4)]


@dg.job(executor_def=dg.multiprocess_executor.configured({"max_concurrent": 8}))
def pooled_job() -> None:
    for op in [*GPU_OPS, *TTS_OPS]:
        op()

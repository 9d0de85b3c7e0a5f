"""Tiny pooled ops run by the Celery executor (the celery test; loaded by file in its worker).

The broker and backend come from the run config, as a run of the studio gets them from
``VIDEOGEN_CELERY_BROKER`` / ``VIDEOGEN_CELERY_BACKEND``.
"""

from __future__ import annotations

import time

import dagster as dg
from dagster_celery import celery_executor

SLEEP_S = 1.0


def _sleeper(name: str, pool: str) -> dg.OpDefinition:
    @dg.op(name=name, pool=pool)
    def _op() -> None:
        time.sleep(SLEEP_S)

    return _op


GPU_OPS = [_sleeper(f"gpu_{i}", "gpu") for i in range(3)]
TTS_OPS = [_sleeper(f"tts_{i}", "tts") for i in range(4)]


@dg.job(executor_def=celery_executor)
def celery_pooled_job() -> None:
    for op in [*GPU_OPS, *TTS_OPS]:
        op()

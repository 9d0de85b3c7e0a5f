"""Pool limits on the Dagster instance: one GPU job per ComfyUI server, a few TTS jobs, ffmpeg
jobs up to the core count."""

from __future__ import annotations

import os
import sqlite3

import dagster as dg
import sqlalchemy.exc


def pool_limits(*, gpu_servers: int, tts: int = 4, render: int | None = None) -> dict[str, int]:
    """The slots of each pool the studio's assets use."""
    return {
        "gpu": max(1, gpu_servers),
        "tts": max(1, tts),
        "render": max(1, render if render is not None else (os.cpu_count() or 1)),
    }


def configure_pools(
    instance: dg.DagsterInstance, *, gpu_servers: int, tts: int = 4, render: int | None = None
) -> dict[str, int]:
    """Set the instance's concurrency slots of pools `gpu`, `tts` and `render` (idempotent)."""
    limits = pool_limits(gpu_servers=gpu_servers, tts=tts, render=render)
    storage = instance.event_log_storage
    for pool, slots in limits.items():
        for attempt in range(3):
            try:
                if storage.get_concurrency_info(pool).slot_count != slots:
                    storage.set_concurrency_slots(pool, slots)
                break
            except (sqlalchemy.exc.IntegrityError, sqlite3.IntegrityError):
                # Another process (a second `videogen new` or render) created the pool between
                # the check and the write: read it again and set it if it still differs.
                if attempt == 2:
                    raise
    return limits

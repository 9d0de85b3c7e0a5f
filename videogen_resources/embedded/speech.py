"""What every narrator does with the samples it made: normalize, write, measure.

One audio path for every engine (Piper, eSpeak NG, Chatterbox): gain to the loudness target
with a look-ahead true-peak limiter (``audio.normalize_loudness``), a 16-bit WAV written
atomically, and the loudness and true peak measured on the samples that were written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from videogen_resources import audio
from videogen_resources.base import ProgressFn, SpeechResult


def finish_speech(
    raw: np.ndarray,
    rate: int,
    out_path: Path,
    *,
    target_lufs: float | None,
    true_peak_db: float,
    voice: str,
    engine: str,
    version: str,
    started: float,
    progress: ProgressFn | None,
    extra: Mapping[str, Any] | None = None,
) -> SpeechResult:
    """Normalize ``raw`` to the loudness target, write it atomically and describe the result.

    ``target_lufs=None`` keeps the engine's own loudness; the true peak is still held at
    ``true_peak_db``. ``started`` is a `time.perf_counter` reading; ``extra`` facts of the
    engine are kept beside the measured ones.
    """
    if target_lufs is None:
        samples = audio.limit_true_peak(raw, rate, true_peak_db)
    else:
        samples = audio.normalize_loudness(raw, rate, target_lufs, true_peak_db)
    lufs, peak = audio.loudness(samples, rate)
    out_path = audio.write_wav(out_path, samples, rate)
    elapsed = time.perf_counter() - started
    duration_ms = round(samples.size * 1000 / rate)
    if progress:
        progress(
            f"{engine}: {duration_ms / 1000:.2f} s of speech in {elapsed:.2f} s "
            f"(real-time factor {elapsed / max(duration_ms / 1000, 1e-6):.3f})"
        )
    return SpeechResult(
        path=out_path,
        duration_ms=duration_ms,
        sample_rate=rate,
        num_samples=int(samples.size),
        voice=voice,
        engine=engine,
        loudness_lufs=round(lufs, 2) if math.isfinite(lufs) else None,
        extra={
            **(extra or {}),
            "true_peak_dbtp": round(peak, 2) if math.isfinite(peak) else None,
            "synthesis_seconds": round(elapsed, 3),
            "version": version,
        },
    )

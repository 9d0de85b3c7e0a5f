"""What every embedded narrator does with the samples it made: normalize, write, measure."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from videogen_resources import media
from videogen_resources.base import ProgressFn, SpeechResult


def finish_speech(
    raw: np.ndarray,
    rate: int,
    out_path: Path,
    *,
    target_lufs: float,
    true_peak_db: float,
    voice: str,
    engine: str,
    version: str,
    started: float,
    progress: ProgressFn | None,
) -> SpeechResult:
    """Normalize ``raw`` to the loudness target, write it atomically and describe the result."""
    samples = media.normalize_loudness(raw, rate, target_lufs, true_peak_db)
    lufs, peak = media.loudness(samples, rate)
    out_path = media.write_wav(out_path, samples, rate)
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
        loudness_lufs=lufs if math.isfinite(lufs) else None,
        extra={
            "true_peak_dbtp": round(peak, 2) if math.isfinite(peak) else None,
            "synthesis_seconds": round(elapsed, 3),
            "version": version,
        },
    )

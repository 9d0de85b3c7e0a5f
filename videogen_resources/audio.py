"""Audio as numpy arrays: WAV in and out, resampling, loudness, the limiter, frame padding.

The one audio path of the studio: every narrator (Piper, eSpeak NG, Chatterbox), the rough
cut and the export package read, resample, normalize and write audio with these functions.
Samples are float32 in [-1, 1], shaped ``(n,)`` for mono or ``(n, channels)``. WAV files are
parsed with numpy (8/16/24/32-bit PCM, 32/64-bit float, WAVE_FORMAT_EXTENSIBLE); anything
else is decoded with PyAV. Resampling is one polyphase filter (`resample`).
"""

from __future__ import annotations

import contextlib
import math
import struct
import wave
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from videogen_domain.atomic import atomic_path
from videogen_resources.errors import ServiceError

AUDIO_RATE = 48_000
"""Sample rate of every muxed audio track."""

# --------------------------------------------------------------------------------------------
# WAV in and out


class WavHeader(NamedTuple):
    """The facts a PCM WAV's header states exactly."""

    num_samples: int  # per channel
    sample_rate: int
    channels: int
    depth: int  # bits per sample


def wav_header(path: str | Path) -> WavHeader | None:
    """The header of an integer PCM WAV (read with :mod:`wave`); None for anything else."""
    try:
        with wave.open(str(path), "rb") as wav:
            return WavHeader(
                wav.getnframes(), wav.getframerate(), wav.getnchannels(), wav.getsampwidth() * 8
            )
    except (wave.Error, EOFError):
        return None


def _wav_chunks(data: bytes) -> tuple[tuple[int, int, int, int], bytes]:
    """``((format, channels, rate, bits), payload)`` of a RIFF/WAVE byte string."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    payload: bytes | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body_start = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body_start + 16 > len(data):
                raise ValueError("WAV fmt chunk is truncated")
            audio_format, channels, rate = struct.unpack("<HHI", data[body_start : body_start + 8])
            (bits,) = struct.unpack("<H", data[body_start + 14 : body_start + 16])
            if audio_format == 0xFFFE and size >= 26:
                (audio_format,) = struct.unpack("<H", data[body_start + 24 : body_start + 26])
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            end = body_start + size
            if size in (0, 0xFFFFFFFF, 0x7FFFFFFF - 36) or end > len(data):
                end = len(data)
            payload = data[body_start:end]
            break
        pos = body_start + size + (size & 1)
    if fmt is None or payload is None:
        raise ValueError("WAV file without fmt or data chunk")
    return fmt, payload


def _pcm_to_float(payload: bytes, audio_format: int, channels: int, bits: int) -> np.ndarray:
    """Interleaved WAV samples as float32, shaped ``(n, channels)``."""
    width = bits // 8
    frame = width * channels
    payload = payload[: len(payload) - len(payload) % frame] if frame else b""
    if audio_format == 1 and bits == 16:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    elif audio_format == 1 and bits == 8:
        samples = (np.frombuffer(payload, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif audio_format == 1 and bits == 24:
        raw = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        samples = ints.astype(np.float32) / float(1 << 23)
    elif audio_format == 1 and bits == 32:
        samples = (np.frombuffer(payload, dtype="<i4").astype(np.float64) / 2**31).astype(
            np.float32
        )
    elif audio_format == 3 and bits in (32, 64):
        samples = np.frombuffer(payload, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    else:
        raise ValueError(f"unsupported WAV encoding (format {audio_format}, {bits} bits)")
    return np.asarray(samples.reshape(-1, channels), dtype=np.float32)


def decode_wav(data: bytes, *, channels: int | None = 1) -> tuple[np.ndarray, int]:
    """Decode a RIFF/WAVE byte string into float32 samples in [-1, 1] and the sample rate.

    ``channels=1`` (the default) gives mono ``(n,)`` samples (channels averaged); ``None``
    keeps the file's channels as ``(n, channels)``. Handles 8/16/24/32-bit PCM, 32/64-bit
    float and WAVE_FORMAT_EXTENSIBLE, and a ``data`` chunk whose size field is a streaming
    placeholder (read to the end). Raises ValueError for anything else.
    """
    (audio_format, count, rate, bits), payload = _wav_chunks(data)
    if count < 1 or rate < 1:
        raise ValueError(f"WAV with {count} channels at {rate} Hz")
    samples = _pcm_to_float(payload, audio_format, count, bits)
    if channels == 1:
        samples = samples[:, 0] if count == 1 else samples.mean(axis=1)
    elif channels is not None and channels != count:
        raise ValueError(f"WAV has {count} channels, {channels} asked for")
    return np.clip(np.nan_to_num(samples), -1.0, 1.0).astype(np.float32), rate


def read_pcm16(path: str | Path) -> tuple[np.ndarray, int] | None:
    """A 16-bit PCM WAV's samples as stored (int16, ``(n, channels)``) and its sample rate.

    None for any other file, so a caller can copy 16-bit audio bit for bit and convert the rest.
    """
    try:
        (audio_format, channels, rate, bits), payload = _wav_chunks(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    if audio_format != 1 or bits != 16 or channels < 1 or rate < 1:
        return None
    payload = payload[: len(payload) - len(payload) % (2 * channels)]
    return np.frombuffer(payload, dtype="<i2").reshape(-1, channels), rate


def read_wav(path: str | Path, *, channels: int | None = 1) -> tuple[np.ndarray, int]:
    """Read any audio file (a WAV of any sample format, or anything ffmpeg reads) as float32.

    Returns ``(samples, sample_rate)`` at the file's own rate: mono ``(n,)`` with
    ``channels=1``, ``(n, channels)`` with ``channels=2`` or ``None`` (the file's own). WAVs are
    parsed with numpy; other files, and channel layouts a WAV does not hold, are decoded and
    remixed with PyAV.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServiceError("ffmpeg", f"cannot read audio from {path.name}: {exc}") from exc
    with contextlib.suppress(ValueError):
        return decode_wav(data, channels=channels)
    return _decode_with_av(path, channels)


def _decode_with_av(path: Path, channels: int | None) -> tuple[np.ndarray, int]:
    import av  # deferred: only needed for audio that is not a WAV numpy reads

    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ServiceError("ffmpeg", f"{path.name} has no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate)
            count = channels or int(stream.codec_context.channels) or 1
            layout = {1: "mono", 2: "stereo"}.get(count)
            resampler = av.AudioResampler(format="flt", layout=layout or count, rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, count))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, count))
    except av.FFmpegError as exc:
        raise ServiceError("ffmpeg", f"cannot read audio from {path.name}: {exc}") from exc
    samples = np.concatenate(chunks) if chunks else np.zeros((0, count), dtype=np.float32)
    samples = samples.astype(np.float32, copy=False)
    return (samples[:, 0] if channels == 1 else samples), rate


def write_wav(
    path: str | Path, samples: np.ndarray, sample_rate: int, *, atomic: bool = True
) -> Path:
    """Write ``samples`` as a 16-bit PCM WAV (atomically unless ``atomic=False``).

    Float samples in [-1, 1] are scaled by 32767 and rounded; int16 samples are written as
    they are. ``(n,)`` is mono, ``(n, channels)`` interleaved.
    """
    path = Path(path)
    data = np.asarray(samples)
    channels = 1 if data.ndim == 1 else int(data.shape[1])
    if data.dtype.kind == "i" and data.dtype.itemsize == 2:
        pcm = data.astype("<i2", copy=False)
    else:
        scaled = np.round(np.asarray(data, dtype=np.float64) * 32767.0)
        pcm = np.clip(scaled, -32768, 32767).astype("<i2")
    with (
        atomic_path(path) if atomic else contextlib.nullcontext(path) as target,
        wave.open(str(target), "wb") as wav,
    ):
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(pcm.tobytes())
    return path


def wav_num_samples(path: str | Path) -> tuple[int, int]:
    """``(num_samples, sample_rate)`` of a WAV: from its header for integer PCM, else decoded."""
    header = wav_header(path)
    if header is not None:
        return header.num_samples, header.sample_rate
    samples, rate = read_wav(path)
    return int(samples.shape[0]), rate


# --------------------------------------------------------------------------------------------
# lengths in frames, silence, resampling


def frames_for_samples(num_samples: int, sample_rate: int, fps: int) -> int:
    """Whole video frames covering ``num_samples`` of audio: ceil(seconds * fps), at least 1."""
    return max(1, -(-num_samples * fps // sample_rate))


def samples_for_frames(num_frames: int, fps: int, sample_rate: int = AUDIO_RATE) -> int:
    """Audio samples spanning exactly ``num_frames`` video frames (rounded to the nearest)."""
    return (num_frames * sample_rate + fps // 2) // fps


def silence(num_samples: int, channels: int = 1, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """``num_samples`` of digital silence: ``(n,)`` for mono, else ``(n, channels)``."""
    shape = (max(0, num_samples),) if channels == 1 else (max(0, num_samples), channels)
    return np.zeros(shape, dtype=dtype)


def pad_to_frames(
    samples: np.ndarray, sample_rate: int, fps: int, *, min_frames: int = 0
) -> np.ndarray:
    """``samples`` followed by silence up to a whole number of video frames.

    The result lasts at least ``min_frames`` frames and is never cut: its length is
    ``ceil(frames * sample_rate / fps)`` for the fewest whole frames covering it.
    """
    x = np.asarray(samples)
    have = int(x.shape[0])
    need = max(have, min_frames * sample_rate // fps)
    whole = -(-need * fps // sample_rate)  # frames covering the audio
    total = (whole * sample_rate + fps - 1) // fps
    if total == have:
        return x
    return np.concatenate([x, np.zeros((total - have, *x.shape[1:]), dtype=x.dtype)])


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float audio (``(n,)`` or ``(n, channels)``) with a polyphase filter.

    The length ratio is exact, rounded up: ``ceil(n * to_rate / from_rate)`` samples.
    """
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    g = math.gcd(int(from_rate), int(to_rate))
    from scipy.signal import resample_poly  # imported when used: scipy.signal costs ~1 s

    x = np.asarray(samples, dtype=np.float32)
    out = resample_poly(x, to_rate // g, from_rate // g, axis=0)
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# loudness and the limiter


def true_peak(samples: np.ndarray, sample_rate: int, *, chunk: int = 1 << 18) -> float:
    """True peak in dBTP, estimated by 4x oversampling (chunked, so long tracks stay cheap)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return float("-inf")
    from scipy.signal import resample_poly  # imported when used: scipy.signal costs ~1 s

    peak = float(np.max(np.abs(x)))
    overlap = 64
    for start in range(0, x.size, chunk):
        seg = x[max(0, start - overlap) : start + chunk + overlap]
        if seg.size < 2:
            continue
        up = resample_poly(seg, 4, 1)
        peak = max(peak, float(np.max(np.abs(up))))
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")


def loudness_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS per ITU-R BS.1770 (pyloudnorm); silence is ``-inf``.

    Audio shorter than one 400 ms gating block is measured padded with silence (which the
    gate ignores).
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    block = int(0.4 * sample_rate) + 1
    if x.size < block:
        x = np.concatenate([x, np.zeros(block - x.size)])
    import pyloudnorm  # imported when used: it pulls in scipy.signal (~1 s per process)

    meter = pyloudnorm.Meter(sample_rate)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(x))


def loudness(samples: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """``(integrated loudness in LUFS, true peak in dBTP)``; silence gives ``-inf`` for both."""
    return loudness_lufs(samples, sample_rate), true_peak(samples, sample_rate)


def limit_peaks(
    samples: np.ndarray, sample_rate: int, ceiling: float, *, lookahead_ms: float = 5.0
) -> np.ndarray:
    """A look-ahead brick-wall limiter: no sample exceeds ``ceiling`` (linear), and the gain
    changes smoothly over ``lookahead_ms`` around each peak instead of clipping it."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return x.copy()
    width = max(1, int(sample_rate * lookahead_ms / 1000))
    with np.errstate(divide="ignore"):
        need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-12)).astype(np.float32)
    # Every sample's smoothed gain averages only values already <= that sample's need.
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    gain = minimum_filter1d(need, size=2 * width + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=width | 1, mode="nearest")
    return (x * np.minimum(gain, need)).astype(np.float32)


def normalize_loudness(
    samples: np.ndarray,
    sample_rate: int,
    target_lufs: float = -16.0,
    true_peak_db: float = -1.0,
) -> np.ndarray:
    """Gain ``samples`` to ``target_lufs`` with the true peak held at or below ``true_peak_db``.

    Peaks the gain would push over the ceiling go through a look-ahead limiter (speech has a
    high crest factor, so -16 LUFS at -1 dBTP needs a little limiting); the result is within a
    fraction of a dB of the target. Silence is returned unchanged.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    ceiling = 10.0 ** ((true_peak_db - 0.5) / 20.0)  # margin for inter-sample peaks
    for _ in range(3):
        lufs = loudness_lufs(x, sample_rate)
        if not math.isfinite(lufs):
            return x.copy()
        x = (x * np.float32(10.0 ** ((target_lufs - lufs) / 20.0))).astype(np.float32)
        if float(np.max(np.abs(x))) > ceiling:
            x = limit_peaks(x, sample_rate, ceiling)
    return _hold_true_peak(x, sample_rate, true_peak_db)


def _hold_true_peak(x: np.ndarray, sample_rate: int, true_peak_db: float) -> np.ndarray:
    peak = true_peak(x, sample_rate)
    if math.isfinite(peak) and peak > true_peak_db:
        x = (x * np.float32(10.0 ** ((true_peak_db - peak) / 20.0))).astype(np.float32)
    return x


def limit_true_peak(
    samples: np.ndarray, sample_rate: int, true_peak_db: float = -1.0
) -> np.ndarray:
    """``samples`` with the true peak held at or below ``true_peak_db`` and no other change.

    Peaks over the ceiling go through the look-ahead limiter (as in `normalize_loudness`);
    audio already under it is returned as it is.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    ceiling = 10.0 ** ((true_peak_db - 0.5) / 20.0)  # margin for inter-sample peaks
    if x.size and float(np.max(np.abs(x))) > ceiling:
        x = limit_peaks(x, sample_rate, ceiling)
    return _hold_true_peak(x, sample_rate, true_peak_db)


class AudioLevels(BaseModel):
    """Facts for asset checks: is it silent, is it clipped, how loud is it."""

    num_samples: int
    sample_rate: int
    duration_s: float
    peak: float
    peak_dbfs: float | None  # None for digital silence
    rms: float
    rms_dbfs: float | None
    clipped_fraction: float  # samples at or above the clip threshold
    silent: bool


def audio_levels(
    samples: np.ndarray,
    sample_rate: int,
    *,
    clip_threshold: float = 0.999,
    silence_dbfs: float = -60.0,
) -> AudioLevels:
    """Peak, RMS, fraction of clipped samples and whether ``samples`` is (near) silent."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    n = int(x.size)
    peak = float(np.max(np.abs(x))) if n else 0.0
    rms = float(np.sqrt(np.mean(x * x))) if n else 0.0
    peak_db = 20 * math.log10(peak) if peak > 0 else None
    rms_db = 20 * math.log10(rms) if rms > 0 else None
    clipped = float(np.count_nonzero(np.abs(x) >= clip_threshold) / n) if n else 0.0
    return AudioLevels(
        num_samples=n,
        sample_rate=sample_rate,
        duration_s=n / sample_rate if sample_rate else 0.0,
        peak=peak,
        peak_dbfs=peak_db,
        rms=rms,
        rms_dbfs=rms_db,
        clipped_fraction=clipped,
        silent=rms_db is None or rms_db < silence_dbfs,
    )

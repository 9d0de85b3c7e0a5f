"""Media facts and ffmpeg work: probing, clip conforming, rough cuts, subtitles.

ffmpeg is the binary shipped with ``imageio-ffmpeg`` (no system ffmpeg or ffprobe is needed);
files are probed with PyAV. Lengths are always judged by *decoded* frames and samples, never by
header durations. Every file written here is written atomically (temporary file + rename).
"""

from __future__ import annotations

import functools
import math
import subprocess
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import av
import numpy as np
from pydantic import BaseModel

from videogen_domain.atomic import atomic_path, atomic_write_text
from videogen_domain.chapters import ChapterPlan, ffmetadata
from videogen_resources.audio import (
    AUDIO_RATE,
    frames_for_samples,
    loudness,
    normalize_loudness,
    read_wav,
    resample,
    samples_for_frames,
    wav_header,
    wav_num_samples,
)
from videogen_resources.errors import ServiceError

AUDIO_CHANNELS = 2
"""Muxed narration is dual mono: editors and players treat it as a centred voice."""
AUDIO_BITRATE = "160k"
TO_BT709 = "scale=out_color_matrix=bt709:out_range=tv"
"""Filter step converting a picture to YUV with the BT.709 matrix (before ``format=yuv420p``)."""
TAG_BT709 = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
"""Last filter step of every clip: BT.709 primaries, transfer, matrix and limited range, which
the encoder writes into the stream (and the rough cut, which copies the clips' video, keeps), so
players and editors need not guess."""
STDERR_TAIL = 2_000

Cue = tuple[float, float, str]
"""A subtitle cue: (start seconds, end seconds, text)."""


# --------------------------------------------------------------------------------------------
# ffmpeg


@functools.cache
def ffmpeg_exe() -> str:
    """The path of the ffmpeg binary bundled with ``imageio-ffmpeg``."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(args: Sequence[str], *, what: str, timeout: float | None = None) -> None:
    """Run ffmpeg with ``args``; raise `ServiceError` with ffmpeg's stderr tail on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"").decode("utf-8", "replace")[-STDERR_TAIL:]
        raise ServiceError(
            "ffmpeg", f"{what}: timed out after {timeout} s", server_message=tail or None
        ) from exc
    except OSError as exc:
        raise ServiceError("ffmpeg", f"{what}: cannot run ffmpeg: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
        raise ServiceError(
            "ffmpeg",
            f"{what}: ffmpeg exited with status {proc.returncode}",
            server_message=tail or None,
        )


def x264_args(
    *, fps: int, preset: str = "veryfast", crf: int = 20, threads: int | None = 2
) -> list[str]:
    """The H.264 encoder settings every clip shares, so clips concatenate by stream copy.

    SPS/PPS are repeated in-band at every keyframe (``repeat-headers``) so that clips encoded
    with different presets still decode correctly after a stream-copy concatenation.
    """
    args = [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-profile:v",
        "high",
        "-g",
        str(fps * 2),
        "-keyint_min",
        str(fps),
        "-x264-params",
        "repeat-headers=1",
        "-video_track_timescale",
        str(fps * 512),
        "-r",
        str(fps),
    ]
    if threads:
        args += ["-threads", str(threads)]
    return args


def narration_filter(total_samples: int) -> str:
    """Resample to 48 kHz, pad with silence and cut at exactly ``total_samples``."""
    return (
        f"aresample={AUDIO_RATE}:resampler=soxr,apad=whole_len={total_samples},"
        f"atrim=end_sample={total_samples},asetpts=N/SR/TB"
    )


def audio_out_args() -> list[str]:
    return [
        "-c:a",
        "aac",
        "-b:a",
        AUDIO_BITRATE,
        "-ar",
        str(AUDIO_RATE),
        "-ac",
        str(AUDIO_CHANNELS),
    ]


# --------------------------------------------------------------------------------------------
# probing


class VideoStreamInfo(BaseModel):
    """The first video stream of a file.

    ``frames`` were counted (decoded or demuxed), or with ``counted_by="header"`` taken from
    the container's header (0 where it states none).
    """

    width: int
    height: int
    codec: str | None = None
    fps: float = 0.0
    pix_fmt: str | None = None
    frames: int = 0
    duration_s: float = 0.0  # frames / fps
    extradata_hex: str | None = None  # codec parameters (e.g. avcC), to compare stream copies


class AudioStreamInfo(BaseModel):
    """The first audio stream of a file.

    ``samples`` were counted (decoded or demuxed), or with ``counted_by="header"`` read from
    a PCM WAV's header; None where a header does not state them exactly.
    """

    sample_rate: int
    channels: int
    codec: str | None = None
    samples: int | None = None
    duration_s: float | None = None  # samples / sample_rate
    depth: int | None = None  # bits per sample, for a PCM WAV


class MediaInfo(BaseModel):
    """What a media file holds: the one description of media every part of the studio reads."""

    path: Path
    format: str | None = None
    size_bytes: int | None = None
    container_duration_s: float | None = None
    video: VideoStreamInfo | None = None
    audio: AudioStreamInfo | None = None
    counted_by: Literal["decode", "packets", "header"] = "decode"

    @property
    def has_video(self) -> bool:
        """Whether the file has a video stream."""
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        """Whether the file has an audio stream."""
        return self.audio is not None


def probe(
    path: str | Path, *, count: Literal["decode", "packets", "header"] = "decode"
) -> MediaInfo:
    """Describe ``path``: container, first video and first audio stream.

    With ``count="decode"`` (the default) frames and samples are counted by decoding every
    frame. ``count="packets"`` counts video packets (one per frame for H.264 in MP4) and sums
    audio packet durations: much faster for long files, exact for files this module writes.
    ``count="header"`` reads headers only (a PCM WAV's sample count is exact; nothing else is
    counted): what an editor needs to know before it opens a file, in well under a millisecond
    for a WAV.
    """
    path = Path(path)
    if count == "header" and path.suffix.lower() == ".wav":
        header = wav_header(path)
        if header is not None:
            hz = header.sample_rate
            return MediaInfo(
                path=path,
                format="wav",
                size_bytes=path.stat().st_size,
                container_duration_s=header.num_samples / hz if hz else None,
                audio=AudioStreamInfo(
                    sample_rate=hz,
                    channels=header.channels,
                    codec=f"pcm_s{header.depth}le" if header.depth > 8 else "pcm_u8",
                    samples=header.num_samples,
                    duration_s=header.num_samples / hz if hz else None,
                    depth=header.depth,
                ),
                counted_by="header",
            )
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise ServiceError("ffmpeg", f"cannot open {path.name}: {exc}") from exc
    with container:
        duration = container.duration / 1_000_000 if container.duration is not None else None
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        frames = 0
        counted = 0  # audio samples
        pix_fmt = vstream.codec_context.pix_fmt if vstream is not None else None
        try:
            if count == "decode":
                if vstream is not None:
                    vstream.thread_type = "AUTO"
                streams = [s for s in (vstream, astream) if s is not None]
                for packet in container.demux(*streams):
                    for frame in packet.decode():
                        if isinstance(frame, av.VideoFrame):
                            frames += 1
                            pix_fmt = frame.format.name
                        elif isinstance(frame, av.AudioFrame):
                            counted += frame.samples
            elif count == "packets":
                streams = [s for s in (vstream, astream) if s is not None]
                for packet in container.demux(*streams):
                    if packet.size == 0:
                        continue
                    if packet.stream is vstream:
                        frames += 1
                    elif astream is not None and packet.duration and packet.time_base:
                        counted += round(
                            float(packet.duration * packet.time_base) * astream.sample_rate
                        )
            elif vstream is not None:
                frames = int(vstream.frames)
        except av.FFmpegError as exc:
            raise ServiceError("ffmpeg", f"cannot decode {path.name}: {exc}") from exc

        samples = counted if count != "header" else None
        video = None
        if vstream is not None:
            rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
            fps = float(rate) if rate else 0.0
            extradata = vstream.codec_context.extradata
            video = VideoStreamInfo(
                codec=vstream.codec_context.name,
                width=vstream.codec_context.width,
                height=vstream.codec_context.height,
                fps=fps,
                pix_fmt=pix_fmt,
                frames=frames,
                duration_s=frames / fps if fps else 0.0,
                extradata_hex=extradata.hex() if extradata else None,
            )
        audio = None
        if astream is not None:
            rate_hz = astream.codec_context.sample_rate or 0
            audio = AudioStreamInfo(
                codec=astream.codec_context.name,
                sample_rate=rate_hz,
                channels=astream.codec_context.channels,
                samples=samples,
                duration_s=samples / rate_hz if rate_hz and samples is not None else None,
            )
        return MediaInfo(
            path=path,
            format=container.format.name,
            size_bytes=path.stat().st_size,
            container_duration_s=duration,
            video=video,
            audio=audio,
            counted_by=count,
        )


# --------------------------------------------------------------------------------------------
# clips


class ClipInfo(BaseModel):
    """A frame-exact clip that was written."""

    path: Path
    num_frames: int
    fps: int
    duration_s: float
    audio_samples: int  # at 48 kHz, exactly num_frames / fps seconds


def conform_clip(
    src_video: str | Path,
    narration_wav: str | Path,
    out_mp4: str | Path,
    *,
    fps: int = 30,
    width: int = 1920,
    height: int = 1080,
    extend: Literal["hold", "loop"] = "hold",
    preset: str = "veryfast",
    crf: int = 20,
    threads: int | None = 2,
) -> ClipInfo:
    """Turn any generated video (mp4, webm, animated webp, gif, a still image) into a final clip.

    The picture is scaled to fit and padded to ``width`` x ``height``, re-timed to ``fps`` and
    encoded H.264 yuv420p (BT.709, tagged) with exactly ``ceil(narration_seconds * fps)``
    frames: a shorter source holds its last frame (``extend="hold"``) or loops (``"loop"``),
    a longer one is trimmed.
    The narration is padded with silence to the clip's exact length and muxed as AAC 48 kHz.
    """
    src_video, narration_wav, out_mp4 = Path(src_video), Path(narration_wav), Path(out_mp4)
    num_samples, rate = wav_num_samples(narration_wav)
    frames = frames_for_samples(num_samples, rate, fps)
    audio_samples = samples_for_frames(frames, fps)
    src_args = ["-stream_loop", "-1"] if extend == "loop" else []
    vf = (
        f"[0:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease:flags=lanczos,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={fps},"
        f"tpad=stop_mode=clone:stop={frames},{TO_BT709},format=yuv420p,{TAG_BT709}[v];"
        f"[1:a:0]{narration_filter(audio_samples)}[a]"
    )
    with atomic_path(out_mp4) as tmp:
        run_ffmpeg(
            [
                *src_args,
                "-i",
                str(src_video),
                "-i",
                str(narration_wav),
                "-filter_complex",
                vf,
                "-map",
                "[v]",
                "-map",
                "[a]",
                "-frames:v",
                str(frames),
                *x264_args(fps=fps, preset=preset, crf=crf, threads=threads),
                *audio_out_args(),
                "-movflags",
                "+faststart",
                str(tmp),
            ],
            what=f"conform {src_video.name}",
        )
    return ClipInfo(
        path=out_mp4,
        num_frames=frames,
        fps=fps,
        duration_s=frames / fps,
        audio_samples=audio_samples,
    )


# --------------------------------------------------------------------------------------------
# rough cut


class RoughCutInfo(BaseModel):
    """The rough cut that was written, with its measured (decoded) lengths."""

    path: Path
    num_clips: int
    fps: int
    video_frames: int  # video packets in the output (stream copy: one per frame)
    expected_frames: int  # the sum of the clips' frames
    video_duration_s: float
    audio_samples: int  # decoded from the output's AAC track
    audio_duration_s: float
    drift_s: float  # audio_duration_s - video_duration_s
    within_one_frame: bool
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    video_copied: bool  # the video codec parameters equal the first clip's (no re-encode)
    mixed_parameters: bool  # clips had differing codec parameters (still decodable in-band)
    seconds: float  # wall time of the build


def _video_packets(path: Path) -> tuple[int, str | None]:
    """(number of video packets, codec extradata hex) by demuxing only."""
    info = probe(path, count="packets")
    if info.video is None:
        raise ServiceError("ffmpeg", f"{path.name} has no video stream")
    return info.video.frames, info.video.extradata_hex


def _concat_line(path: Path) -> str:
    escaped = str(path.resolve()).replace("'", "'\\''")
    return f"file '{escaped}'"


def build_rough_cut(
    clips: Sequence[str | Path],
    narrations: Sequence[str | Path],
    out_mp4: str | Path,
    *,
    fps: int = 30,
    loudness_target: float = -16.0,
    true_peak_db: float = -1.0,
    chapters: ChapterPlan | None = None,
) -> RoughCutInfo:
    """Concatenate ``clips`` into one video with one continuous narration track (and the
    ``chapters``' marks, which players list and seek to).

    The clips' video streams are joined by the concat demuxer with stream copy (no
    re-encode). The audio is NOT the clips' AAC (each AAC encode carries its own priming, which
    drifts ~35 ms per join): it is rebuilt from the sample-exact ``narrations``, each resampled
    to 48 kHz and padded (or cut) to its clip's frame-exact length, loudness-normalized as one
    track and encoded once. The decoded audio length is measured and reported against the video.
    """
    import time

    started = time.perf_counter()
    clip_paths = [Path(c) for c in clips]
    narr_paths = [Path(n) for n in narrations]
    if not clip_paths:
        raise ServiceError("ffmpeg", "a rough cut needs at least one clip")
    if len(clip_paths) != len(narr_paths):
        raise ServiceError(
            "ffmpeg", f"{len(clip_paths)} clips but {len(narr_paths)} narrations for the rough cut"
        )
    out_mp4 = Path(out_mp4)

    frame_counts: list[int] = []
    extradatas: set[str | None] = set()
    for clip in clip_paths:
        n, extradata = _video_packets(clip)
        frame_counts.append(n)
        extradatas.add(extradata)
    first_extradata = _video_packets(clip_paths[0])[1]

    # One continuous narration track, placed at cumulative frame-exact positions (no drift).
    total_frames = sum(frame_counts)
    total_samples = samples_for_frames(total_frames, fps)
    track = np.zeros(total_samples, dtype=np.float32)
    cum = 0
    for narr, n in zip(narr_paths, frame_counts, strict=True):
        start = samples_for_frames(cum, fps)
        cum += n
        end = samples_for_frames(cum, fps)
        samples, rate = read_wav(narr)
        samples = resample(samples, rate, AUDIO_RATE)[: end - start]
        track[start : start + samples.size] = samples
    track = normalize_loudness(track, AUDIO_RATE, loudness_target, true_peak_db)
    lufs, peak = loudness(track, AUDIO_RATE)

    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".roughcut.", dir=out_mp4.parent) as tmpdir:
        listing = Path(tmpdir) / "clips.txt"
        lines = ["ffconcat version 1.0"]
        for clip, n in zip(clip_paths, frame_counts, strict=True):
            # An explicit duration (the video's own) keeps a longer audio track from opening
            # gaps between clips' video timestamps.
            lines += [_concat_line(clip), "inpoint 0", f"duration {n / fps:.9f}"]
        listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
        raw = Path(tmpdir) / "narration.f32"
        track.astype("<f4").tofile(raw)
        del track
        marks: list[str] = []
        if chapters is not None and chapters.chapters:
            meta = Path(tmpdir) / "chapters.txt"
            meta.write_text(ffmetadata(chapters), encoding="utf-8")
            marks = ["-f", "ffmetadata", "-i", str(meta), "-map_chapters", "2"]
        with atomic_path(out_mp4) as tmp:
            run_ffmpeg(
                [
                    # The clips' AAC priming starts their (unused) audio 21 ms before their
                    # picture; without -copyts ffmpeg would shift everything by it and the
                    # picture would start after an empty edit. inpoint 0 keeps each clip's
                    # picture at its own position.
                    "-copyts",
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                    str(listing),
                    "-f",
                    "f32le",
                    "-ar",
                    str(AUDIO_RATE),
                    "-ac",
                    "1",
                    "-i",
                    str(raw),
                    *marks,
                    "-map",
                    "0:v:0",
                    "-map",
                    "1:a:0",
                    "-c:v",
                    "copy",
                    *audio_out_args(),
                    "-movflags",
                    "+faststart",
                    str(tmp),
                ],
                what=f"rough cut of {len(clip_paths)} clips",
            )

    packets = probe(out_mp4, count="packets")
    decoded_audio = _decoded_audio_samples(out_mp4)
    assert packets.video is not None
    video_frames = packets.video.frames
    video_s = video_frames / fps
    audio_s = decoded_audio / AUDIO_RATE
    return RoughCutInfo(
        path=out_mp4,
        num_clips=len(clip_paths),
        fps=fps,
        video_frames=video_frames,
        expected_frames=total_frames,
        video_duration_s=video_s,
        audio_samples=decoded_audio,
        audio_duration_s=audio_s,
        drift_s=audio_s - video_s,
        within_one_frame=abs(audio_s - video_s) <= 1.0 / fps + 1e-9,
        loudness_lufs=lufs if math.isfinite(lufs) else None,
        true_peak_dbtp=peak if math.isfinite(peak) else None,
        video_copied=packets.video.extradata_hex == first_extradata,
        mixed_parameters=len(extradatas) > 1,
        seconds=time.perf_counter() - started,
    )


def _decoded_audio_samples(path: Path) -> int:
    """Samples of the first audio stream, counted by decoding (priming excluded)."""
    total = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            total += frame.samples
    return total


# --------------------------------------------------------------------------------------------
# subtitles


def _wrap_cue(text: str, width: int = 42, max_lines: int = 2) -> list[str]:
    """Split ``text`` into blocks of at most ``max_lines`` lines of <= ``width`` characters.

    The blocks are balanced (lines wrapped narrower until they fill the fewest blocks evenly),
    so a long sentence never ends in a block of one or two words that flashes by.
    """
    words = " ".join(text.split())
    lines = textwrap.wrap(words, width=width, break_long_words=True, break_on_hyphens=True)
    count = -(-len(lines) // max_lines)
    if count > 1:
        for narrower in range(-(-len(words) // (count * max_lines)), width + 1):
            balanced = textwrap.wrap(
                words, width=narrower, break_long_words=True, break_on_hyphens=True
            )
            if len(balanced) <= count * max_lines:
                lines = balanced
                break
    return ["\n".join(lines[i : i + max_lines]) for i in range(0, len(lines), max_lines)] or [""]


MIN_CUE_S = 1.0
"""Shortest subtitle cue worth showing; a shorter one is merged into a neighbour."""


def merge_short_cues(cues: Sequence[Cue], min_s: float = MIN_CUE_S) -> list[Cue]:
    """Merge every cue shorter than ``min_s`` into a neighbour, keeping the cues' starts.

    A short cue joins the cue before it (which keeps its start); the first cue, when short,
    takes in the one after it. Starts are never moved, so a cue still starts where its
    narration does.
    """
    out: list[Cue] = []
    for start, end, text in cues:
        cue = (float(start), float(end), text)
        if out and (cue[1] - cue[0] < min_s or out[-1][1] - out[-1][0] < min_s):
            prev = out.pop()
            cue = (prev[0], max(prev[1], cue[1]), _join_text(prev[2], cue[2]))
        out.append(cue)
    return out


def _join_text(first: str, second: str) -> str:
    words = " ".join(f"{first} {second}".split())
    return "\n".join(textwrap.wrap(words, width=42, break_long_words=True)) or words


def _split_cues(cues: Sequence[Cue]) -> list[Cue]:
    """Cues whose text needs more than two lines become consecutive cues, timed by length.

    Cues shorter than :data:`MIN_CUE_S` (a short sentence, or the last words of a long one)
    are merged into a neighbour (:func:`merge_short_cues`), so no cue flashes by.
    """
    out: list[Cue] = []
    for start, end, text in merge_short_cues(cues):
        blocks = _wrap_cue(text)
        weights = [max(1, len(b.replace("\n", " "))) for b in blocks]
        total = sum(weights)
        t = float(start)
        parts: list[Cue] = []
        for block, w in zip(blocks, weights, strict=True):
            t_end = t + (float(end) - float(start)) * w / total
            parts.append((t, t_end, block))
            t = t_end
        if parts:
            parts[-1] = (parts[-1][0], float(end), parts[-1][2])
        out.extend(merge_short_cues(parts))
    return out


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_text(cues: Sequence[Cue]) -> str:
    """SubRip text for ``cues`` (wrapped to two lines of <= 42 characters)."""
    parts = []
    for i, (start, end, text) in enumerate(_split_cues(cues), 1):
        parts.append(f"{i}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n")
    return "\n".join(parts)


def vtt_text(cues: Sequence[Cue]) -> str:
    """WebVTT text for ``cues`` (wrapped to two lines of <= 42 characters)."""
    parts = ["WEBVTT\n"]
    for start, end, text in _split_cues(cues):
        safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        safe = safe.replace("-->", "--&gt;")
        parts.append(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{safe}\n")
    return "\n".join(parts)


def write_srt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write ``cues`` as an SRT file, atomically."""
    return atomic_write_text(path, srt_text(cues))


def write_vtt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write ``cues`` as a WebVTT file, atomically."""
    return atomic_write_text(path, vtt_text(cues))

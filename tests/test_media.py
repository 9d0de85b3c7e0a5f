"""Contract of `videogen_resources.media`: probe counts decoded frames and samples; WAV I/O is
lossless to 16 bits and atomic; loudness normalization reaches its target under the true-peak
ceiling; `conform_clip` makes a frame-exact 1920x1080 H.264/AAC clip from any video; the rough cut
copies the clips' video (no re-encode) and carries ONE narration track whose decoded length equals
the video's within one frame; SRT/VTT cues are timed and wrapped to two lines of <= 42 chars."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videogen_resources import audio, media
from videogen_resources.errors import ServiceError

SR = 22_050


def tone(seconds: float, sr: int = SR, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def still(path: Path, size: tuple[int, int] = (640, 360), color=(200, 40, 40)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def test_wav_round_trip_and_levels(tmp_path: Path) -> None:
    x = tone(0.73)
    out = audio.write_wav(tmp_path / "a.wav", x, SR)
    y, rate = audio.read_wav(out)
    assert rate == SR and y.dtype == np.float32 and y.size == x.size
    assert np.max(np.abs(y - x)) < 1.0 / 32767 + 1e-6
    assert audio.wav_num_samples(out) == (x.size, SR)
    assert not list(tmp_path.glob(".a.wav.*"))  # no temporary file left behind

    levels = audio.audio_levels(y, rate)
    assert not levels.silent and levels.clipped_fraction == 0.0
    assert levels.peak == pytest.approx(0.3, abs=1e-3)
    silent = audio.audio_levels(np.zeros(1000, np.float32), SR)
    assert silent.silent and silent.peak_dbfs is None
    clipped = audio.audio_levels(np.clip(tone(0.5, amp=2.0), -1, 1), SR)
    assert clipped.clipped_fraction > 0.3


def test_loudness_normalization(tmp_path: Path) -> None:
    x = tone(2.0, amp=0.05)
    lufs, _ = audio.loudness(x, SR)
    assert lufs < -25
    y = audio.normalize_loudness(x, SR, target_lufs=-16.0, true_peak_db=-1.0)
    lufs2, peak2 = audio.loudness(y, SR)
    assert lufs2 == pytest.approx(-16.0, abs=0.5)
    assert peak2 <= -1.0 + 0.05
    # A peaky signal is limited to the ceiling rather than left quiet.
    spiky = x.copy()
    spiky[::2000] = 0.99
    z = audio.normalize_loudness(spiky, SR, -16.0, -1.0)
    lufs3, peak3 = audio.loudness(z, SR)
    assert peak3 <= -1.0 + 0.05 and lufs3 > -18.0
    assert np.all(audio.normalize_loudness(np.zeros(100, np.float32), SR) == 0)
    # Short audio (under one gating block) is still measured.
    assert math.isfinite(audio.loudness(tone(0.2), SR)[0])


@pytest.mark.slow
@pytest.mark.parametrize("extend", ["hold", "loop"])
def test_conform_clip_is_frame_exact(tmp_path: Path, extend: str) -> None:
    # A short, odd-sized 12 fps source with motion, narration longer than the source.
    src = tmp_path / "gen.mp4"
    frames = [Image.new("RGB", (512, 288), (i * 20 % 255, 100, 200)) for i in range(6)]
    for i, frame in enumerate(frames):
        frame.save(tmp_path / f"f{i:02d}.png")
    media.run_ffmpeg(
        [
            "-framerate",
            "12",
            "-i",
            str(tmp_path / "f%02d.png"),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(src),
        ],
        what="test source",
    )
    narration = audio.write_wav(tmp_path / "n.wav", tone(1.234), SR)
    out = tmp_path / "clip.mp4"
    info = media.conform_clip(src, narration, out, fps=30, extend=extend, preset="ultrafast")  # type: ignore[arg-type]
    expected = math.ceil(round(1.234 * SR) / SR * 30)
    assert info.num_frames == expected == 38
    probed = media.probe(out)
    assert probed.has_video and probed.has_audio
    assert probed.video is not None and probed.audio is not None
    assert probed.video.frames == expected
    assert (probed.video.width, probed.video.height) == (1920, 1080)
    assert probed.video.codec == "h264" and probed.video.pix_fmt == "yuv420p"
    assert probed.audio.codec == "aac" and probed.audio.sample_rate == 48_000
    assert probed.audio.samples >= expected * 1600  # the audio covers the clip
    assert probed.audio.samples - expected * 1600 < 1024  # ...up to one AAC frame of padding


@pytest.mark.slow
def test_conform_trims_a_longer_source(tmp_path: Path) -> None:
    src = tmp_path / "long.mp4"
    media.run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(src),
        ],
        what="test source",
    )
    narration = audio.write_wav(tmp_path / "n.wav", tone(0.5), SR)
    info = media.conform_clip(src, narration, tmp_path / "c.mp4", preset="ultrafast")
    assert info.num_frames == 15
    assert media.probe(tmp_path / "c.mp4").video.frames == 15  # type: ignore[union-attr]


def test_ffmpeg_failure_is_a_service_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-video.mp4"
    bogus.write_bytes(b"nothing here")
    narration = audio.write_wav(tmp_path / "n.wav", tone(0.3), SR)
    with pytest.raises(ServiceError) as err:
        media.conform_clip(bogus, narration, tmp_path / "out.mp4")
    assert err.value.service == "ffmpeg" and err.value.server_message
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.slow
def test_rough_cut_copies_video_and_keeps_audio_in_sync(tmp_path: Path) -> None:
    lengths = [0.61, 1.0, 0.35, 1.27, 0.8, 0.52]
    clips, narrations, expected = [], [], 0
    img = still(tmp_path / "k.png")
    for i, seconds in enumerate(lengths):
        narr = audio.write_wav(tmp_path / f"n{i}.wav", tone(seconds, freq=300 + 50 * i), SR)
        info = media.conform_clip(img, narr, tmp_path / f"c{i}.mp4", preset="ultrafast")
        clips.append(info.path)
        narrations.append(narr)
        expected += info.num_frames
    out = tmp_path / "rough.mp4"
    cut = media.build_rough_cut(clips, narrations, out, fps=30, loudness_target=-16.0)
    assert cut.video_frames == cut.expected_frames == expected
    assert cut.within_one_frame and abs(cut.drift_s) <= 1 / 30
    assert cut.video_copied and not cut.mixed_parameters
    assert cut.loudness_lufs == pytest.approx(-16.0, abs=1.0)

    decoded = media.probe(out)
    assert decoded.video is not None and decoded.audio is not None
    assert decoded.video.frames == expected  # every frame decodes
    first = media.probe(clips[0], count="packets")
    assert first.video is not None
    assert decoded.video.extradata_hex == first.video.extradata_hex  # stream copy
    assert decoded.audio.codec == "aac" and decoded.audio.sample_rate == 48_000
    assert abs(decoded.audio.duration_s - decoded.video.duration_s) <= 1 / 30
    # Video packets are byte-identical to the clips' packets (no re-encode).
    import av

    def packet_bytes(path: Path, limit: int) -> list[bytes]:
        with av.open(str(path)) as c:
            return [bytes(p) for p, _ in zip(c.demux(video=0), range(limit), strict=False)]

    assert packet_bytes(out, 5) == packet_bytes(clips[0], 5)


def test_rough_cut_carries_the_chapter_marks(tmp_path: Path) -> None:
    import av

    from videogen_domain.chapters import plan_chapters

    img = still(tmp_path / "k.png")
    clips, narrations = [], []
    for i, seconds in enumerate([0.5, 0.7, 0.6]):
        narr = audio.write_wav(tmp_path / f"n{i}.wav", tone(seconds), SR)
        clips.append(media.conform_clip(img, narr, tmp_path / f"c{i}.mp4", preset="ultrafast").path)
        narrations.append(narr)
    # marks at 0.5 s and 1.2 s: the plan's lengths rules are YouTube's, not the MP4's
    plan = plan_chapters(
        [("Intro", 0.0, 0.5), ("Middle", 0.5, 1.2), ("End", 1.2, 1.8)], min_seconds=0
    )
    assert len(plan.chapters) == 3
    out = tmp_path / "rough.mp4"
    cut = media.build_rough_cut(clips, narrations, out, fps=30, chapters=plan)
    assert cut.video_copied and cut.within_one_frame
    with av.open(str(out)) as c:
        marks = [
            (ch["metadata"].get("title"), float(ch["start"] * ch["time_base"]))
            for ch in c.chapters()
        ]
    assert marks == [("Intro", 0.0), ("Middle", 0.5), ("End", 1.2)]
    plain = media.build_rough_cut(clips, narrations, tmp_path / "plain.mp4", fps=30)
    with av.open(str(plain.path)) as c:
        assert c.chapters() == []


def test_rough_cut_rejects_mismatched_inputs(tmp_path: Path) -> None:
    with pytest.raises(ServiceError):
        media.build_rough_cut([tmp_path / "a.mp4"], [], tmp_path / "o.mp4")


def test_subtitles(tmp_path: Path) -> None:
    long = (
        "Volcanoes form where magma from deep inside the Earth rises to the surface, "
        "building mountains of ash and lava over thousands of years."
    )
    cues = [(0.0, 2.5, "Hello world."), (2.5, 3725.125, long)]
    srt = media.write_srt(cues, tmp_path / "s.srt").read_text(encoding="utf-8")
    vtt = media.write_vtt(cues, tmp_path / "s.vtt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello world.\n")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello world.\n")
    assert "--> 01:02:05,125" in srt and "--> 01:02:05.125" in vtt
    blocks = [b for b in srt.strip().split("\n\n")]
    assert len(blocks) >= 3  # the long cue was split to keep two lines per cue
    for block in blocks:
        text_lines = block.split("\n")[2:]
        assert 1 <= len(text_lines) <= 2
        assert all(len(line) <= 42 for line in text_lines)
    words = " ".join(" ".join(b.split("\n")[2:]) for b in blocks[1:])
    assert words == long
    starts_ends = [b.split("\n")[1] for b in blocks]
    assert starts_ends[1].startswith("00:00:02,500") and starts_ends[-1].endswith("01:02:05,125")

"""Delivery media an editor imports: rough cut timing, colour tags and subtitle cues.

Pins: the rough cut's picture starts at 0 with no empty edit (its clips' AAC priming no longer
delays it) and lasts exactly its clips' frames; embedded Ken Burns clips and the rough cut carry
BT.709 tags (primaries, transfer, matrix, limited range) in the stream; no subtitle cue is
shorter than a second (short sentences and the last words of long ones merge into a
neighbour), and cues still start where narrations start.
"""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from videogen_domain.models import Shot
from videogen_resources import media
from videogen_resources.base import ClipJob
from videogen_resources.embedded.kenburns import KenBurnsClips

FPS = 30


def _wav(path: Path, seconds: float, rate: int = 22050) -> Path:
    n = int(rate * seconds)
    pcm = (0.2 * np.sin(2 * np.pi * 220 * np.arange(n) / rate) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def _stream_line(path: Path) -> str:
    proc = subprocess.run(
        [media.ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    (line,) = [ln for ln in proc.stderr.splitlines() if "Video:" in ln]
    return line


@pytest.fixture(scope="module")
def rough(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[int], Path, list[Path]]:
    root = tmp_path_factory.mktemp("rough")
    Image.new("RGB", (640, 360), (200, 40, 40)).save(root / "key.png")
    maker = KenBurnsClips(fps=FPS, width=320, height=180, preset="ultrafast")
    clips, narrations, frames = [], [], []
    for n, (seconds, move) in enumerate([(1.21, "zoom-in"), (0.93, "pan-left")]):
        narration = _wav(root / f"n{n}.wav", seconds)
        result = maker.make_clip(
            ClipJob(
                shot=Shot(image_prompt="p", video_prompt="v", camera_movement=move),
                keyframe=root / "key.png",
                narration=narration,
                out_path=root / f"c{n}.mp4",
            ),
        )
        clips.append(result.path)
        narrations.append(narration)
        frames.append(result.num_frames)
    out = root / "rough_cut.mp4"
    media.build_rough_cut(clips, narrations, out, fps=FPS)
    return frames, out, clips


def test_rough_cut_picture_starts_at_zero(rough: tuple[list[int], Path, list[Path]]) -> None:
    frames, out, _ = rough
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.start_time == 0
        decoded = [f for f in container.decode(video=0)]
    assert len(decoded) == sum(frames)
    assert decoded[0].time == 0.0
    # the container says so too: no empty edit pushing the picture late
    data = out.read_bytes()
    at = data.find(b"elst")
    entries = int.from_bytes(data[at + 8 : at + 12], "big")
    media_time = int.from_bytes(data[at + 16 : at + 20], "big", signed=True)
    assert entries == 1 and media_time >= 0


def test_clips_and_rough_cut_are_tagged_bt709(rough: tuple[list[int], Path, list[Path]]) -> None:
    _, out, clips = rough
    for path in [*clips, out]:
        line = _stream_line(path)
        assert re.search(r"yuv420p\(tv, bt709(, progressive)?\)", line), line


def test_no_subtitle_cue_is_shorter_than_a_second() -> None:
    long = (
        "Volcanoes form where magma from deep inside the Earth reaches the surface "
        "over many thousands of years."
    )
    narration = [(0.0, 4.2, long), (4.5, 4.86, "Years."), (5.0, 7.3, "Then the next one.")]
    cues = media.merge_short_cues(narration)
    assert [c[0] for c in cues] == [0.0, 5.0]  # starts stay on narration starts
    assert cues[0][1] == 4.86 and cues[0][2].endswith("years. Years.")
    srt = media.srt_text(narration)
    blocks = [b.split("\n") for b in srt.strip().split("\n\n")]
    spans = []
    for block in blocks:
        start, end = (media_seconds(t) for t in block[1].split(" --> "))
        spans.append((start, end))
        assert end - start >= 1.0, block
        assert 1 <= len(block[2:]) <= 2 and all(len(line) <= 42 for line in block[2:])
    assert spans[0][0] == 0.0 and spans[-1] == (5.0, 7.3)
    words = " ".join(" ".join(b[2:]) for b in blocks)
    assert words == f"{long} Years. Then the next one."
    # a short first cue takes in the next one, keeping its own start
    assert media.merge_short_cues([(0.0, 0.4, "Hi."), (0.5, 3.0, "Second.")]) == [
        (0.0, 3.0, "Hi. Second.")
    ]


def media_seconds(stamp: str) -> float:
    hh, mm, rest = stamp.strip().split(":")
    ss, ms = rest.split(",")
    return int(hh) * 3600 + int(mm) * 60 + int(ss) + int(ms) / 1000

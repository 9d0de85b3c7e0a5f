"""Contract of `KenBurnsClips`: a clip has exactly ceil(narration * fps) decoded frames, is
1920x1080 H.264 yuv420p with the narration as AAC 48 kHz covering the whole clip; each camera
movement really moves the picture the way it says (compared on decoded first/last frames), and
static does not; the output is written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from videogen_domain.models import Shot
from videogen_resources import audio, media
from videogen_resources.base import ClipJob
from videogen_resources.embedded.kenburns import KenBurnsClips, plan_move

SR = 22_050


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("kb")
    img = Image.new("RGB", (1920, 1080), (20, 30, 50))
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(1)  # a non-periodic picture so motion is measurable
    for _ in range(120):
        x, y = int(rng.integers(0, 1800)), int(rng.integers(0, 980))
        w, h = int(rng.integers(20, 200)), int(rng.integers(20, 200))
        shade = tuple(int(v) for v in rng.integers(60, 255, 3))
        draw.rectangle((x, y, x + w, y + h), fill=shade)
    keyframe = folder / "key.png"
    img.save(keyframe)
    t = np.arange(round(1.03 * SR)) / SR
    narration = audio.write_wav(folder / "n.wav", 0.3 * np.sin(2 * np.pi * 330 * t), SR)
    return keyframe, narration


def _first_last(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]
    return frames[0], frames[-1]


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The (dx, dy) that best maps a onto b, by phase correlation."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    r = np.fft.ifft2(fb * np.conj(fa) / (np.abs(fb * np.conj(fa)) + 1e-9)).real
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    dy, dx = int(iy), int(ix)
    h, w = a.shape
    return (dx - w if dx > w // 2 else dx), (dy - h if dy > h // 2 else dy)


def _clip(assets: tuple[Path, Path], tmp_path: Path, movement: str, strength: float = 0.8) -> Path:
    keyframe, narration = assets
    shot = Shot(
        image_prompt="x",
        video_prompt="x",
        camera_movement=movement,  # type: ignore[arg-type]
        motion_strength=strength,
    )
    out = tmp_path / f"{movement}.mp4"
    res = KenBurnsClips(preset="ultrafast").make_clip(
        ClipJob(shot=shot, keyframe=keyframe, narration=narration, out_path=out)
    )
    assert res.path == out and res.fps == 30
    return out


@pytest.mark.slow
def test_clip_is_frame_exact_with_narration(assets: tuple[Path, Path], tmp_path: Path) -> None:
    out = _clip(assets, tmp_path, "zoom-in")
    expected = math.ceil(round(1.03 * SR) * 30 / SR)
    info = media.probe(out)
    assert info.video is not None and info.audio is not None
    assert info.video.frames == expected == 31
    assert (info.video.width, info.video.height) == (1920, 1080)
    assert info.video.codec == "h264" and info.video.pix_fmt == "yuv420p"
    assert info.audio.codec == "aac" and info.audio.sample_rate == 48_000
    assert info.audio.samples >= expected * 1600
    assert not list(tmp_path.glob(".zoom-in.mp4.*"))


@pytest.mark.slow
def test_movements_differ(assets: tuple[Path, Path], tmp_path: Path) -> None:
    pan_first, pan_last = _first_last(_clip(assets, tmp_path, "pan-left"))
    zoom_first, zoom_last = _first_last(_clip(assets, tmp_path, "zoom-in"))
    static_first, static_last = _first_last(_clip(assets, tmp_path, "static"))
    tilt_first, tilt_last = _first_last(_clip(assets, tmp_path, "tilt-down"))

    assert np.mean(np.abs(static_first - static_last)) < 1.0
    # pan-left: the window travels left, so the picture moves right.
    dx, dy = _shift(pan_first, pan_last)
    assert dx > 100 and abs(dy) <= 2
    # tilt-down: the window travels down, so the picture moves up.
    dx, dy = _shift(tilt_first, tilt_last)
    assert dy < -50 and abs(dx) <= 2
    # zoom-in: the last frame is the first frame's centre, enlarged by the planned zoom.
    zoom = plan_move("zoom-in", 0.8, 31).max_zoom
    w, h = round(1920 / zoom), round(1080 / zoom)
    box = ((1920 - w) // 2, (1080 - h) // 2, (1920 + w) // 2, (1080 + h) // 2)
    enlarged = Image.fromarray(zoom_first.astype(np.uint8)).crop(box).resize((1920, 1080))
    predicted = np.asarray(enlarged, dtype=np.float32)
    assert np.mean(np.abs(predicted - zoom_last)) < 0.25 * np.mean(np.abs(zoom_first - zoom_last))
    assert np.mean(np.abs(zoom_last - pan_last)) > 5


@pytest.mark.slow
@pytest.mark.parametrize("movement", ["zoom-out", "dolly", "orbit", "pan-right", "tilt-up"])
def test_every_movement_renders(assets: tuple[Path, Path], tmp_path: Path, movement: str) -> None:
    first, last = _first_last(_clip(assets, tmp_path, movement, strength=0.5))
    assert first.shape == (1080, 1920)
    assert np.mean(np.abs(first - last)) > 1.0


def test_motion_strength_scales_the_move() -> None:
    weak, strong = plan_move("pan-right", 0.1, 60), plan_move("pan-right", 1.0, 60)
    assert 1.0 < weak.max_zoom < strong.max_zoom <= 1.26
    assert plan_move("zoom-in", 0.0, 60).max_zoom == 1.0
    assert KenBurnsClips().version() != KenBurnsClips(preset="ultrafast").version()

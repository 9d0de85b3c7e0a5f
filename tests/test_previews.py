"""What the Dagster UI shows of a made thing (``videogen_assets.previews``).

Pins: a sentence is named by its id within the project and its first ~80 characters, cut at a
word with an ellipsis, on one line; previews are real pictures 480 pixels wide with the
media's aspect, kept under the project's ``preview/`` folder (a keyframe, a landscape or
portrait frame of a real H.264 video, a narration's waveform); a preview that cannot be made
is no preview and a warning, never a failure; metadata links go through the media server
(the default address unless one is given), percent-encoded; the preview markdown stays short
enough for the UI to show inline.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videogen_assets.previews import (
    DEFAULT_MEDIA_URL,
    MediaLinks,
    image_preview,
    preview_path,
    run_sentence_tags,
    safe_preview,
    sentence_label,
    sentence_links,
    short_text,
    video_preview,
    waveform_preview,
)


def make_video(path: Path, size: str, frames: int = 48) -> Path:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=s={size}:r=24",
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-g",
            "12",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def test_sentence_label() -> None:
    assert sentence_label("how_volcanoes_work.s0004", "Gas bubbles expand.") == (
        's0004 · "Gas bubbles expand."'
    )
    long = "Gas bubbles expand as the magma rises, and the pressure of the dissolved gases " * 3
    label = short_text(long)
    assert len(label) <= 80 and label.endswith("…")
    assert long.startswith(label[:-1]) and long[len(label) - 1] == " "  # cut at a word
    assert short_text("Two\nlines\t here") == "Two lines here"
    assert run_sentence_tags("p.s0001", "Hi there.", "") == {
        "videogen/sentence": 's0001 · "Hi there."',
        "videogen/section": "-",
    }


@pytest.mark.parametrize(
    ("size", "expected"), [((1920, 1080), (480, 270)), ((1080, 1920), (480, 853))]
)
def test_image_preview(tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]) -> None:
    source = tmp_path / "keyframe.png"
    Image.new("RGBA", size, (200, 60, 40, 255)).save(source)
    out = image_preview(source, preview_path(tmp_path, "keyframe.jpg", "p.s0001"))
    assert out == tmp_path.resolve() / "preview" / "p.s0001" / "keyframe.jpg"
    assert preview_path(tmp_path, "rough_cut.jpg") == tmp_path / "preview" / "rough_cut.jpg"
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == expected
        r, g, b = im.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
        assert abs(r - 200) < 8 and abs(g - 60) < 8 and abs(b - 40) < 8


@pytest.mark.parametrize(("size", "expected"), [("320x180", (480, 270)), ("180x320", (480, 854))])
def test_video_preview(tmp_path: Path, size: str, expected: tuple[int, int]) -> None:
    clip = make_video(tmp_path / "clip.mp4", size)
    for at in (0.0, 0.6):
        out = video_preview(clip, tmp_path / f"at{at}.jpg", at=at)
        with Image.open(out) as im:
            assert im.size == expected
            assert len(set(im.convert("RGB").getdata())) > 50  # a real picture, not a blank
    with Image.open(tmp_path / "at0.0.jpg") as a, Image.open(tmp_path / "at0.6.jpg") as b:
        assert list(a.getdata()) != list(b.getdata())  # a later frame of the moving test card


def test_waveform_preview(tmp_path: Path) -> None:
    t = np.linspace(0, 1, 22050, dtype=np.float32)
    samples = np.sin(2 * np.pi * 220 * t) * np.where(t < 0.5, 0.9, 0.1)
    out = waveform_preview(samples, tmp_path / "w.png")
    with Image.open(out) as im:
        assert im.size == (480, 72)
        column = [im.getpixel((x, 5)) for x in (60, 420)]
    assert column[0] != column[1]  # loud first half reaches the top, the quiet half does not


def test_a_failed_preview_is_none_and_a_warning(tmp_path: Path) -> None:
    broken = tmp_path / "keyframe.png"
    broken.write_bytes(b"not a png")
    warnings: list[str] = []
    assert safe_preview(warnings.append, image_preview, broken, tmp_path / "k.jpg") is None
    assert safe_preview(warnings.append, video_preview, broken, tmp_path / "c.jpg") is None
    assert not (tmp_path / "k.jpg").exists() and not (tmp_path / "c.jpg").exists()
    assert len(warnings) == 2 and all(w.startswith("no preview: ") for w in warnings)
    assert MediaLinks(None, tmp_path).preview(None, broken, "keyframe") == {}


def test_links_through_the_media_server(tmp_path: Path) -> None:
    folder = tmp_path / "projects" / "a b" / "sentences" / "a b.s0001"
    links = MediaLinks(None, tmp_path)
    assert links.base_url == DEFAULT_MEDIA_URL == "http://127.0.0.1:3031"
    got = {
        k: v.value for k, v in sentence_links(links, folder, folder.parents[1], "a b.s0001").items()
    }
    base = "http://127.0.0.1:3031/projects/a%20b"
    assert got == {
        "watch": f"{base}/sentences/a%20b.s0001/clip.mp4",
        "listen": f"{base}/sentences/a%20b.s0001/narration.wav",
        "open": f"{base}/sentences/a%20b.s0001/keyframe.png",
        "storyboard": f"{base}/storyboard.html#shot-a%20b.s0001",
    }
    other = MediaLinks("http://127.0.0.1:4000/", tmp_path)
    md = other.preview(folder / "preview" / "keyframe.jpg", folder / "keyframe.png", "[k]")
    text = str(md["preview"].value)
    assert text == (
        "[![(k)](http://127.0.0.1:4000/projects/a%20b/sentences/a%20b.s0001/preview/keyframe.jpg)]"
        "(http://127.0.0.1:4000/projects/a%20b/sentences/a%20b.s0001/keyframe.png)"
    )
    assert len(text) < 1000  # the Dagster UI shows markdown inline only below 1,000 characters

"""Export timelines: what an editor opens matches the project, to the frame and the sample.

Pins: the FCPXML (Resolve, Final Cut), FCP7 XML (Premiere), CMX3600 EDLs (video and narration)
and OTIO files of an export read back with OpenTimelineIO as the same cuts — clip count, order
and durations to the frame, one marker at each section start — with media references as
absolute ``file://`` URLs of the place the package was written to (a moved package resolves by
folder and file name, and relinks); the FCPXML is valid against the DTD of the version it
declares (xmllint), its format is named, sized and tagged Rec. 709, edits are frame-aligned
rational times and narration assets state their exact length in samples; the xmeml has sample
characteristics; no narration claims more audio than its WAV holds; EDL reel names are unique
across both EDLs; the start timecode setting moves every timeline to 01:00:00:00.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import imageio_ffmpeg
import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from videogen_assets.export import (
    TIMELINE_FILES,
    read_timeline,
    relink_timelines,
    resolve_reference,
    write_export,
)
from videogen_domain.models import ProjectItem, ProjectView, Shot

FPS = 30
SECTIONS = [("Intro", [45, 60]), ("How it works", [33, 50, 40])]


def _wav(path: Path, ms: int, freq: float = 220.0) -> None:
    n = 48000 * ms // 1000
    t = np.arange(n) / 48000
    pcm = (0.2 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())


def _mp4(path: Path, frames: int, hue: int = 0) -> None:
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x180:rate={FPS}",
            "-vf",
            f"hue=h={hue}",
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )


def _png(path: Path, n: int) -> None:
    Image.new("RGB", (320, 180), ((n * 40) % 256, 90, 160)).save(path)


def make_project(root: Path, sections: list[tuple[str, list[int]]] = SECTIONS) -> ProjectView:
    """A small project whose sentences all have real narration, keyframe and clip files."""
    studio = root / "studio"
    studio.mkdir(parents=True, exist_ok=True)
    items = []
    n = 0
    for section, lengths in sections:
        for frames in lengths:
            n += 1
            sid = f"demo.s{n:04d}"
            _wav(studio / f"{sid}.wav", frames * 1000 // FPS, 200 + 20 * n)
            _png(studio / f"{sid}.png", n)
            _mp4(studio / f"{sid}.mp4", frames, hue=n * 30)
            slug = section.lower().replace(" ", "-")
            items.append(
                ProjectItem(
                    index=n,
                    sentence_id=sid,
                    section=section,
                    section_slug=slug,
                    text=f"Sentence {n} of {section}.",
                    narration=str(studio / f"{sid}.wav"),
                    keyframe=str(studio / f"{sid}.png"),
                    clip=str(studio / f"{sid}.mp4"),
                    narration_ms=frames * 1000 // FPS,
                    clip_frames=frames,
                    shot=Shot(image_prompt=f"image {n}", video_prompt=f"video {n}", seed=n),
                    workflow_versions={"keyframe": "flux-2-v1", "clip": "wan-2.2-v1"},
                    updated_at="2026-01-02T03:04:05+00:00",
                )
            )
    return ProjectView(
        name="demo", title="Demo video", topic="demo", style="documentary", fps=FPS, items=items
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectView, Path]:
    root = tmp_path_factory.mktemp("timelines")
    view = make_project(root)
    dest = root / "exports" / "demo"
    write_export(view, dest)
    return view, dest


def _expected(view: ProjectView) -> tuple[list[int], list[int]]:
    frames = [it.clip_frames or 0 for it in view.items]
    starts, seen, t = [], set(), 0
    for it, f in zip(view.items, frames, strict=True):
        if it.section not in seen:
            seen.add(it.section)
            starts.append(t)
        t += f
    return frames, starts


def _track(timeline: otio.schema.Timeline, kind: str) -> otio.schema.Track:
    tracks = [t for t in timeline.tracks if t.kind == kind]
    assert len(tracks) == 1, f"expected one {kind} track, got {len(tracks)}"
    return tracks[0]


def _marker_frames(timeline: otio.schema.Timeline) -> list[int]:
    found = [int(m.marked_range.start_time.to_frames()) for m in timeline.tracks.markers]
    for track in timeline.tracks:
        for item in track:
            for m in item.markers:
                offset = m.marked_range.start_time - item.trimmed_range().start_time
                found.append(int((item.range_in_parent().start_time + offset).to_frames()))
    return sorted(found)


@pytest.mark.parametrize("kind", ["fcpxml", "fcp7_xml", "otio", "edl", "edl_narration"])
def test_timeline_reads_back_as_the_project(package: tuple[ProjectView, Path], kind: str) -> None:
    view, dest = package
    frames, section_starts = _expected(view)
    timeline = read_timeline(dest / TIMELINE_FILES[kind], fps=FPS)
    kinds = {
        "edl": [otio.schema.TrackKind.Video],
        "edl_narration": [otio.schema.TrackKind.Audio],
    }.get(kind, [otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio])
    for track_kind in kinds:
        track = _track(timeline, track_kind)
        clips = list(track.find_clips())
        assert len(clips) == len(view.items)
        assert [int(c.duration().rescaled_to(FPS).value) for c in clips] == frames
        suffix = "clip" if track_kind == otio.schema.TrackKind.Video else "narration"
        expected_names = [
            f"{i:03d}_{it.section_slug}_{suffix}" for i, it in enumerate(view.items, 1)
        ]
        assert [c.name for c in clips] == expected_names
        for clip in clips:
            url = clip.media_reference.target_url
            assert url.startswith("file:///"), url
            path = Path(unquote(urlparse(url).path))
            assert path.is_file() and path.is_relative_to(dest.resolve())
            assert resolve_reference(dest, url).is_file()
    if kind != "edl_narration":
        assert _marker_frames(timeline) == section_starts


def test_fcpxml_has_what_final_cut_and_resolve_need(package: tuple[ProjectView, Path]) -> None:
    view, dest = package
    text = (dest / "timeline.fcpxml").read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>')
    root = ET.fromstring(text)
    (fmt,) = root.findall("./resources/format")
    assert (fmt.get("width"), fmt.get("height")) == ("1920", "1080")
    assert fmt.get("name") == "FFVideoFormat1080p30"
    assert fmt.get("frameDuration") == "100/3000s"
    assert fmt.get("colorSpace") == "1-1-1 (Rec. 709)"
    assets = root.findall("./resources/asset")
    audio = [a for a in assets if "/audio/" in a.get("src", "")]
    video = [a for a in assets if "/videos/" in a.get("src", "")]
    for el in root.iter():
        for attr in ("offset", "duration", "start"):
            value = el.get(attr)
            if value is None or value == "0s" or (el in audio and attr == "duration"):
                continue
            num, den = value.removesuffix("s").split("/")
            assert den == "3000" and int(num) % 100 == 0, f"{el.tag}@{attr}={value}"
    assert len(audio) == len(video) == len(view.items)
    for a in audio:
        assert a.get("format") is None
        assert (a.get("hasAudio"), a.get("hasVideo"), a.get("audioRate")) == ("1", "0", "48000")
        assert a.get("audioChannels") == "1"
        # the asset's length is the WAV's, to the sample
        wav_path = Path(unquote(urlparse(a.get("src", "")).path))
        with wave.open(str(wav_path), "rb") as w:
            assert a.get("duration") == f"{w.getnframes()}/{w.getframerate()}s"
    for a in video:
        assert (a.get("hasVideo"), a.get("hasAudio"), a.get("format")) == ("1", "0", fmt.get("id"))
    (sequence,) = root.iter("sequence")
    total = sum(it.clip_frames or 0 for it in view.items)
    assert Fraction(sequence.get("duration", "").removesuffix("s")) == Fraction(total, FPS)
    assert sequence.get("tcFormat") == "NDF"
    assert sequence.get("tcStart") == "0s"
    project = root.find("./event/project")
    assert project is not None
    uid = project.get("uid", "")
    assert re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", uid), uid
    connected = root.findall("./event/project/sequence/spine/asset-clip/asset-clip")
    assert [c.get("lane") for c in connected] == ["-1"] * len(view.items)
    assert {c.get("ref") for c in connected} == {a.get("id") for a in audio}
    markers = list(root.iter("marker"))
    assert [m.get("value") for m in markers] == ["Intro", "How it works"]
    assert all(m.get("completed") is None for m in markers)


def test_fcp7_xml_describes_format_and_media(package: tuple[ProjectView, Path]) -> None:
    _, dest = package
    text = (dest / "timeline.xml").read_text(encoding="utf-8")
    assert "<!DOCTYPE xmeml>" in text
    root = ET.fromstring(text)
    chars = root.find("./project/children/sequence/media/video/format/samplecharacteristics")
    assert chars is not None
    assert (chars.findtext("width"), chars.findtext("height")) == ("1920", "1080")
    for clipitem in root.iterfind(".//media/video/track/clipitem"):
        media = clipitem.find("./file/media")
        assert media is not None and media.find("audio") is None  # silent clips claim no sound
        assert media.findtext("video/samplecharacteristics/width") == "320"
    for clipitem in root.iterfind(".//media/audio/track/clipitem"):
        assert clipitem.findtext("./file/media/audio/samplecharacteristics/samplerate") == "48000"
        assert clipitem.findtext("sourcetrack/mediatype") == "audio"


def test_edl_carries_narration_separately(package: tuple[ProjectView, Path]) -> None:
    _, dest = package
    video = (dest / "timeline.edl").read_text(encoding="utf-8")
    narration = (dest / "timeline_narration.edl").read_text(encoding="utf-8")
    assert "narration.wav" not in video and "clip.mp4" in video
    events = [ln for ln in narration.splitlines() if ln[:3].isdigit()]
    assert len(events) == 5 and all(ln.split()[2] == "A" for ln in events)


def test_moved_package_still_resolves_and_relinks(
    package: tuple[ProjectView, Path], tmp_path: Path
) -> None:
    view, dest = package
    moved = tmp_path / "elsewhere" / "demo"
    shutil.copytree(dest, moved)
    for kind in ("fcpxml", "fcp7_xml", "otio"):
        timeline = read_timeline(moved / TIMELINE_FILES[kind], fps=FPS)
        for clip in timeline.find_clips():
            url = clip.media_reference.target_url
            # by folder and file name, as the editors' relink does, once the old place is gone
            rel = "/".join(Path(unquote(urlparse(url).path)).parts[-2:])
            assert (moved / rel).is_file()
    changed = relink_timelines(moved)
    assert {p.name for p in changed} == {"timeline.fcpxml", "timeline.xml", "timeline.otio"}
    for kind in ("fcpxml", "fcp7_xml", "otio"):
        timeline = read_timeline(moved / TIMELINE_FILES[kind], fps=FPS)
        clips = list(timeline.find_clips())
        assert len(clips) == 2 * len(view.items)
        for clip in clips:
            url = clip.media_reference.target_url
            assert url.startswith("file://")
            path = resolve_reference(moved, url)
            assert path.is_file() and path.is_relative_to(moved.resolve())

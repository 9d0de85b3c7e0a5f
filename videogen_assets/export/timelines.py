"""NLE timelines for an export package: one timeline, written five ways.

Every writer is one linear pass over the sentences (400 sentences: a fraction of a second); the
files are read back with OpenTimelineIO's own adapters in the tests.

The timeline has a video track of clips and an audio track of narrations, cut at sentence
boundaries, with a marker at the start of every section.

* FCPXML (``timeline.fcpxml``), for DaVinci Resolve and Final Cut Pro: written directly (one
  pass, linear in the clip count) as FCPXML 1.8, valid against Apple's DTD of that version. The
  video clips are ``asset-clip`` elements on the spine (picture only: ``srcEnable="video"``, as
  a clip's own sound is its narration); each narration is a connected
  ``asset-clip`` (lane -1) of its clip, with ``audioRole="dialogue"``; the format is tagged
  Rec. 709; audio assets give their length in samples (``72000/48000s``), clips and edits in
  whole frames (``4500/3000s``).
* FCP7 XML / xmeml (``timeline.xml``), for Premiere Pro: written directly too (the adapter's
  writer cost more than the rest of the export): the sequence's format has its sample
  characteristics (size, rate, pixel aspect); each file says what it holds (a silent clip no
  audio stream; a narration its sample rate, depth and channel count), its exact length and its
  reel; narration clip items have a ``sourcetrack``.
* CMX3600 EDLs (``timeline.edl`` for the clips, ``timeline_narration.edl`` for the narrations:
  an EDL event has one source, and many readers take video only): written directly, one cut
  event per sentence with the clip name and file URL as comments. Reel names are unique across
  both EDLs: ``V0001``... for clips, ``A0001``... for narrations.
* ``timeline.otio``: the timeline itself.

Media references are absolute ``file://`` URLs of the place the package is written to (what
Final Cut, Premiere and Resolve write and resolve); a package that moves is relinked by file
name (the editors' relink-by-folder), or rewritten for its new place by
:func:`relink_timelines`. Every timeline starts at the project's start timecode
(``start_frame``; 00:00:00:00 unless the brief asks for the broadcast 01:00:00:00).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlparse
from xml.sax.saxutils import escape

import opentimelineio as otio

from videogen_resources.media import MediaInfo

TIMELINE_FILES: dict[str, str] = {
    "fcpxml": "timeline.fcpxml",
    "fcp7_xml": "timeline.xml",
    "edl": "timeline.edl",
    "edl_narration": "timeline_narration.edl",
    "otio": "timeline.otio",
}
"""Timeline kind -> file name inside the package."""

FCPXML_VERSION = "1.8"
"""The FCPXML version written (Final Cut Pro 10.4.1 and later, DaVinci Resolve 16 and later)."""

REC709 = "1-1-1 (Rec. 709)"
"""FCPXML colour space of the studio's video: primaries, transfer and matrix of BT.709."""

_VIDEO_TRACK = "Video"
_AUDIO_TRACK = "Narration"
_FCPX_HEIGHT_NAMES = {(1280, 720): "720", (1920, 1080): "1080", (3840, 2160): "2160"}
_UID_NAMESPACE = uuid.UUID("6f1c5a52-3b8e-5d0e-9d2f-6a5c0e3f7b41")


@dataclass(frozen=True)
class TimelineEntry:
    """One sentence on the timeline: its package-relative files and its length in frames."""

    stem: str  # "001_intro"
    section: str
    section_start: bool  # the first sentence of its section: a marker goes here
    frames: int
    clip: str | None = None  # package-relative POSIX path, None when left out
    narration: str | None = None
    clip_info: MediaInfo | None = None
    narration_info: MediaInfo | None = None
    number: int = 0  # 1-based sentence number (reel names); 0: position on the timeline


@dataclass(frozen=True)
class PlacedFile:
    """A clip or a narration as every timeline places it: the facts the writers share."""

    name: str  # "001_intro_clip", "001_intro_narration"
    url: str  # its media reference
    reel: str  # unique across both tracks (`video_reel`, `audio_reel`)
    frames: int  # the frames it lasts on the timeline (from its first)
    available: int  # the frames the file holds
    info: MediaInfo | None


@dataclass(frozen=True)
class Cut:
    """One sentence on the timeline: where it starts, and its clip and narration (None when
    left out: a gap or a black event of ``entry.frames``)."""

    entry: TimelineEntry
    at: int  # its first frame, counted from the timeline's start
    clip: PlacedFile | None
    narration: PlacedFile | None

    @property
    def marker(self) -> str | None:
        """The section whose marker goes at the start of this sentence, if any."""
        return self.entry.section if self.entry.section_start else None


def timeline_cuts(
    entries: Iterable[TimelineEntry], *, fps: int, media_root: str | None
) -> Iterator[Cut]:
    """Each entry as every timeline cuts it: consecutive sentences, each clip as long as its
    sentence, each narration as long as its sentence or its file, whichever is shorter.

    Media references are URLs under ``media_root`` (package-relative paths when None); reel
    names number the sentences by ``entry.number``, else by position.
    """

    def url(rel: str) -> str:
        return rel if media_root is None else media_url(media_root, rel)

    at = 0
    for position, entry in enumerate(entries, start=1):
        number = entry.number or position
        clip = narration = None
        if entry.clip is not None:
            clip = PlacedFile(
                name=f"{entry.stem}_clip",
                url=url(entry.clip),
                reel=video_reel(number),
                frames=entry.frames,
                available=entry.frames,
                info=entry.clip_info,
            )
        if entry.narration is not None:
            available = _narration_frames(entry, fps)
            narration = PlacedFile(
                name=f"{entry.stem}_narration",
                url=url(entry.narration),
                reel=audio_reel(number),
                frames=min(entry.frames, available),
                available=available,
                info=entry.narration_info,
            )
        yield Cut(entry=entry, at=at, clip=clip, narration=narration)
        at += entry.frames


def media_url(media_root: str, rel: str) -> str:
    """The absolute URL of package-relative ``rel`` under ``media_root`` (a URL or a folder)."""
    root = media_root if "://" in media_root else Path(media_root).resolve().as_uri()
    return root.rstrip("/") + "/" + quote(rel)


def project_uid(name: str) -> str:
    """A stable FCPXML project uid for project ``name`` (the same on every export)."""
    return str(uuid.uuid5(_UID_NAMESPACE, name)).upper()


def timecode(frame: int, fps: int) -> str:
    """``HH:MM:SS:FF`` (non-drop frame) of ``frame`` at ``fps``."""
    seconds, ff = divmod(frame, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


def build_timeline(
    name: str,
    entries: Iterable[TimelineEntry],
    *,
    fps: int,
    media_root: str | None = None,
    start_frame: int = 0,
) -> otio.schema.Timeline:
    """Build the timeline: clips on a video track, narrations on an audio track, section markers.

    Each entry lasts ``entry.frames`` on both tracks; a left-out file becomes a gap of that
    length, so the two tracks stay cut at the same sentence boundaries. Media references are
    ``media_root`` URLs (package-relative paths when None); the narration's available range is
    its exact length (whole frames: the package pads narrations to a frame boundary).
    """
    timeline = otio.schema.Timeline(name=name)
    timeline.global_start_time = otio.opentime.RationalTime(start_frame, fps)
    video = otio.schema.Track(name=_VIDEO_TRACK, kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name=_AUDIO_TRACK, kind=otio.schema.TrackKind.Audio)

    for cut in timeline_cuts(entries, fps=fps, media_root=media_root):
        length = _range(0, cut.entry.frames, fps)
        shot = _otio_item(cut.clip, length, fps)
        if cut.marker is not None:
            shot.markers.append(
                otio.schema.Marker(
                    name=cut.marker,
                    marked_range=_range(0, 1, fps),
                    color=otio.schema.MarkerColor.BLUE,
                )
            )
        video.append(shot)
        audio.append(_otio_item(cut.narration, length, fps))
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    return timeline


def _otio_item(
    placed: PlacedFile | None, length: otio.opentime.TimeRange, fps: int
) -> otio.core.Item:
    """A placed file as an OTIO clip; a gap of ``length`` when it was left out."""
    if placed is None:
        return otio.schema.Gap(source_range=length)
    return otio.schema.Clip(
        name=placed.name,
        media_reference=otio.schema.ExternalReference(
            target_url=placed.url, available_range=_range(0, placed.available, fps)
        ),
        source_range=_range(0, placed.frames, fps),
        metadata={"cmx_3600": {"reel": placed.reel}},
    )


def video_reel(number: int) -> str:
    """The EDL reel name of sentence ``number``'s clip (unique across both EDLs)."""
    return f"V{number:04d}"


def audio_reel(number: int) -> str:
    """The EDL reel name of sentence ``number``'s narration (unique across both EDLs)."""
    return f"A{number:04d}"


def _narration_frames(entry: TimelineEntry, fps: int) -> int:
    """The narration file's length in whole frames, never more than it holds.

    Exact for the package's narrations (padded to a frame boundary); the entry's frames when
    the file's length is unknown.
    """
    sound = entry.narration_info.audio if entry.narration_info is not None else None
    if sound is not None and sound.samples is not None and sound.sample_rate:
        return sound.samples * fps // sound.sample_rate
    return entry.frames


def _narration_duration(entry: TimelineEntry, fps: int) -> str:
    """FCPXML duration of the narration asset: exact, in samples when the file's are known."""
    sound = entry.narration_info.audio if entry.narration_info is not None else None
    if sound is not None and sound.samples is not None and sound.sample_rate:
        return f"{sound.samples}/{sound.sample_rate}s" if sound.samples else "0s"
    return f"{entry.frames * 100}/{fps * 100}s" if entry.frames else "0s"


def write_timelines(
    entries: Sequence[TimelineEntry],
    folder: Path,
    *,
    name: str,
    fps: int,
    width: int,
    height: int,
    media_root: str,
    start_frame: int = 0,
    uid: str | None = None,
) -> dict[str, Path]:
    """Write the timeline as FCPXML, FCP7 XML, two CMX3600 EDLs and OTIO into ``folder``.

    ``media_root``: the URL (or folder) the package's files will be read from; media references
    are absolute URLs under it. ``start_frame``: the timelines' start timecode, in frames.
    Returns timeline kind -> written path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = {kind: folder / name_ for kind, name_ in TIMELINE_FILES.items()}
    timeline = build_timeline(
        name, entries, fps=fps, media_root=media_root, start_frame=start_frame
    )

    out["fcpxml"].write_text(
        fcpxml_text(
            entries,
            name=name,
            fps=fps,
            width=width,
            height=height,
            media_root=media_root,
            start_frame=start_frame,
            uid=uid or project_uid(name),
        ),
        encoding="utf-8",
    )

    out["fcp7_xml"].write_text(
        xmeml_text(
            entries,
            name=name,
            fps=fps,
            width=width,
            height=height,
            media_root=media_root,
            start_frame=start_frame,
        ),
        encoding="utf-8",
    )
    out["edl"].write_text(
        edl_text(entries, title=name, fps=fps, media_root=media_root, start_frame=start_frame),
        encoding="utf-8",
    )
    out["edl_narration"].write_text(
        edl_text(
            entries,
            title=f"{name} narration",
            fps=fps,
            media_root=media_root,
            audio=True,
            start_frame=start_frame,
        ),
        encoding="utf-8",
    )

    out["otio"].write_text(
        otio.adapters.write_to_string(timeline, adapter_name="otio_json"), encoding="utf-8"
    )
    return out


def read_timeline(path: Path, *, fps: int) -> otio.schema.Timeline:
    """Read an exported timeline back with OpenTimelineIO (EDLs at the project's rate)."""
    kwargs: dict[str, Any] = {"rate": fps} if path.suffix.lower() == ".edl" else {}
    result = otio.adapters.read_from_file(str(path), **kwargs)
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if not timelines:
            timelines = [t for t in result if isinstance(t, otio.schema.Timeline)]
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise ValueError(f"{path.name}: no timeline in file")
    return result


def resolve_reference(package: Path, target_url: str) -> Path:
    """The file a timeline's media reference points at.

    A relative reference is taken from ``package``; an absolute one that no longer exists (the
    package moved) is looked up in ``package`` by its folder and file name, as the editors'
    relink-by-folder does.
    """
    parsed = urlparse(target_url)
    if parsed.scheme == "file" or target_url.startswith("/"):
        path = Path(unquote(parsed.path if parsed.scheme == "file" else target_url))
        if path.exists():
            return path
        return package / _package_rel(unquote(parsed.path or target_url))
    return package / Path(unquote(target_url))


def _package_rel(path: str) -> str:
    """``videos/001_intro_clip.mp4`` from any path or URL path ending in a package file."""
    parts = PurePosixPath(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]


def relink_timelines(package: Path, media_root: str | None = None) -> list[Path]:
    """Rewrite the package's media references as absolute URLs under ``media_root``.

    ``media_root`` is the URL (or folder) the package's files live under; by default, where the
    package is now. For a package copied or unzipped elsewhere. EDLs carry file names only and
    are left alone. Returns the rewritten files.
    """
    root = media_root if media_root is not None else str(Path(package).resolve())

    def absolute(ref: str) -> str:
        parsed = urlparse(ref)
        rel = _package_rel(unquote(parsed.path)) if (parsed.scheme or ref.startswith("/")) else ref
        return media_url(root, unquote(rel))

    changed: list[Path] = []
    fcpxml = package / TIMELINE_FILES["fcpxml"]
    if fcpxml.exists():
        root_el = ET.fromstring(fcpxml.read_text(encoding="utf-8"))
        for asset in root_el.iter("asset"):
            if asset.get("src"):
                asset.set("src", absolute(asset.get("src", "")))
        fcpxml.write_text(_xml_text(root_el, "fcpxml"), encoding="utf-8")
        changed.append(fcpxml)
    xmeml = package / TIMELINE_FILES["fcp7_xml"]
    if xmeml.exists():
        root_el = ET.fromstring(xmeml.read_text(encoding="utf-8"))
        for pathurl in root_el.iter("pathurl"):
            pathurl.text = absolute(pathurl.text or "")
        xmeml.write_text(_xml_text(root_el, "xmeml"), encoding="utf-8")
        changed.append(xmeml)
    otio_file = package / TIMELINE_FILES["otio"]
    if otio_file.exists():
        timeline = otio.adapters.read_from_file(str(otio_file))
        for clip in timeline.find_clips():
            ref = clip.media_reference
            if isinstance(ref, otio.schema.ExternalReference):
                ref.target_url = absolute(ref.target_url)
        otio_file.write_text(
            otio.adapters.write_to_string(timeline, adapter_name="otio_json"), encoding="utf-8"
        )
        changed.append(otio_file)
    return changed


# ---------------------------------------------------------------- FCPXML


def fcpx_format_name(width: int, height: int, fps: int) -> str | None:
    """Final Cut's name for a standard video format (``FFVideoFormat1080p30``), else None."""
    lines = _FCPX_HEIGHT_NAMES.get((width, height))
    return f"FFVideoFormat{lines}p{fps}" if lines else None


def fcpxml_text(
    entries: Sequence[TimelineEntry],
    *,
    name: str,
    fps: int,
    width: int,
    height: int,
    media_root: str,
    start_frame: int = 0,
    uid: str = "",
) -> str:
    """The FCPXML 1.8 document of the timeline (see the module docstring), in one pass."""
    den = fps * 100

    def t(frames: int) -> str:
        return f"{frames * 100}/{den}s" if frames else "0s"

    root = ET.Element("fcpxml", {"version": FCPXML_VERSION})
    resources = ET.SubElement(root, "resources")
    fmt = ET.SubElement(resources, "format", {"id": "r1"})
    format_name = fcpx_format_name(width, height, fps)
    if format_name:
        fmt.set("name", format_name)
    fmt.set("frameDuration", t(1))
    fmt.set("width", str(width))
    fmt.set("height", str(height))
    fmt.set("colorSpace", REC709)

    event = ET.Element("event", {"name": name or "Export"})
    project = ET.SubElement(event, "project", {"name": name or "Export"})
    if uid:
        project.set("uid", uid)
    total = sum(e.frames for e in entries)
    sequence = ET.SubElement(
        project,
        "sequence",
        {
            "format": "r1",
            "duration": t(total),
            "tcStart": t(start_frame),
            "tcFormat": "NDF",
            "audioLayout": "stereo",
            "audioRate": "48k",
        },
    )
    spine = ET.SubElement(sequence, "spine")

    next_id = 2
    for cut in timeline_cuts(entries, fps=fps, media_root=media_root):
        entry, offset = cut.entry, start_frame + cut.at
        item: ET.Element
        if cut.clip is not None:
            clip = cut.clip
            asset_id = f"r{next_id}"
            next_id += 1
            sound = clip.info.audio if clip.info is not None else None
            asset = ET.SubElement(
                resources,
                "asset",
                {
                    "id": asset_id,
                    "name": clip.name,
                    "src": clip.url,
                    "start": "0s",
                    "duration": t(clip.available),
                    "hasVideo": "1",
                    "format": "r1",
                    "hasAudio": "1" if sound is not None else "0",
                },
            )
            if sound is not None:
                asset.set("audioSources", "1")
                asset.set("audioChannels", str(sound.channels or 2))
                asset.set("audioRate", str(sound.sample_rate or 48000))
            _reel(asset, clip.reel)
            item = ET.SubElement(
                spine,
                "asset-clip",
                {
                    "name": clip.name,
                    "ref": asset_id,
                    "offset": t(offset),
                    "duration": t(clip.frames),
                    "format": "r1",
                    "tcFormat": "NDF",
                    # the picture only: a clip's own sound is the narration, which is
                    # connected below (and played once)
                    "srcEnable": "video",
                },
            )
        else:
            item = ET.SubElement(
                spine,
                "gap",
                {"name": f"{entry.stem}_gap", "offset": t(offset), "duration": t(entry.frames)},
            )
        if cut.narration is not None:
            narration = cut.narration
            asset_id = f"r{next_id}"
            next_id += 1
            sound = narration.info.audio if narration.info is not None else None
            asset = ET.SubElement(
                resources,
                "asset",
                {
                    "id": asset_id,
                    "name": narration.name,
                    "src": narration.url,
                    "start": "0s",
                    "duration": _narration_duration(entry, fps),
                    "hasVideo": "0",
                    "hasAudio": "1",
                    "audioSources": "1",
                    "audioChannels": str((sound.channels if sound else None) or 1),
                    "audioRate": str((sound.sample_rate if sound else None) or 48000),
                },
            )
            _reel(asset, narration.reel)
            ET.SubElement(
                item,
                "asset-clip",
                {
                    "name": narration.name,
                    "ref": asset_id,
                    "lane": "-1",
                    "offset": "0s",
                    "duration": t(narration.frames),
                    "audioRole": "dialogue",
                },
            )
        if cut.marker is not None:
            ET.SubElement(item, "marker", {"start": "0s", "duration": t(1), "value": cut.marker})
    root.append(event)
    return _xml_text(root, "fcpxml")


def _reel(asset: ET.Element, reel: str) -> None:
    """A reel name, as Final Cut writes it (and a child OTIO's reader needs to read the asset)."""
    md = ET.SubElement(ET.SubElement(asset, "metadata"), "md")
    md.set("key", "com.apple.proapps.studio.reel")
    md.set("value", reel)


# ---------------------------------------------------------------- FCP7 XML (xmeml)


def xmeml_text(
    entries: Sequence[TimelineEntry],
    *,
    name: str,
    fps: int,
    width: int,
    height: int,
    media_root: str,
    start_frame: int = 0,
) -> str:
    """The FCP7 XML (xmeml version 4) document of the timeline, for Premiere Pro, in one pass.

    A video track of clip items and an audio track of narration clip items (each with its
    ``sourcetrack``), cut at the same frames; every file says what it holds (a silent clip no
    audio stream; a narration its sample rate, depth and channel count) and its exact length;
    section markers on the video clip items; the sequence timecode starts at ``start_frame``.
    """
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!DOCTYPE xmeml>",
        '<xmeml version="4">',
        "  <project>",
        f"    <name>{_x(name)}</name>",
        "    <children>",
        '      <sequence id="sequence-1">',
        f"        <name>{_x(name)}</name>",
        f"        <duration>{sum(e.frames for e in entries)}</duration>",
        *_xmeml_rate(fps, "        "),
        "        <media>",
        "          <video>",
        "            <format>",
        *_video_chars(fps, width, height, "              "),
        "            </format>",
        "            <track>",
    ]
    ids = iter(range(1, 2 * len(entries) + 1))
    video: list[str] = []
    audio: list[str] = []
    for cut in timeline_cuts(entries, fps=fps, media_root=media_root):
        if cut.clip is not None:
            video += _clipitem(next(ids), cut.clip, cut.at, fps, marker=cut.marker)
        if cut.narration is not None:
            audio += _clipitem(next(ids), cut.narration, cut.at, fps, audio=True)
    out += video
    out += [
        "            </track>",
        "          </video>",
        "          <audio>",
        "            <format>",
        "              <samplecharacteristics>",
        "                <depth>16</depth>",
        "                <samplerate>48000</samplerate>",
        "              </samplecharacteristics>",
        "            </format>",
        "            <track>",
    ]
    out += audio
    out += [
        "            </track>",
        "          </audio>",
        "        </media>",
        *_xmeml_timecode(start_frame, fps, "        "),
        "      </sequence>",
        "    </children>",
        "  </project>",
        "</xmeml>",
    ]
    return "\n".join(out) + "\n"


def _clipitem(
    n: int,
    placed: PlacedFile,
    at: int,
    fps: int,
    *,
    audio: bool = False,
    marker: str | None = None,
) -> list[str]:
    """One xmeml clip item at frame ``at``; a file without ``info`` holds a picture, or sound
    with ``audio``."""
    url, info = placed.url, placed.info
    i = "              "
    lines = [
        f'{i}<clipitem id="clipitem-{n}">',
        f"{i}  <name>{_x(placed.name)}</name>",
        f"{i}  <enabled>TRUE</enabled>",
        f"{i}  <duration>{placed.available}</duration>",
        *_xmeml_rate(fps, i + "  "),
        f"{i}  <start>{at}</start>",
        f"{i}  <end>{at + placed.frames}</end>",
        f"{i}  <in>0</in>",
        f"{i}  <out>{placed.frames}</out>",
        f'{i}  <file id="file-{n}">',
        f"{i}    <name>{_x(url.rsplit('/', 1)[-1])}</name>",
        f"{i}    <pathurl>{_x(url)}</pathurl>",
        *_xmeml_rate(fps, i + "    "),
        f"{i}    <duration>{placed.available}</duration>",
        *_xmeml_timecode(0, fps, i + "    ", reel=placed.reel),
        f"{i}    <media>",
    ]
    picture = info.video if info is not None else None
    sound = info.audio if info is not None else None
    if picture is not None or (info is None and not audio):
        lines += [
            f"{i}      <video>",
            *_video_chars(
                fps,
                picture.width if picture else None,
                picture.height if picture else None,
                i + "        ",
            ),
            f"{i}      </video>",
        ]
    if sound is not None or (info is None and audio):
        depth, rate, channels = (
            (sound.depth, sound.sample_rate, sound.channels) if sound else (0, 0, 0)
        )
        lines += [
            f"{i}      <audio>",
            f"{i}        <samplecharacteristics>",
            f"{i}          <depth>{depth or 16}</depth>",
            f"{i}          <samplerate>{rate or 48000}</samplerate>",
            f"{i}        </samplecharacteristics>",
            f"{i}        <channelcount>{channels or 1}</channelcount>",
            f"{i}      </audio>",
        ]
    lines += [f"{i}    </media>", f"{i}  </file>"]
    if audio:
        lines += [
            f"{i}  <sourcetrack>",
            f"{i}    <mediatype>audio</mediatype>",
            f"{i}    <trackindex>1</trackindex>",
            f"{i}  </sourcetrack>",
        ]
    if marker is not None:
        lines += [
            f"{i}  <marker>",
            f"{i}    <name>{_x(marker)}</name>",
            f"{i}    <in>0</in>",
            f"{i}    <out>1</out>",
            f"{i}  </marker>",
        ]
    lines.append(f"{i}</clipitem>")
    return lines


def _xmeml_rate(fps: int, indent: str) -> list[str]:
    return [
        f"{indent}<rate>",
        f"{indent}  <timebase>{fps}</timebase>",
        f"{indent}  <ntsc>FALSE</ntsc>",
        f"{indent}</rate>",
    ]


def _xmeml_timecode(frame: int, fps: int, indent: str, *, reel: str | None = None) -> list[str]:
    lines = [
        f"{indent}<timecode>",
        *_xmeml_rate(fps, indent + "  "),
        f"{indent}  <string>{timecode(frame, fps)}</string>",
        f"{indent}  <frame>{frame}</frame>",
        f"{indent}  <displayformat>NDF</displayformat>",
    ]
    if reel is not None:
        lines += [f"{indent}  <reel>", f"{indent}    <name>{reel}</name>", f"{indent}  </reel>"]
    return [*lines, f"{indent}</timecode>"]


def _video_chars(fps: int, width: int | None, height: int | None, indent: str) -> list[str]:
    lines = [f"{indent}<samplecharacteristics>", *_xmeml_rate(fps, indent + "  ")]
    if width is not None:
        lines.append(f"{indent}  <width>{width}</width>")
    if height is not None:
        lines.append(f"{indent}  <height>{height}</height>")
    return [
        *lines,
        f"{indent}  <anamorphic>FALSE</anamorphic>",
        f"{indent}  <pixelaspectratio>square</pixelaspectratio>",
        f"{indent}  <fielddominance>none</fielddominance>",
        f"{indent}</samplecharacteristics>",
    ]


def _x(text: str) -> str:
    return escape(text, {'"': "&quot;"})


# ---------------------------------------------------------------- CMX3600 EDL


def edl_text(
    entries: Sequence[TimelineEntry],
    *,
    title: str,
    fps: int,
    media_root: str,
    audio: bool = False,
    start_frame: int = 0,
) -> str:
    """A CMX3600 EDL of the clips (or, with ``audio``, of the narrations) in one pass.

    One cut event per sentence, record times from ``start_frame``; a missing file is a black
    (``BL``) event of its length; the clip name and file URL follow each event as comments
    (``* FROM CLIP NAME:``, ``* FROM CLIP:``), section starts as ``* LOC:`` markers.
    """
    lines = [f"TITLE: {title}", "FCM: NON-DROP FRAME", ""]
    kind = "A" if audio else "V"
    cuts = timeline_cuts(entries, fps=fps, media_root=media_root)
    for position, cut in enumerate(cuts, start=1):
        placed = cut.narration if audio else cut.clip
        frames = placed.frames if placed is not None else cut.entry.frames
        reel = placed.reel if placed is not None else "BL"
        at = start_frame + cut.at
        lines.append(
            f"{position:03d}  {reel:8} {kind:5} C        "
            f"{timecode(0, fps)} {timecode(frames, fps)} "
            f"{timecode(at, fps)} {timecode(at + frames, fps)}"
        )
        if placed is not None:
            lines.append(f"* FROM CLIP NAME:  {placed.name}")
            lines.append(f"* FROM CLIP: {placed.url}")
        if cut.marker is not None and not audio:
            lines.append(f"* LOC: {timecode(0, fps)} BLUE    {cut.marker.upper()}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- helpers


def _range(start: int, frames: int, fps: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(
        otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(frames, fps)
    )


def _xml_text(root: ET.Element, doctype: str) -> str:
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE {doctype}>\n{body}\n'

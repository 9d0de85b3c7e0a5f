"""NLE timelines for an export package: one timeline, written five ways.

The timeline has a video track of clips and an audio track of narrations, cut at sentence
boundaries, with a marker at the start of every section.

* FCPXML (``timeline.fcpxml``), for DaVinci Resolve and Final Cut Pro: written directly (one
  pass, linear in the clip count) as FCPXML 1.8, valid against Apple's DTD of that version. The
  video clips are ``asset-clip`` elements on the spine; each narration is a connected
  ``asset-clip`` (lane -1) of its clip, with ``audioRole="dialogue"``; the format is tagged
  Rec. 709; audio assets give their length in samples (``72000/48000s``), clips and edits in
  whole frames (``4500/3000s``).
* FCP7 XML / xmeml (``otio-fcp-adapter``), for Premiere Pro, then completed: the sequence's
  format gets sample characteristics (size, rate, pixel aspect); each file says what it holds (a
  silent clip claims no audio stream; a narration gets its sample rate and channel count);
  narration clip items get a ``sourcetrack``; the document gets its DOCTYPE.
* CMX3600 EDL (``otio-cmx3600-adapter``): the writer takes exactly one video track and drops
  audio, so the narration is its own EDL (``timeline_narration.edl``). Reel names are unique
  across both EDLs: ``V0001``... for clips, ``A0001``... for narrations.
* ``timeline.otio``: the timeline itself.

Media references are absolute ``file://`` URLs of the place the package is written to (what
Final Cut, Premiere and Resolve write and resolve); a package that moves is relinked by file
name (the editors' relink-by-folder), or rewritten for its new place by
:func:`relink_timelines`. Every timeline starts at the project's start timecode
(``start_frame``; 00:00:00:00 unless the brief asks for the broadcast 01:00:00:00).
"""

from __future__ import annotations

import re
import uuid
import wave
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlparse

import opentimelineio as otio

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
_EDL_EVENT = re.compile(r"^(\d{3,6}\s+\S+\s+\S+\s+C\s+)(\S+) (\S+) (\S+) (\S+)\s*$")


@dataclass(frozen=True)
class MediaInfo:
    """What an editor needs to know about one media file before it opens it."""

    has_video: bool = False
    has_audio: bool = False
    width: int | None = None
    height: int | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    audio_depth: int | None = None
    seconds: float | None = None
    audio_samples: int | None = None  # exact length of a PCM WAV, in samples


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


def probe_media(path: Path) -> MediaInfo:
    """Read the stream layout of a WAV (with :mod:`wave`) or any other file (with PyAV)."""
    if path.suffix.lower() == ".wav":
        try:
            with wave.open(str(path), "rb") as wav:
                rate = wav.getframerate()
                return MediaInfo(
                    has_audio=True,
                    audio_rate=rate,
                    audio_channels=wav.getnchannels(),
                    audio_depth=wav.getsampwidth() * 8,
                    seconds=wav.getnframes() / rate if rate else None,
                    audio_samples=wav.getnframes(),
                )
        except (wave.Error, EOFError):
            pass  # float or extensible WAV: PyAV reads it
    import av  # deferred: only needed when an export probes media

    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        seconds = container.duration / 1_000_000 if container.duration else None
        return MediaInfo(
            has_video=video is not None,
            has_audio=audio is not None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            audio_rate=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None,
            seconds=seconds,
        )


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

    def url(rel: str) -> str:
        return rel if media_root is None else media_url(media_root, rel)

    for position, entry in enumerate(entries, start=1):
        number = entry.number or position
        length = _range(0, entry.frames, fps)
        shot: otio.core.Item
        if entry.clip is not None:
            shot = otio.schema.Clip(
                name=f"{entry.stem}_clip",
                media_reference=otio.schema.ExternalReference(
                    target_url=url(entry.clip), available_range=length
                ),
                source_range=length,
                metadata={"cmx_3600": {"reel": video_reel(number)}},
            )
        else:
            shot = otio.schema.Gap(source_range=length)
        if entry.section_start:
            shot.markers.append(
                otio.schema.Marker(
                    name=entry.section,
                    marked_range=_range(0, 1, fps),
                    color=otio.schema.MarkerColor.BLUE,
                )
            )
        video.append(shot)
        voice: otio.core.Item
        if entry.narration is not None:
            available = _narration_range(entry, fps)
            voice = otio.schema.Clip(
                name=f"{entry.stem}_narration",
                media_reference=otio.schema.ExternalReference(
                    target_url=url(entry.narration), available_range=available
                ),
                source_range=_range(0, min(entry.frames, int(available.duration.value)), fps),
                metadata={"cmx_3600": {"reel": audio_reel(number)}},
            )
        else:
            voice = otio.schema.Gap(source_range=length)
        audio.append(voice)
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    return timeline


def video_reel(number: int) -> str:
    """The EDL reel name of sentence ``number``'s clip (unique across both EDLs)."""
    return f"V{number:04d}"


def audio_reel(number: int) -> str:
    """The EDL reel name of sentence ``number``'s narration (unique across both EDLs)."""
    return f"A{number:04d}"


def _narration_range(entry: TimelineEntry, fps: int) -> otio.opentime.TimeRange:
    """The narration file's length in whole frames, never more than it holds.

    Exact for the package's narrations (padded to a frame boundary); the entry's frames when
    the file's length is unknown.
    """
    info = entry.narration_info
    if info is not None and info.audio_samples is not None and info.audio_rate:
        return _range(0, info.audio_samples * fps // info.audio_rate, fps)
    return _range(0, entry.frames, fps)


def _narration_duration(entry: TimelineEntry, fps: int) -> str:
    """FCPXML duration of the narration asset: exact, in samples when the file's are known."""
    info = entry.narration_info
    if info is not None and info.audio_samples is not None and info.audio_rate:
        return f"{info.audio_samples}/{info.audio_rate}s" if info.audio_samples else "0s"
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
    media = {e.clip: e.clip_info for e in entries if e.clip and e.clip_info}
    media.update(
        {e.narration: e.narration_info for e in entries if e.narration and e.narration_info}
    )
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

    xmeml = otio.adapters.write_to_string(timeline, adapter_name="fcp_xml")
    by_url = {media_url(media_root, rel): info for rel, info in media.items() if info}
    out["fcp7_xml"].write_text(
        fix_xmeml(xmeml, fps=fps, width=width, height=height, media=by_url), encoding="utf-8"
    )

    video_tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    audio_tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    video_only = otio.schema.Timeline(name=timeline.name)
    video_only.tracks.append(video_tracks[0].clone())
    edl = otio.adapters.write_to_string(video_only, adapter_name="cmx_3600", rate=fps)
    out["edl"].write_text(_shift_edl(edl, start_frame, fps), encoding="utf-8")
    # The writer emits track 0 only and insists on exactly one video track: put the narration
    # first and an empty video track after it, so its events come out as audio ("A") events.
    narration_only = otio.schema.Timeline(name=f"{timeline.name} narration")
    narration_only.tracks.append(audio_tracks[0].clone())
    narration_only.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video))
    edl = otio.adapters.write_to_string(narration_only, adapter_name="cmx_3600", rate=fps)
    out["edl_narration"].write_text(_shift_edl(edl, start_frame, fps), encoding="utf-8")

    out["otio"].write_text(
        otio.adapters.write_to_string(timeline, adapter_name="otio_json"), encoding="utf-8"
    )
    return out


def _shift_edl(text: str, start_frame: int, fps: int) -> str:
    """Move an EDL's record timecodes to start at ``start_frame`` (the writer starts at 0)."""
    if not start_frame:
        return text
    lines = []
    for line in text.splitlines():
        match = _EDL_EVENT.match(line)
        if match:
            head, src_in, src_out, rec_in, rec_out = match.groups()
            rec_in = timecode(_tc_frames(rec_in, fps) + start_frame, fps)
            rec_out = timecode(_tc_frames(rec_out, fps) + start_frame, fps)
            line = f"{head}{src_in} {src_out} {rec_in} {rec_out}"
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _tc_frames(tc: str, fps: int) -> int:
    hh, mm, ss, ff = (int(x) for x in re.split(r"[:;]", tc))
    return ((hh * 60 + mm) * 60 + ss) * fps + ff


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
    offset = start_frame
    for position, entry in enumerate(entries, start=1):
        number = entry.number or position
        item: ET.Element
        if entry.clip is not None:
            asset_id = f"r{next_id}"
            next_id += 1
            info = entry.clip_info
            asset = ET.SubElement(
                resources,
                "asset",
                {
                    "id": asset_id,
                    "name": f"{entry.stem}_clip",
                    "src": media_url(media_root, entry.clip),
                    "start": "0s",
                    "duration": t(entry.frames),
                    "hasVideo": "1",
                    "format": "r1",
                    "hasAudio": "1" if info is not None and info.has_audio else "0",
                },
            )
            if info is not None and info.has_audio:
                asset.set("audioSources", "1")
                asset.set("audioChannels", str(info.audio_channels or 2))
                asset.set("audioRate", str(info.audio_rate or 48000))
            _reel(asset, video_reel(number))
            item = ET.SubElement(
                spine,
                "asset-clip",
                {
                    "name": f"{entry.stem}_clip",
                    "ref": asset_id,
                    "offset": t(offset),
                    "duration": t(entry.frames),
                    "format": "r1",
                    "tcFormat": "NDF",
                },
            )
        else:
            item = ET.SubElement(
                spine,
                "gap",
                {"name": f"{entry.stem}_gap", "offset": t(offset), "duration": t(entry.frames)},
            )
        if entry.narration is not None:
            asset_id = f"r{next_id}"
            next_id += 1
            info = entry.narration_info
            available = _narration_range(entry, fps)
            asset = ET.SubElement(
                resources,
                "asset",
                {
                    "id": asset_id,
                    "name": f"{entry.stem}_narration",
                    "src": media_url(media_root, entry.narration),
                    "start": "0s",
                    "duration": _narration_duration(entry, fps),
                    "hasVideo": "0",
                    "hasAudio": "1",
                    "audioSources": "1",
                    "audioChannels": str((info.audio_channels if info else None) or 1),
                    "audioRate": str((info.audio_rate if info else None) or 48000),
                },
            )
            _reel(asset, audio_reel(number))
            ET.SubElement(
                item,
                "asset-clip",
                {
                    "name": f"{entry.stem}_narration",
                    "ref": asset_id,
                    "lane": "-1",
                    "offset": "0s",
                    "duration": t(min(entry.frames, int(available.duration.value))),
                    "audioRole": "dialogue",
                },
            )
        if entry.section_start:
            ET.SubElement(item, "marker", {"start": "0s", "duration": t(1), "value": entry.section})
        offset += entry.frames
    root.append(event)
    return _xml_text(root, "fcpxml")


def _reel(asset: ET.Element, reel: str) -> None:
    """A reel name, as Final Cut writes it (and a child OTIO's reader needs to read the asset)."""
    md = ET.SubElement(ET.SubElement(asset, "metadata"), "md")
    md.set("key", "com.apple.proapps.studio.reel")
    md.set("value", reel)


# ---------------------------------------------------------------- FCP7 XML (xmeml)


def fix_xmeml(
    text: str, *, fps: int, width: int, height: int, media: Mapping[str, MediaInfo]
) -> str:
    """Close what the FCP7 XML adapter leaves out (see the module docstring)."""
    root = ET.fromstring(text)
    for sequence in root.iter("sequence"):
        seq_media = sequence.find("media")
        if seq_media is None:
            continue
        seq_video = seq_media.find("video")
        if seq_video is not None:
            fmt = seq_video.find("format")
            if fmt is None:
                fmt = ET.Element("format")
                seq_video.insert(0, fmt)
            fmt.clear()
            fmt.append(_video_characteristics(fps, width, height))
        seq_audio = seq_media.find("audio")
        if seq_audio is not None and seq_audio.find("format") is None:
            fmt = ET.Element("format")
            chars = ET.SubElement(fmt, "samplecharacteristics")
            ET.SubElement(chars, "depth").text = "16"
            ET.SubElement(chars, "samplerate").text = "48000"
            seq_audio.insert(0, fmt)

        for track_kind in ("video", "audio"):
            kind_el = seq_media.find(track_kind)
            if kind_el is None:
                continue
            for clipitem in kind_el.iter("clipitem"):
                file_el = clipitem.find("file")
                if file_el is None:
                    continue
                url = file_el.findtext("pathurl")
                info = media.get(url or "")
                if info is not None:
                    _describe_file(file_el, info, fps)
                if track_kind == "audio" and clipitem.find("sourcetrack") is None:
                    source = ET.SubElement(clipitem, "sourcetrack")
                    ET.SubElement(source, "mediatype").text = "audio"
                    ET.SubElement(source, "trackindex").text = "1"
    return _xml_text(root, "xmeml")


def _rate_element(fps: int) -> ET.Element:
    rate = ET.Element("rate")
    ET.SubElement(rate, "timebase").text = str(fps)
    ET.SubElement(rate, "ntsc").text = "FALSE"
    return rate


def _video_characteristics(fps: int, width: int | None, height: int | None) -> ET.Element:
    chars = ET.Element("samplecharacteristics")
    chars.append(_rate_element(fps))
    if width is not None:
        ET.SubElement(chars, "width").text = str(width)
    if height is not None:
        ET.SubElement(chars, "height").text = str(height)
    ET.SubElement(chars, "anamorphic").text = "FALSE"
    ET.SubElement(chars, "pixelaspectratio").text = "square"
    ET.SubElement(chars, "fielddominance").text = "none"
    return chars


def _describe_file(file_el: ET.Element, info: MediaInfo, fps: int) -> None:
    file_media = file_el.find("media")
    if file_media is None:
        file_media = ET.SubElement(file_el, "media")
    for child in list(file_media):
        file_media.remove(child)
    if info.has_video:
        video = ET.SubElement(file_media, "video")
        video.append(_video_characteristics(fps, info.width, info.height))
    if info.has_audio:
        audio = ET.SubElement(file_media, "audio")
        chars = ET.SubElement(audio, "samplecharacteristics")
        ET.SubElement(chars, "depth").text = str(info.audio_depth or 16)
        ET.SubElement(chars, "samplerate").text = str(info.audio_rate or 48000)
        ET.SubElement(audio, "channelcount").text = str(info.audio_channels or 1)


# ---------------------------------------------------------------- helpers


def _range(start: int, frames: int, fps: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(
        otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(frames, fps)
    )


def _xml_text(root: ET.Element, doctype: str) -> str:
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE {doctype}>\n{body}\n'

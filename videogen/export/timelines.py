"""NLE timelines for an export package: one OpenTimelineIO timeline, written five ways.

The timeline has a video track of clips and an audio track of narrations, cut at sentence
boundaries, with a marker at the start of every section. It is written with the OpenTimelineIO
adapters and then corrected where the adapters fall short of what the editors expect:

* FCPXML (``otio-fcpx-xml-adapter``), for DaVinci Resolve and Final Cut Pro: the ``format``
  element gets ``width``/``height``/``name``; every time value is rewritten as a whole number of
  frames over the format's frame duration (``4500/3000s``); audio assets lose the video format
  and gain ``audioSources``/``audioChannels``/``audioRate``; video assets say whether they carry
  sound; the sequence gets ``tcStart``/``tcFormat``/``audioLayout``/``audioRate``; the project and
  its clips are wrapped in an ``event`` (Final Cut keeps projects in events).
* FCP7 XML / xmeml (``otio-fcp-adapter``), for Premiere Pro: the sequence's empty ``format``
  gets sample characteristics (size, rate, pixel aspect); each file says what it holds (a video
  clip without sound no longer claims an audio stream; a narration gets its sample rate and
  channel count); narration clip items get a ``sourcetrack``; the document gets its DOCTYPE.
* CMX3600 EDL (``otio-cmx3600-adapter``): the writer takes exactly one video track and silently
  drops audio, so the narration is written as its own EDL (``timeline_narration.edl``).
* ``timeline.otio``: the timeline itself.

Media references are relative POSIX paths inside the package (``videos/001_intro_clip.mp4``), so
the package can move to another machine; :func:`relink_timelines` rewrites them to absolute
``file://`` URLs for editors that want those.
"""

from __future__ import annotations

import math
import wave
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
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

_VIDEO_TRACK = "Video"
_AUDIO_TRACK = "Narration"
_FCPX_TIME_ATTRS = ("offset", "duration", "start")
_FCPX_HEIGHT_NAMES = {(1280, 720): "720", (1920, 1080): "1080", (3840, 2160): "2160"}


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
    name: str, entries: Iterable[TimelineEntry], *, fps: int
) -> otio.schema.Timeline:
    """Build the timeline: clips on a video track, narrations on an audio track, section markers.

    Each entry lasts ``entry.frames`` on both tracks; a left-out file becomes a gap of that
    length, so the two tracks stay cut at the same sentence boundaries.
    """
    timeline = otio.schema.Timeline(name=name)
    timeline.global_start_time = otio.opentime.RationalTime(0, fps)
    video = otio.schema.Track(name=_VIDEO_TRACK, kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name=_AUDIO_TRACK, kind=otio.schema.TrackKind.Audio)
    for entry in entries:
        length = _range(0, entry.frames, fps)
        shot: otio.core.Item
        if entry.clip is not None:
            shot = otio.schema.Clip(
                name=f"{entry.stem}_clip",
                media_reference=otio.schema.ExternalReference(
                    target_url=entry.clip, available_range=length
                ),
                source_range=length,
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
            available = entry.frames
            info = entry.narration_info
            if info is not None and info.seconds is not None:
                # the clip is frame-exact; a narration a hair shorter still spans the cut
                available = max(available, math.ceil(info.seconds * fps - 1e-6))
            voice = otio.schema.Clip(
                name=f"{entry.stem}_narration",
                media_reference=otio.schema.ExternalReference(
                    target_url=entry.narration, available_range=_range(0, available, fps)
                ),
                source_range=length,
            )
        else:
            voice = otio.schema.Gap(source_range=length)
        audio.append(voice)
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    return timeline


def write_timelines(
    timeline: otio.schema.Timeline,
    folder: Path,
    *,
    fps: int,
    width: int,
    height: int,
    media: Mapping[str, MediaInfo] | None = None,
) -> dict[str, Path]:
    """Write the timeline as FCPXML, FCP7 XML, two CMX3600 EDLs and OTIO into ``folder``.

    ``media`` maps package-relative paths to their probed streams; it fills the details the
    adapters leave out. Returns timeline kind -> written path.
    """
    media = media or {}
    folder.mkdir(parents=True, exist_ok=True)
    out = {kind: folder / name for kind, name in TIMELINE_FILES.items()}

    fcpx = otio.adapters.write_to_string(timeline, adapter_name="fcpx_xml")
    fcpx = fix_fcpxml(fcpx, fps=fps, width=width, height=height, media=media, event=timeline.name)
    out["fcpxml"].write_text(fcpx, encoding="utf-8")

    xmeml = otio.adapters.write_to_string(timeline, adapter_name="fcp_xml")
    out["fcp7_xml"].write_text(
        fix_xmeml(xmeml, fps=fps, width=width, height=height, media=media), encoding="utf-8"
    )

    video_tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    audio_tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    video_only = otio.schema.Timeline(name=timeline.name)
    video_only.tracks.append(video_tracks[0].clone())
    out["edl"].write_text(
        otio.adapters.write_to_string(video_only, adapter_name="cmx_3600", rate=fps),
        encoding="utf-8",
    )
    # The writer emits track 0 only and insists on exactly one video track: put the narration
    # first and an empty video track after it, so its events come out as audio ("A") events.
    narration_only = otio.schema.Timeline(name=f"{timeline.name} narration")
    narration_only.tracks.append(audio_tracks[0].clone())
    narration_only.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video))
    out["edl_narration"].write_text(
        otio.adapters.write_to_string(narration_only, adapter_name="cmx_3600", rate=fps),
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
    """The file a timeline's media reference points at, relative refs taken from ``package``."""
    parsed = urlparse(target_url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return package / Path(unquote(target_url))


def relink_timelines(package: Path, media_root: str | None = None) -> list[Path]:
    """Rewrite the package's relative media references as absolute ``file://`` URLs.

    ``media_root`` is the URL (or folder) the package's files live under; by default, where the
    package is now. For editors that will not resolve relative paths (Premiere's ``pathurl``,
    Final Cut's ``src``). EDLs carry file names only and are left alone. Returns rewritten files.
    """
    root = media_root if media_root is not None else package.resolve().as_uri()
    if "://" not in root:
        root = Path(root).resolve().as_uri()
    root = root.rstrip("/") + "/"

    def absolute(ref: str) -> str:
        if "://" in ref or ref.startswith("/"):
            return ref
        return root + quote(ref)

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


def fix_fcpxml(
    text: str,
    *,
    fps: int,
    width: int,
    height: int,
    media: Mapping[str, MediaInfo],
    event: str = "",
) -> str:
    """Close what the FCPXML adapter leaves out (see the module docstring)."""
    root = ET.fromstring(text)
    frame_den = fps * 100
    resources = root.find("resources")
    if resources is None:
        raise ValueError("FCPXML without resources")
    formats = resources.findall("format")
    for fmt in formats:
        fmt.set("frameDuration", f"100/{frame_den}s")
        fmt.set("width", str(width))
        fmt.set("height", str(height))
        name = fcpx_format_name(width, height, fps)
        if name:
            fmt.set("name", name)
        elif "name" in fmt.attrib:
            del fmt.attrib["name"]
        fmt.set("colorSpace", "1-1-1 (Rec. 709)")
    video_format = formats[0].get("id") if formats else None

    for asset in resources.findall("asset"):
        info = media.get(asset.get("src", ""))
        audio_only = asset.get("hasVideo") == "0" or (
            info is not None and not info.has_video and info.has_audio
        )
        if audio_only:
            asset.attrib.pop("format", None)
            asset.set("hasVideo", "0")
            asset.set("hasAudio", "1")
            asset.set("audioSources", "1")
            asset.set("audioChannels", str((info.audio_channels if info else None) or 1))
            asset.set("audioRate", str((info.audio_rate if info else None) or 48000))
        else:
            if video_format is not None:
                asset.set("format", video_format)
            asset.set("hasVideo", "1")
            asset.set("videoSources", "1")
            has_audio = info is not None and info.has_audio
            asset.set("hasAudio", "1" if has_audio else "0")
            if has_audio and info is not None:
                asset.set("audioSources", "1")
                asset.set("audioChannels", str(info.audio_channels or 2))
                asset.set("audioRate", str(info.audio_rate or 48000))

    for asset in resources.findall("asset"):
        # A reel name per asset, as Final Cut writes it. It also gives the element a child, which
        # OpenTimelineIO's reader needs: it tests `if asset` (false for a childless element) and
        # would otherwise read a connected narration as video.
        if asset.find("metadata") is None:
            md = ET.SubElement(ET.SubElement(asset, "metadata"), "md")
            md.set("key", "com.apple.proapps.studio.reel")
            md.set("value", asset.get("name", ""))
    audio_assets = {a.get("id") for a in resources.findall("asset") if a.get("hasVideo") == "0"}
    for clip in root.iter("asset-clip"):
        if clip.get("ref") in audio_assets:
            clip.attrib.pop("format", None)
            clip.set("audioRole", "dialogue")
    _connect_narrations(root, audio_assets)

    for element in root.iter():
        for attr in _FCPX_TIME_ATTRS:
            value = element.get(attr)
            if value is not None:
                element.set(attr, _fcpx_frames(value, fps, frame_den))
        if element.tag == "marker":
            element.attrib.pop("completed", None)

    for sequence in root.iter("sequence"):
        sequence.set("tcStart", "0s")
        sequence.set("tcFormat", "NDF")
        sequence.set("audioLayout", "stereo")
        sequence.set("audioRate", "48k")

    if root.find("event") is None and root.find("library") is None:
        event_el = ET.Element("event", {"name": event or "Export"})
        for child in list(root):
            if child.tag != "resources":
                root.remove(child)
                event_el.append(child)
        root.append(event_el)
    return _xml_text(root, "fcpxml")


def _connect_narrations(root: ET.Element, audio_assets: set[str | None]) -> None:
    """Make each narration a connected ``asset-clip`` (lane -1), as Final Cut writes them.

    The adapter writes ``<clip lane="-1"><gap><audio lane="-1"/></gap></clip>``: a compound of
    a gap with the sound hanging off it, which editors show as a nested clip.
    """
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag != "clip" or child.get("lane") is None:
                continue
            audio = child.find("./gap/audio")
            if audio is None or audio.get("ref") not in audio_assets:
                continue
            connected = ET.Element(
                "asset-clip",
                {
                    "name": child.get("name", ""),
                    "ref": audio.get("ref", ""),
                    "lane": child.get("lane", "-1"),
                    "offset": child.get("offset", "0s"),
                    "duration": child.get("duration", "0s"),
                    "audioRole": "dialogue",
                },
            )
            if child.get("start"):
                connected.set("start", child.get("start", "0s"))
            parent.insert(list(parent).index(child), connected)
            parent.remove(child)


def _fcpx_frames(value: str, fps: int, frame_den: int) -> str:
    seconds = _fcpx_seconds(value)
    frames = round(seconds * fps)
    if frames == 0:
        return "0s"
    return f"{frames * 100}/{frame_den}s"


def _fcpx_seconds(value: str) -> Fraction:
    body = value.strip().removesuffix("s")
    if not body:
        return Fraction(0)
    if "/" in body:
        num, den = body.split("/", 1)
        return Fraction(int(num), int(den))
    return Fraction(body)


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

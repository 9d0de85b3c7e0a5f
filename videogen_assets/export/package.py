"""The NLE export package: sequential files, metadata, subtitles, timelines and a zip.

``write_export`` builds ``exports/<project>/`` (or ``<dir>/<project>/``) from a
:class:`~videogen_domain.models.ProjectView`::

    audio/001_intro_narration.wav   images/001_intro_keyframe.png   videos/001_intro_clip.mp4
    metadata.json                   subtitles.srt / subtitles.vtt   rough_cut.mp4   chapters.txt
    timeline.fcpxml  timeline.xml  timeline.edl  timeline_narration.edl  timeline.otio

Keyframes, clips, subtitles and the rough cut are hard-linked from the studio (copied when the
package is on another device), never moved. Narrations are delivered as editors expect them:
16-bit PCM at 48 kHz, padded with silence to a whole number of frames (at least the sentence's
length on the timeline), so every timeline's narration length is exact.

The package is built in a hidden sibling folder (``.<name>.tmp-XXXX``), reusing unchanged files
of the previous package by hard link, then swapped in with renames: ``dest`` is always either the
previous complete package or the new one. Only the studio's own files are replaced: the files it
wrote are listed in ``metadata.json`` (``package_files``), and every other file in the folder (the
creator's edit projects, notes, music, in any sub-folder) is carried into the new package by hard
link, and anything that appears during the swap is moved over. A crash is cleaned up by the next
export (or :func:`recover_export`): stale temporary folders go, and a backup is restored when
``dest`` is missing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from videogen_assets.export.timelines import (
    TIMELINE_FILES,
    TimelineEntry,
    timecode,
    write_timelines,
)
from videogen_domain.chapters import CHAPTERS_FILE
from videogen_domain.models import ProjectItem, ProjectView
from videogen_resources import audio
from videogen_resources.errors import ServiceError
from videogen_resources.media import AudioStreamInfo, MediaInfo, VideoStreamInfo, probe

MediaKind = Literal["narration", "keyframe", "clip"]
MEDIA_FOLDERS: dict[MediaKind, tuple[str, str]] = {
    "narration": ("audio", ".wav"),
    "keyframe": ("images", ".png"),
    "clip": ("videos", ".mp4"),
}
"""Each exported per-sentence asset's package folder and suffix: the package's layout (its
metadata.schema.json), the same as the ``export`` folder and output file of the asset's spec
(tests/test_export_imports.py checks they agree). Written out here rather than read from the
specs: the specs import the graph and Dagster, which the export does not need."""
MEDIA_KINDS: tuple[MediaKind, ...] = tuple(MEDIA_FOLDERS)
METADATA_FILE = "metadata.json"
SCHEMA_VERSION = 1
SUBTITLE_SUFFIXES = (".srt", ".vtt")
# Already-compressed media are stored in the zip as they are; PCM WAV deflates by a few per cent
# at a large CPU cost, so it is stored too. Everything else (text) is deflated.
STORED_SUFFIXES = frozenset(
    {".mp4", ".mov", ".m4a", ".mp3", ".png", ".jpg", ".jpeg", ".webp", ".wav", ".zip"}
)
_CHUNK = 1 << 20
PACKAGE_AUDIO_RATE = 48_000
"""Sample rate of the narrations in the package (what editors expect)."""
FILE_MODE = 0o644
"""Mode of every file in the zip: readable by a colleague's account."""
FOLDER_MODE = 0o755
"""Mode of the package folder and its sub-folders."""


class ExportError(RuntimeError):
    """An export that cannot be written as asked."""


class MissingMediaError(ExportError):
    """A sentence's narration, keyframe or clip is not made yet (or its file is gone)."""

    def __init__(self, sentence_id: str, kind: str, path: str | None) -> None:
        self.sentence_id = sentence_id
        self.kind = kind
        self.path = path
        where = f" (expected at {path})" if path else ""
        super().__init__(
            f"sentence {sentence_id}: {kind} is missing{where}; make it first or export with "
            "allow_partial=True"
        )


@dataclass(frozen=True)
class LeftOut:
    """A file an export with ``allow_partial=True`` could not include."""

    sentence_id: str
    kind: str
    reason: str


@dataclass
class ExportReport:
    """What an export did: the files it wrote or reused, and what it left out."""

    dest: Path
    written: list[str] = field(default_factory=list)  # package-relative paths, new or changed
    reused: list[str] = field(default_factory=list)  # carried over from the previous package
    left_out: list[LeftOut] = field(default_factory=list)
    timelines: dict[str, Path] = field(default_factory=dict)
    metadata: Path | None = None
    zip_path: Path | None = None
    sentences: int = 0
    frames: int = 0
    fps: int = 30
    copied: int = 0  # media copied because a hard link was impossible (another device)
    kept: list[str] = field(default_factory=list)  # the creator's files, carried over untouched
    sources: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime)

    @property
    def files(self) -> list[str]:
        """Every file in the package, package-relative, sorted."""
        return sorted([*self.written, *self.reused])

    @property
    def duration_s(self) -> float:
        """Length of the timeline in seconds."""
        return self.frames / self.fps if self.fps else 0.0

    def summary(self) -> dict[str, Any]:
        """Figures worth showing as materialization metadata."""
        return {
            "dest": str(self.dest),
            "sentences": self.sentences,
            "files": len(self.files),
            "written": len(self.written),
            "reused": len(self.reused),
            "copied": self.copied,
            "kept": len(self.kept),
            "left_out": [f"{x.sentence_id}: {x.kind} ({x.reason})" for x in self.left_out],
            "duration_s": round(self.duration_s, 3),
            "zip": str(self.zip_path) if self.zip_path else None,
        }


# ---------------------------------------------------------------- public API


def package_file_names(view: ProjectView) -> dict[str, dict[MediaKind, str]]:
    """Sentence id -> media kind -> package-relative path, numbered in video order."""
    items = sorted(view.items, key=lambda it: it.index)
    width = 3 if len(items) <= 999 else 4
    names: dict[str, dict[MediaKind, str]] = {}
    for number, item in enumerate(items, start=1):
        stem = f"{number:0{width}d}_{_slug(item.section_slug or item.section)}"
        names[item.sentence_id] = {
            kind: f"{folder}/{stem}_{kind}{suffix}"
            for kind, (folder, suffix) in MEDIA_FOLDERS.items()
        }
    return names


def write_export(
    view: ProjectView,
    dest: Path,
    *,
    subtitles: Mapping[str, Path] | None = None,
    rough_cut: Path | None = None,
    chapters: Path | None = None,
    zip_path: Path | None = None,
    allow_partial: bool = False,
    loudness_lufs: Mapping[str, float] | None = None,
    on_file: Callable[[str], None] | None = None,
    media_root: str | None = None,
    before_swap: Callable[[], None] | None = None,
) -> ExportReport:
    """Write the export package for ``view`` at ``dest``, atomically and incrementally.

    Args:
        view: The project at this moment; its items' files are the studio's own.
        dest: The package folder, ``exports/<project>/`` (or wherever the editor will read it).
        subtitles: Label -> SRT/WebVTT file; ``{"srt": a.srt, "vtt": a.vtt}`` gives
            ``subtitles.srt``/``subtitles.vtt``, another label ``subtitles.<label>.<ext>``.
        rough_cut: The rough cut MP4, included as ``rough_cut.mp4``.
        chapters: The rough cut's chapters in YouTube's description format, included as
            ``chapters.txt``.
        zip_path: Also write a zip of the package here (streamed, replaced atomically).
        allow_partial: Export what exists and list the rest in ``report.left_out`` instead of
            raising :class:`MissingMediaError`.
        loudness_lufs: Sentence id -> narration loudness measured when it was made; a narration
            without one is measured here (or its value reused from the previous package).
        on_file: Called with each package-relative path once it is in place (progress).
        media_root: The URL (or folder) the timelines' media references point under; by
            default ``dest`` itself, as an absolute ``file://`` URL.
        before_swap: Called when the new package is complete, just before it replaces the old
            one; raising aborts the export and leaves the previous package in place (the CLI
            checks here again that no run started changing the project's media).

    Every studio file the package was built from is checked again before the swap: one that
    changed while the package was being built (a run writing it) aborts the export with an
    :class:`ExportError` naming it, so a package never mixes old and new media.

    Returns:
        The report: files written vs reused, left-out files, timelines, the zip.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    root = media_root if media_root is not None else dest.resolve().as_uri()
    with _export_lock(dest):
        recover_export(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            os.chmod(tmp, FOLDER_MODE)
            report = _build(
                view,
                dest,
                tmp,
                subtitles or {},
                rough_cut,
                chapters,
                allow_partial,
                loudness_lufs or {},
                on_file,
                root,
            )
            _check_unchanged(report.sources)
            if before_swap is not None:
                before_swap()
            studio = _studio_files(dest) | set(report.files)
            kept = _carry_creator_files(dest, tmp, studio)
            _fsync_tree(tmp)
            _swap(tmp, dest, keep=lambda rel: rel not in studio)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report.dest = dest
    report.kept = kept
    report.metadata = dest / METADATA_FILE
    report.timelines = {kind: dest / name for kind, name in TIMELINE_FILES.items()}
    if zip_path is not None:
        report.zip_path = write_zip(dest, Path(zip_path), only=report.files)
    return report


def recover_export(dest: Path) -> list[Path]:
    """Clean up after an interrupted export of ``dest``; returns the paths removed or restored.

    A missing ``dest`` with a backup beside it (a crash between the two renames of the swap)
    gets the backup back; stale temporary folders and leftover backups are deleted.
    """
    dest = Path(dest)
    touched: list[Path] = []
    parent = dest.parent
    if not parent.is_dir():
        return touched
    backups = sorted(parent.glob(f".{dest.name}.bak-*"), key=lambda p: p.stat().st_mtime)
    if not dest.exists() and backups:
        newest = backups.pop()
        os.rename(newest, dest)
        touched.append(dest)
    for stale in [*backups, *parent.glob(f".{dest.name}.tmp-*")]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        touched.append(stale)
    return touched


def write_zip(package: Path, zip_path: Path, *, only: Iterable[str] | None = None) -> Path:
    """Zip ``package`` to ``zip_path`` under a ``<package name>/`` folder, streaming each file.

    ``only``: the package-relative files to include (the studio's own files; by default the
    ``package_files`` of its metadata.json, else every file). Media are stored, text is
    deflated; files are copied in 1 MiB chunks, so memory does not grow with the package. Every
    entry is mode 0644 (folders 0755), whoever wrote it. The zip is written under a temporary
    name and renamed into place.
    """
    package = Path(package)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    if only is None:
        listed = _listed_files(package)
        only = listed if listed else None
    wanted = None if only is None else set(only)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for path in sorted(p for p in package.rglob("*") if p.is_file()):
                rel = path.relative_to(package).as_posix()
                if wanted is not None and rel not in wanted:
                    continue
                info = zipfile.ZipInfo.from_file(path, f"{package.name}/{rel}")
                info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
                stored = path.suffix.lower() in STORED_SUFFIXES
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                with path.open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        os.chmod(tmp, FILE_MODE)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return zip_path


def metadata_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that ``metadata.json`` follows."""
    text = (
        resources.files("videogen_assets.export")
        .joinpath("metadata.schema.json")
        .read_text("utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_metadata(data: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``data`` is not valid export metadata."""
    import jsonschema  # deferred: a development dependency

    jsonschema.Draft202012Validator(metadata_schema()).validate(data)


def read_metadata(dest: Path) -> dict[str, Any]:
    """The package's ``metadata.json``."""
    data: dict[str, Any] = json.loads((Path(dest) / METADATA_FILE).read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------- building


@dataclass
class _Placed:
    rel: str
    record: dict[str, Any]


class _Builder:
    """Places files into the temporary package, reusing the previous package's files."""

    def __init__(
        self, tmp: Path, dest: Path, report: ExportReport, on_file: Callable[[str], None] | None
    ) -> None:
        self.tmp = tmp
        self.dest = dest
        self.report = report
        self.on_file = on_file
        self.previous: dict[str, dict[str, Any]] = {}  # source key -> previous file record
        self.previous_by_hash: dict[str, dict[str, Any]] = {}
        self.previous_loudness: dict[str, float] = {}  # sentence id -> narration loudness
        self.streams: dict[str, MediaInfo] = {}  # sha256 -> what the file holds (probed once)
        prev_meta = dest / METADATA_FILE
        if prev_meta.is_file():
            try:
                data = json.loads(prev_meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            for record in data.get("files", []) if isinstance(data, dict) else []:
                if not isinstance(record, dict) or "path" not in record:
                    continue
                if record.get("source_key"):
                    self.previous[str(record["source_key"])] = record
                if record.get("sha256") and not record.get("conversion"):
                    self.previous_by_hash[str(record["sha256"])] = record
                streams = record.get("streams")
                if record.get("sha256") and isinstance(streams, dict):
                    with contextlib.suppress(TypeError, ValueError, KeyError):
                        info = streams_info(Path(str(record["path"])), streams)
                        self.streams[str(record["sha256"])] = info
            for sentence in data.get("sentences", []) if isinstance(data, dict) else []:
                if isinstance(sentence, dict) and isinstance(
                    sentence.get("loudness_lufs"), (int, float)
                ):
                    self.previous_loudness[str(sentence.get("sentence_id"))] = float(
                        sentence["loudness_lufs"]
                    )

    def place(self, source: Path, rel: str, kind: str, source_key: str) -> _Placed:
        st = source.stat()
        self.report.sources[str(source)] = (st.st_size, st.st_mtime_ns)
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "path": rel,
            "kind": kind,
            "size": st.st_size,
            "source_key": source_key,
            "source_size": st.st_size,
            "source_mtime_ns": st.st_mtime_ns,
        }
        prev = self.previous.get(source_key)
        reuse: Path | None = None
        if (
            prev is not None
            and prev.get("source_size") == st.st_size
            and prev.get("source_mtime_ns") == st.st_mtime_ns
            and prev.get("sha256")
        ):
            reuse = self._previous_file(prev, st.st_size)
            if reuse is not None:
                record["sha256"] = prev["sha256"]
        if reuse is None:
            record["sha256"] = _sha256(source)
            same = self.previous_by_hash.get(record["sha256"])
            if same is not None:
                reuse = self._previous_file(same, st.st_size)
        if reuse is not None:
            _link_or_copy(reuse, target)
            self.report.reused.append(rel)
        else:
            if not _link_or_copy(source, target):
                self.report.copied += 1
            self.report.written.append(rel)
        if self.on_file is not None:
            self.on_file(rel)
        return _Placed(rel, record)

    def place_narration(
        self, source: Path, rel: str, source_key: str, frames: int | None, fps: int
    ) -> tuple[_Placed, bool]:
        """Deliver a narration as 48 kHz 16-bit PCM padded to whole frames; True if reused."""
        st = source.stat()
        self.report.sources[str(source)] = (st.st_size, st.st_mtime_ns)
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        span = f"{frames} frames" if frames else "a whole frame"
        conversion = f"pcm_s16le {PACKAGE_AUDIO_RATE} Hz, padded to {span} at {fps} fps"
        record: dict[str, Any] = {
            "path": rel,
            "kind": "narration",
            "size": 0,
            "sha256": "",
            "source_key": source_key,
            "source_size": st.st_size,
            "source_mtime_ns": st.st_mtime_ns,
            "conversion": conversion,
        }
        prev = self.previous.get(source_key)
        if (
            prev is not None
            and prev.get("source_size") == st.st_size
            and prev.get("source_mtime_ns") == st.st_mtime_ns
            and prev.get("conversion") == conversion
            and prev.get("sha256")
            and isinstance(prev.get("size"), int)
        ):
            reuse = self._previous_file(prev, prev["size"])
            if reuse is not None:
                _link_or_copy(reuse, target)
                record["size"], record["sha256"] = prev["size"], prev["sha256"]
                self.report.reused.append(rel)
                if self.on_file is not None:
                    self.on_file(rel)
                return _Placed(rel, record), True
        package_narration(source, target, frames=frames, fps=fps)
        record["size"] = target.stat().st_size
        record["sha256"] = _sha256(target)
        self.report.written.append(rel)
        if self.on_file is not None:
            self.on_file(rel)
        return _Placed(rel, record), False

    def probe(self, placed: _Placed) -> MediaInfo:
        """What a placed clip or narration holds: probed once per content, remembered."""
        sha = str(placed.record.get("sha256", ""))
        info = self.streams.get(sha)
        if info is None:
            info = probe(self.tmp / placed.rel, count="header")
            if sha:
                self.streams[sha] = info
        placed.record["streams"] = streams_record(info)
        return info

    def write_text(self, rel: str, text: str) -> None:
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        self.report.written.append(rel)
        if self.on_file is not None:
            self.on_file(rel)

    def _previous_file(self, record: Mapping[str, Any], size: int) -> Path | None:
        path = self.dest / str(record["path"])
        try:
            return path if path.stat().st_size == size else None
        except OSError:
            return None


def _build(
    view: ProjectView,
    dest: Path,
    tmp: Path,
    subtitles: Mapping[str, Path],
    rough_cut: Path | None,
    chapters: Path | None,
    allow_partial: bool,
    loudness: Mapping[str, float],
    on_file: Callable[[str], None] | None,
    media_root: str,
) -> ExportReport:
    report = ExportReport(dest=dest, fps=view.fps)
    start_frame = timecode_frames(view.start_timecode, view.fps)
    builder = _Builder(tmp, dest, report, on_file)
    names = package_file_names(view)
    items = sorted(view.items, key=lambda it: it.index)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    sentences: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    entries: list[TimelineEntry] = []
    media: dict[str, MediaInfo] = {}
    sections: list[dict[str, Any]] = []
    measured: dict[str, float | None] = {}
    frame = 0
    for number, item in enumerate(items, start=1):
        frames = _frames(item, view.fps)
        if frames is None:
            if not allow_partial:
                raise ExportError(
                    f"sentence {item.sentence_id}: length unknown (no clip_frames, no "
                    "narration_ms); make its clip first or export with allow_partial=True"
                )
            report.left_out.append(LeftOut(item.sentence_id, "timeline", "length unknown"))
        placed: dict[str, str | None] = {}
        for kind in MEDIA_KINDS:
            source = getattr(item, kind)
            rel = names[item.sentence_id][kind]
            if not source or not Path(source).is_file():
                if not allow_partial:
                    raise MissingMediaError(item.sentence_id, kind, source)
                reason = "not made yet" if not source else "file not found"
                report.left_out.append(LeftOut(item.sentence_id, kind, reason))
                placed[kind] = None
                continue
            key = f"{item.sentence_id}:{kind}"
            if kind == "narration":
                done, reused = builder.place_narration(Path(source), rel, key, frames, view.fps)
                sid = item.sentence_id
                if sid in loudness:
                    measured[sid] = loudness[sid]
                elif reused and sid in builder.previous_loudness:
                    measured[sid] = builder.previous_loudness[sid]
                else:
                    measured[sid] = measure_loudness(tmp / done.rel)
            else:
                done = builder.place(Path(source), rel, kind, key)
            if kind in ("narration", "clip"):
                media[done.rel] = builder.probe(done)
            files.append(done.record)
            placed[kind] = done.rel

        first_in_section = not sections or sections[-1]["title"] != item.section
        if first_in_section:
            sections.append(
                {
                    "index": len(sections) + 1,
                    "title": item.section,
                    "slug": _slug(item.section_slug or item.section),
                    "first_sentence": number,
                    "start_frame": frame,
                    "frames": 0,
                    "sentences": 0,
                }
            )
        sections[-1]["sentences"] += 1
        if frames is not None:
            sections[-1]["frames"] += frames
            stem = names[item.sentence_id]["clip"].split("/", 1)[1].removesuffix("_clip.mp4")
            entries.append(
                TimelineEntry(
                    stem=stem,
                    section=item.section,
                    section_start=first_in_section,
                    frames=frames,
                    clip=placed["clip"],
                    narration=placed["narration"],
                    clip_info=media.get(placed["clip"] or ""),
                    narration_info=media.get(placed["narration"] or ""),
                    number=number,
                )
            )
        sentences.append(
            _sentence_record(
                item, number, frame, frames, view.fps, placed, measured.get(item.sentence_id)
            )
        )
        frame += frames or 0
    report.sentences = len(items)
    report.frames = frame

    subtitle_files: list[str] = []
    for label, path in sorted(subtitles.items()):
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SUBTITLE_SUFFIXES:
            raise ExportError(f"subtitles {path.name}: expected an .srt or .vtt file")
        if not path.is_file():
            raise ExportError(f"subtitles {label}: file not found: {path}")
        name = (
            f"subtitles{suffix}"
            if label.lower() in ("srt", "vtt", "")
            else (f"subtitles.{_slug(label)}{suffix}")
        )
        done = builder.place(path, name, "subtitles", f"subtitles:{name}")
        files.append(done.record)
        subtitle_files.append(name)
    rough_rel: str | None = None
    if rough_cut is not None:
        if not Path(rough_cut).is_file():
            raise ExportError(f"rough cut not found: {rough_cut}")
        done = builder.place(Path(rough_cut), "rough_cut.mp4", "rough_cut", "rough_cut")
        files.append(done.record)
        rough_rel = done.rel
    chapters_rel: str | None = None
    if chapters is not None:
        if not Path(chapters).is_file():
            raise ExportError(f"chapters not found: {chapters}")
        done = builder.place(Path(chapters), CHAPTERS_FILE, "chapters", "chapters")
        files.append(done.record)
        chapters_rel = done.rel

    if not entries:
        raise ExportError(
            "nothing to export yet: no sentence has its clip and narration (render the project)"
        )
    written = write_timelines(
        entries,
        tmp,
        name=view.title or view.name,
        fps=view.fps,
        width=view.width,
        height=view.height,
        media_root=media_root,
        start_frame=start_frame,
    )
    for path in written.values():
        report.written.append(path.name)
        if on_file is not None:
            on_file(path.name)

    metadata: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "exported_at": now,
        "project": {
            "name": view.name,
            "title": view.title,
            "topic": view.topic,
            "style": view.style,
            "fps": view.fps,
            "width": view.width,
            "height": view.height,
            "frames": frame,
            "duration_s": round(frame / view.fps, 6),
            "start_timecode": timecode(start_frame, view.fps),
        },
        "sections": sections,
        "sentences": sentences,
        "files": files,
        "subtitles": subtitle_files,
        "rough_cut": rough_rel,
        "chapters": chapters_rel,
        "package_files": sorted({*report.files, METADATA_FILE}),
        "timelines": dict(TIMELINE_FILES),
        "left_out": [
            {"sentence_id": x.sentence_id, "kind": x.kind, "reason": x.reason}
            for x in report.left_out
        ],
    }
    builder.write_text(METADATA_FILE, _json_text(metadata))
    return report


def _json_text(data: Mapping[str, Any]) -> str:
    """``data`` as JSON with one top-level key, and one list item, per line.

    Readable and diffable like indented JSON, but written by the C encoder (indented output is
    written in pure Python, several times slower for a long project).
    """

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            body = "[\n    " + ",\n    ".join(dump(x) for x in value) + "\n  ]"
        else:
            body = dump(value)
        parts.append(f"  {dump(key)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _sentence_record(
    item: ProjectItem,
    number: int,
    start_frame: int,
    frames: int | None,
    fps: int,
    placed: Mapping[str, str | None],
    loudness_lufs: float | None,
) -> dict[str, Any]:
    shot = item.shot
    return {
        "number": number,
        "index": item.index,
        "sentence_id": item.sentence_id,
        "section": item.section,
        "section_slug": item.section_slug,
        "text": item.text,
        "start_frame": start_frame,
        "frames": frames,
        "duration_s": round(frames / fps, 6) if frames is not None else None,
        "narration_ms": item.narration_ms,
        "loudness_lufs": loudness_lufs,
        "files": {kind: placed.get(kind) for kind in MEDIA_KINDS},
        "shot": None
        if shot is None
        else {
            "image_prompt": shot.image_prompt,
            "video_prompt": shot.video_prompt,
            "negative_prompt": shot.negative_prompt,
            "camera_movement": shot.camera_movement,
            "motion_strength": shot.motion_strength,
            "characters": list(shot.characters),
            "key_phrase": shot.key_phrase,
            "seed": shot.seed,
            "source": shot.source,
        },
        "workflow_versions": dict(item.workflow_versions),
        "status": dict(item.status),
        "updated_at": item.updated_at,
    }


def _frames(item: ProjectItem, fps: int) -> int | None:
    if item.clip_frames is not None and item.clip_frames > 0:
        return item.clip_frames
    if item.narration_ms is not None and item.narration_ms > 0:
        return max(1, round(item.narration_ms * fps / 1000))
    return None


# ---------------------------------------------------------------- files


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:40].strip("-") or "section"


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _link_or_copy(source: Path, target: Path) -> bool:
    """Hard-link ``source`` at ``target``; copy when linking is impossible. True if linked."""
    try:
        os.link(source, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    shutil.copy2(source, target)
    return False


def _fsync_tree(root: Path) -> None:
    """Flush the files this export wrote itself (text) and every folder of the package."""
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".xml", ".fcpxml", ".edl", ".otio"):
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap(tmp: Path, dest: Path, *, keep: Callable[[str], bool] | None = None) -> None:
    """Put the finished package ``tmp`` at ``dest``: old -> backup, new -> dest, drop backup.

    Files of the old package for which ``keep(rel)`` is true and that are not in the new one
    (a creator's file saved while the package was being built) are moved over before the
    backup is dropped.
    """
    backup: Path | None = None
    if dest.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{dest.name}.bak-", dir=dest.parent))
        backup.rmdir()
        os.rename(dest, backup)
    os.rename(tmp, dest)
    _fsync_dir(dest.parent)
    if backup is not None:
        if keep is not None:
            for rel in _walk_files(backup):
                if keep(rel) and not os.path.lexists(dest / rel):
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.rename(backup / rel, dest / rel)
        shutil.rmtree(backup, ignore_errors=True)


def _check_unchanged(sources: Mapping[str, tuple[int, int]]) -> None:
    """Raise :class:`ExportError` if a studio file changed since the export read it."""
    for path, (size, mtime_ns) in sources.items():
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            raise ExportError(
                f"{path} changed while the package was being built (a run is making this "
                "project's media); the previous package is left as it was: export again when "
                "the run has finished"
            )


def _walk_files(root: Path) -> Iterator[str]:
    """Package-relative paths of every file and symlink under ``root`` (links not followed)."""
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        for name in [*names, *(d for d in dirs if (base / d).is_symlink())]:
            yield (base / name).relative_to(root).as_posix()


def _listed_files(package: Path) -> set[str]:
    """The files a package's metadata.json says the studio wrote (empty if unreadable)."""
    try:
        data = json.loads((Path(package) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict):
        return set()
    listed = {str(x) for x in data.get("package_files", []) if isinstance(x, str)}
    listed |= {str(r["path"]) for r in data.get("files", []) if isinstance(r, dict) and "path" in r}
    if listed:
        listed |= {*TIMELINE_FILES.values(), METADATA_FILE}
    return listed


def _studio_files(dest: Path) -> set[str]:
    """What the studio wrote into ``dest`` before: its manifest, and its fixed file names."""
    return _listed_files(dest) | {*TIMELINE_FILES.values(), METADATA_FILE}


def _carry_creator_files(dest: Path, tmp: Path, studio: set[str]) -> list[str]:
    """Hard-link every file of ``dest`` the studio did not write into the new package ``tmp``.

    Sub-folders (also empty ones) and symlinks are kept as they are. Returns the kept paths.
    """
    kept: list[str] = []
    if not dest.is_dir():
        return kept
    for folder, dirs, names in os.walk(dest):
        base = Path(folder)
        rel_dir = base.relative_to(dest)
        made = tmp / rel_dir
        if not made.exists():
            made.mkdir(parents=True)
            shutil.copymode(base, made)
        for name in [*names, *(d for d in dirs if (base / d).is_symlink())]:
            rel = (rel_dir / name).as_posix()
            if rel in studio or os.path.lexists(tmp / rel):
                continue
            source = base / name
            if source.is_symlink():
                os.symlink(os.readlink(source), tmp / rel)
            else:
                _link_or_copy(source, tmp / rel)
            kept.append(rel)
    return sorted(kept)


def timecode_frames(tc: str, fps: int) -> int:
    """Frames of non-drop timecode ``HH:MM:SS:FF`` at ``fps``."""
    try:
        hh, mm, ss, ff = (int(x) for x in re.split(r"[:;]", tc.strip()))
    except ValueError as exc:
        raise ExportError(f"start timecode {tc!r}: expected HH:MM:SS:FF") from exc
    if not (0 <= mm < 60 and 0 <= ss < 60 and 0 <= ff < fps and hh >= 0):
        raise ExportError(f"start timecode {tc!r}: not a timecode at {fps} fps")
    return ((hh * 60 + mm) * 60 + ss) * fps + ff


def streams_record(info: MediaInfo) -> dict[str, Any]:
    """The ``streams`` record of a file in the package metadata: what the timelines read."""
    video, sound = info.video, info.audio
    return {
        "has_video": video is not None,
        "has_audio": sound is not None,
        "width": video.width if video else None,
        "height": video.height if video else None,
        "audio_rate": sound.sample_rate if sound else None,
        "audio_channels": sound.channels if sound else None,
        "audio_depth": sound.depth if sound else None,
        "seconds": info.container_duration_s,
        "audio_samples": sound.samples if sound else None,
    }


def streams_info(path: Path, record: Mapping[str, Any]) -> MediaInfo:
    """The `MediaInfo` of a ``streams`` record (`streams_record`'s inverse).

    Raises ValueError, TypeError or KeyError for a record that does not describe a stream it
    claims.
    """
    video = sound = None
    if record.get("has_video"):
        video = VideoStreamInfo(width=record["width"], height=record["height"])
    if record.get("has_audio"):
        samples, rate = record.get("audio_samples"), record["audio_rate"]
        sound = AudioStreamInfo(
            sample_rate=rate,
            channels=record["audio_channels"],
            samples=samples,
            duration_s=samples / rate if samples is not None and rate else None,
            depth=record.get("audio_depth"),
        )
    return MediaInfo(
        path=path,
        container_duration_s=record.get("seconds"),
        video=video,
        audio=sound,
        counted_by="header",
    )


def package_narration(source: Path, target: Path, *, frames: int | None, fps: int) -> int:
    """Write ``source`` as 16-bit PCM WAV at 48 kHz, padded with silence to whole frames.

    The length is at least ``frames`` (the sentence's length on the timeline) and always a
    whole number of frames, so every timeline states it exactly. 16-bit audio at 48 kHz is
    copied bit for bit; anything else is decoded and resampled (`audio.resample`). Mono stays
    mono, anything with more channels becomes stereo. Returns the number of samples written.
    """
    rate = PACKAGE_AUDIO_RATE
    stored = audio.read_pcm16(source)
    if stored is not None and stored[1] == rate and stored[0].shape[1] <= 2:
        samples = stored[0]
    else:
        try:
            decoded, source_rate = audio.read_wav(source, channels=None)
            if decoded.shape[1] > 2:
                decoded, source_rate = audio.read_wav(source, channels=2)
        except ServiceError as exc:
            raise ExportError(f"{source.name}: {exc.message}") from exc
        samples = audio.resample(decoded, source_rate, rate)
    padded = audio.pad_to_frames(samples, rate, fps, min_frames=frames or 0)
    audio.write_wav(target, padded, rate, atomic=False)  # in the package's temporary folder
    return int(padded.shape[0])


def measure_loudness(path: Path) -> float | None:
    """Integrated loudness (LUFS, ITU-R BS.1770) of a narration in the package; None if silent."""
    samples, rate = audio.read_wav(path)
    value = audio.loudness_lufs(samples, rate)
    return round(value, 2) if math.isfinite(value) else None


@contextlib.contextmanager
def _export_lock(dest: Path) -> Iterator[None]:
    """One export of ``dest`` at a time (so cleanup never removes a live export's folder)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no advisory locks on this platform
        yield
        return
    lock_path = dest.parent / f".{dest.name}.lock"
    with lock_path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

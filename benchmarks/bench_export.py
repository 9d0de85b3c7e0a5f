"""Benchmark: export a 400-sentence project.

Targets: the package (media, metadata, five timelines) of 400 sentences in <= 2 s; with its zip
<= 30 s; <= 300 MB peak memory.

Makes 400 sentences of small but real media (a 48 kHz WAV and a PNG per sentence, a few real
MP4 clips hard-linked across sentences), then, in a child process whose peak RSS is measured
with ``resource.getrusage``, runs a first export, its zip, a second export with nothing changed
(incremental: everything reused), a third after one sentence changed, and times writing the
five timelines alone. Narration loudness is passed in as the studio does (measured when each
narration was made). Finally validates the FCPXML against the DTD of its declared version (when
xmllint is installed) and reads every timeline back with OpenTimelineIO, checking clip count,
order, durations and section markers.

    python benchmarks/bench_export.py [--sentences 400] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from videogen_assets.export import (
    TIMELINE_FILES,
    TimelineEntry,
    read_metadata,
    read_timeline,
    resolve_reference,
    write_export,
    write_timelines,
    write_zip,
)
from videogen_domain.models import ProjectItem, ProjectView, Shot
from videogen_resources import audio
from videogen_resources.media import probe

FPS = 30
CLIP_FRAMES = (45, 60, 75, 90)
SENTENCES_PER_SECTION = 20


def make_project(root: Path, count: int) -> ProjectView:
    """``count`` sentences with real narration WAVs, keyframe PNGs and (hard-linked) MP4 clips."""
    studio = root / "studio"
    studio.mkdir(parents=True, exist_ok=True)
    clips = []
    for frames in CLIP_FRAMES:
        clip = studio / f"source_{frames}.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-v", "error", "-y", "-f", "lavfi",
                "-i", f"testsrc2=size=320x180:rate={FPS}",
                "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", "yuv420p", str(clip),
            ],
            check=True,
        )  # fmt: skip
        clips.append(clip)
    items = []
    for n in range(1, count + 1):
        sid = f"bench.s{n:04d}"
        frames = CLIP_FRAMES[n % len(CLIP_FRAMES)]
        ms = frames * 1000 // FPS
        samples = 48000 * ms // 1000
        tone = np.sin(2 * np.pi * (180 + n) * np.arange(samples) / 48000)
        audio.write_wav(studio / f"{sid}.wav", (0.2 * tone * 32767).astype("<i2"), 48000)
        Image.new("RGB", (320, 180), (n % 256, (n * 7) % 256, 120)).save(studio / f"{sid}.png")
        os.link(clips[n % len(clips)], studio / f"{sid}.mp4")
        section = f"Part {(n - 1) // SENTENCES_PER_SECTION + 1}"
        items.append(
            ProjectItem(
                index=n,
                sentence_id=sid,
                section=section,
                section_slug=section.lower().replace(" ", "-"),
                text=f"Sentence number {n}.",
                narration=str(studio / f"{sid}.wav"),
                keyframe=str(studio / f"{sid}.png"),
                clip=str(studio / f"{sid}.mp4"),
                narration_ms=ms,
                clip_frames=frames,
                shot=Shot(image_prompt=f"image {n}", video_prompt=f"video {n}", seed=n),
                workflow_versions={"keyframe": "flux-2-v1", "clip": "wan-2.2-v1"},
            )
        )
    return ProjectView(
        name="bench", title="Bench", topic="bench", style="documentary", fps=FPS, items=items
    )


def timeline_entries(dest: Path, view: ProjectView) -> list[TimelineEntry]:
    """The timeline entries of an exported package, from its metadata.json."""
    meta = read_metadata(dest)
    entries = []
    for sentence, section in zip(meta["sentences"], _section_starts(meta), strict=True):
        files = sentence["files"]
        entries.append(
            TimelineEntry(
                stem=Path(files["clip"]).name.removesuffix("_clip.mp4"),
                section=sentence["section"],
                section_start=section,
                frames=sentence["frames"],
                clip=files["clip"],
                narration=files["narration"],
                clip_info=probe(dest / files["clip"], count="header"),
                narration_info=probe(dest / files["narration"], count="header"),
                number=sentence["number"],
            )
        )
    return entries


def _section_starts(meta: dict[str, object]) -> list[bool]:
    firsts = {s["first_sentence"] for s in meta["sections"]}  # type: ignore[attr-defined]
    return [s["number"] in firsts for s in meta["sentences"]]  # type: ignore[attr-defined]


def child(view_file: Path, dest: Path) -> None:
    """Run the three exports; print their figures and the peak RSS as JSON."""
    view = ProjectView.model_validate_json(view_file.read_text(encoding="utf-8"))
    figures: dict[str, object] = {}
    loudness = {item.sentence_id: -16.0 - item.index % 5 for item in view.items}
    started = time.perf_counter()
    report = write_export(view, dest, loudness_lufs=loudness)
    figures["first_s"] = time.perf_counter() - started
    figures["first_written"] = len(report.written)
    started = time.perf_counter()
    write_zip(dest, dest.parent / f"{dest.name}.zip")
    figures["zip_s"] = time.perf_counter() - started

    started = time.perf_counter()
    report = write_export(view, dest, loudness_lufs=loudness)
    figures["unchanged_s"] = time.perf_counter() - started
    figures["unchanged_reused"] = len(report.reused)

    wav = Path(view.items[7].narration or "")
    stored = audio.read_pcm16(wav)
    assert stored is not None
    audio.write_wav(wav, stored[0][::-1], stored[1])  # the same length, other content
    started = time.perf_counter()
    report = write_export(view, dest, loudness_lufs=loudness)
    figures["one_changed_s"] = time.perf_counter() - started
    figures["one_changed_media_written"] = [w for w in report.written if "/" in w]

    entries = timeline_entries(dest, view)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        write_timelines(
            entries,
            Path(scratch),
            name=view.title,
            fps=view.fps,
            width=view.width,
            height=view.height,
            media_root=dest.resolve().as_uri(),
        )
        figures["timelines_s"] = time.perf_counter() - started
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def round_trip(view: ProjectView, dest: Path) -> dict[str, str]:
    """Read every timeline back; compare with the project. Returns kind -> verdict."""
    frames = [it.clip_frames or 0 for it in view.items]
    section_starts, seen, t = [], set(), 0
    for it, f in zip(view.items, frames, strict=True):
        if it.section not in seen:
            seen.add(it.section)
            section_starts.append(t)
        t += f
    verdicts = {}
    for kind, name in TIMELINE_FILES.items():
        started = time.perf_counter()
        timeline = read_timeline(dest / name, fps=FPS)
        problems = []
        for track in timeline.tracks:
            clips = list(track.find_clips())
            got = [int(c.duration().rescaled_to(FPS).value) for c in clips]
            if got != frames:
                problems.append(f"{track.kind}: {len(clips)} clips, durations differ")
            missing = [
                c.name
                for c in clips
                if not resolve_reference(dest, c.media_reference.target_url).is_file()
            ]
            if missing:
                problems.append(f"{len(missing)} unresolved references")
        markers = sorted(
            int(
                (
                    item.range_in_parent().start_time
                    + m.marked_range.start_time
                    - item.trimmed_range().start_time
                ).to_frames()
            )
            for track in timeline.tracks
            for item in track
            for m in item.markers
        )
        if kind != "edl_narration" and markers != section_starts:
            problems.append(f"{len(markers)} markers, expected {len(section_starts)}")
        tracks = ",".join(f"{t.kind}:{len(list(t.find_clips()))}" for t in timeline.tracks)
        verdict = "ok" if not problems else "; ".join(problems)
        verdicts[kind] = (
            f"{verdict} ({tracks}; {len(markers)} markers; "
            f"read in {time.perf_counter() - started:.2f} s)"
        )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        started = time.perf_counter()
        view = make_project(root, args.sentences)
        print(f"made {args.sentences} sentences of media in {time.perf_counter() - started:.1f} s")
        view_file = root / "view.json"
        view_file.write_text(view.model_dump_json(), encoding="utf-8")
        dest = root / "exports" / view.name
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(view_file), str(dest)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        total = time.perf_counter() - started
        figures = json.loads(out.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(f"package: {len(list(dest.rglob('*.*')))} files, {size / 2**20:.1f} MiB")
        print(
            f"first export: {figures['first_s']:.2f} s "
            f"({figures['first_written']} files written)   target <= 2 s"
        )
        print(
            f"zip of the package: {figures['zip_s']:.2f} s   "
            f"(export + zip target <= 30 s: {figures['first_s'] + figures['zip_s']:.2f} s)"
        )
        print(f"the five timelines alone: {figures['timelines_s']:.2f} s")
        print(
            f"re-export, nothing changed: {figures['unchanged_s']:.2f} s "
            f"({figures['unchanged_reused']} files reused)"
        )
        print(
            f"re-export, one narration changed: {figures['one_changed_s']:.2f} s "
            f"(media rewritten: {figures['one_changed_media_written']})"
        )
        print(f"child process, three exports: {total:.2f} s")
        print(f"peak memory (RSS): {figures['peak_rss_mb']:.0f} MB   target <= 300 MB")
        xmllint = shutil.which("xmllint")
        dtd = Path(__file__).parent.parent / "tests" / "dtd" / "fcpxml-1.8.dtd"
        if xmllint and dtd.is_file():
            proc = subprocess.run(
                [xmllint, "--noout", "--dtdvalid", str(dtd), str(dest / "timeline.fcpxml")],
                capture_output=True,
                text=True,
                check=False,
            )
            verdict = "valid" if proc.returncode == 0 else proc.stderr.strip()[:300]
            print(f"timeline.fcpxml against the FCPXML 1.8 DTD: {verdict}")
        for kind, verdict in round_trip(view, dest).items():
            print(f"round trip {TIMELINE_FILES[kind]}: {verdict}")


if __name__ == "__main__":
    main()

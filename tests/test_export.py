"""Export package: layout, metadata, incremental and atomic writes, and the zip.

Pins: ``write_export`` lays out ``audio/ images/ videos/`` with sequential names hard-linked from
the studio (which keeps its files); ``metadata.json`` validates against the shipped JSON Schema
and a broken one does not; re-exporting after one edit rewrites only that sentence's files plus
metadata and timelines; an export killed half-way leaves the previous package intact and the next
export cleans up; a crash between the swap's renames is restored; missing media fail with the
sentence id unless ``allow_partial``; the zip holds every file and is streamed.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import jsonschema
import pytest

from tests.test_export_timelines import _mp4, _png, _wav, make_project
from videogen_assets.export import (
    MissingMediaError,
    package_file_names,
    read_metadata,
    recover_export,
    validate_metadata,
    write_export,
)
from videogen_domain.models import ProjectItem, ProjectView

REPO = Path(__file__).resolve().parents[1]


def _inodes(dest: Path) -> dict[str, int]:
    return {p.relative_to(dest).as_posix(): p.stat().st_ino for p in dest.rglob("*") if p.is_file()}


def test_layout_names_and_hard_links(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    dest = tmp_path / "exports" / "demo"
    srt = tmp_path / "demo.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,500\nSentence 1\n", encoding="utf-8")
    vtt = tmp_path / "demo.vtt"
    vtt.write_text("WEBVTT\n\n00:00.000 --> 00:01.500\nSentence 1\n", encoding="utf-8")
    rough = Path(view.items[0].clip or "")
    chapters = tmp_path / "chapters.txt"
    chapters.write_text("00:00 Intro\n00:12 How it works\n00:30 End\n", encoding="utf-8")
    report = write_export(
        view, dest, subtitles={"srt": srt, "vtt": vtt}, rough_cut=rough, chapters=chapters
    )

    assert sorted(p.name for p in (dest / "audio").iterdir()) == [
        "001_intro_narration.wav",
        "002_intro_narration.wav",
        "003_how-it-works_narration.wav",
        "004_how-it-works_narration.wav",
        "005_how-it-works_narration.wav",
    ]
    assert (dest / "images" / "003_how-it-works_keyframe.png").is_file()
    assert (dest / "videos" / "005_how-it-works_clip.mp4").is_file()
    for name in (
        "subtitles.srt",
        "subtitles.vtt",
        "rough_cut.mp4",
        "chapters.txt",
        "metadata.json",
        "timeline.fcpxml",
        "timeline.xml",
        "timeline.edl",
        "timeline_narration.edl",
        "timeline.otio",
    ):
        assert (dest / name).is_file(), name
    assert (dest / "subtitles.srt").read_text(encoding="utf-8") == srt.read_text(encoding="utf-8")
    assert (dest / "chapters.txt").read_text(encoding="utf-8") == chapters.read_text("utf-8")
    assert read_metadata(dest)["chapters"] == "chapters.txt"
    for item in view.items:  # hard-linked, never moved: the studio keeps its files
        studio = Path(item.clip or "")
        exported = dest / package_file_names(view)[item.sentence_id]["clip"]
        assert studio.is_file() and studio.stat().st_ino == exported.stat().st_ino
    assert report.reused == [] and report.files == sorted(_inodes(dest))
    assert report.left_out == [] and report.frames == 228
    assert not list(dest.parent.glob(".demo.*-*"))  # no temporary folder left behind


def test_names_widen_past_999_sentences() -> None:
    items = [
        ProjectItem(index=i, sentence_id=f"p.s{i}", section="Body", section_slug="body", text="x")
        for i in range(1, 1001)
    ]
    view = ProjectView(name="p", title="p", topic="p", style="s", items=items)
    names = package_file_names(view)
    assert names["p.s1"]["clip"] == "videos/0001_body_clip.mp4"
    assert names["p.s1000"]["narration"] == "audio/1000_body_narration.wav"
    small = ProjectView(name="p", title="p", topic="p", style="s", items=items[:999])
    assert package_file_names(small)["p.s999"]["keyframe"] == "images/999_body_keyframe.png"


def test_metadata_validates_and_a_broken_one_fails(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest, loudness_lufs={"demo.s0001": -16.2})
    data = read_metadata(dest)
    validate_metadata(data)
    assert data["project"]["name"] == "demo" and data["project"]["frames"] == 228
    assert data["chapters"] is None  # none given
    assert [s["title"] for s in data["sections"]] == ["Intro", "How it works"]
    assert [s["start_frame"] for s in data["sections"]] == [0, 105]
    first = data["sentences"][0]
    assert first["text"] == "Sentence 1 of Intro." and first["loudness_lufs"] == -16.2
    assert first["shot"]["seed"] == 1 and first["shot"]["image_prompt"] == "image 1"
    assert first["workflow_versions"] == {"keyframe": "flux-2-v1", "clip": "wan-2.2-v1"}
    assert first["files"]["clip"] == "videos/001_intro_clip.mp4"
    assert len(data["files"]) == 15

    for breakage in (
        lambda d: d.pop("sentences"),
        lambda d: d["sentences"][0].update(frames="45"),
        lambda d: d["files"][0].update(sha256="nothex"),
        lambda d: d["sentences"][0]["files"].update(clip="/abs/clip.mp4"),
        lambda d: d.update(surprise=True),
    ):
        broken = copy.deepcopy(data)
        breakage(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate_metadata(broken)
    schema = json.loads((REPO / "videogen_assets" / "export" / "metadata.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_reexport_rewrites_only_the_changed_sentence(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest)
    before = _inodes(dest)

    # the studio regenerates sentence 3: new files replace the old ones (new inodes)
    item = view.items[2]
    for kind, make in (
        ("narration", lambda p: _wav(p, 1100, 999)),
        ("keyframe", lambda p: _png(p, 7)),
        ("clip", lambda p: _mp4(p, 33, hue=77)),
    ):
        old = Path(getattr(item, kind))
        new = old.with_name(f"new-{old.name}")
        make(new)
        os.replace(new, old)
    report = write_export(view, dest)
    after = _inodes(dest)

    changed = {rel for rel in after if before.get(rel) != after[rel]}
    item_files = set(package_file_names(view)[item.sentence_id].values())
    text_files = {
        "metadata.json",
        "timeline.fcpxml",
        "timeline.xml",
        "timeline.edl",
        "timeline_narration.edl",
        "timeline.otio",
    }
    assert changed == item_files | text_files
    assert set(report.written) == item_files | text_files
    assert len(report.reused) == 12

    # inserting a sentence renumbers later files but reuses them by content
    report = write_export(
        view.model_copy(update={"items": [*view.items[:1], *view.items[2:]]}), dest
    )
    assert len(report.reused) == 12 and set(report.written) == text_files


def test_missing_media_names_the_sentence_unless_partial(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    items = list(view.items)
    items[1] = items[1].model_copy(update={"clip": None})
    Path(items[3].keyframe or "").unlink()
    partial = view.model_copy(update={"items": items})
    dest = tmp_path / "exports" / "demo"
    with pytest.raises(MissingMediaError, match=r"demo\.s0002: clip") as err:
        write_export(partial, dest)
    assert err.value.sentence_id == "demo.s0002" and err.value.kind == "clip"
    assert not dest.exists() and not list(dest.parent.glob(".demo.tmp-*"))

    report = write_export(partial, dest, allow_partial=True)
    assert [(x.sentence_id, x.kind) for x in report.left_out] == [
        ("demo.s0002", "clip"),
        ("demo.s0004", "keyframe"),
    ]
    assert not (dest / "videos" / "002_intro_clip.mp4").exists()
    meta = read_metadata(dest)
    validate_metadata(meta)
    assert meta["sentences"][1]["files"]["clip"] is None
    assert len(meta["left_out"]) == 2


_KILL_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from videogen_assets.export import write_export
    from videogen_domain.models import ProjectView

    view = ProjectView.model_validate_json(Path(sys.argv[1]).read_text())
    def progress(rel: str) -> None:
        print(rel, flush=True)
        time.sleep(0.05)  # slow enough to be killed half-way
    write_export(view, Path(sys.argv[2]), on_file=progress)
""")


@pytest.mark.slow
def test_killed_export_leaves_previous_package_and_is_cleaned_up(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest)
    snapshot = {rel: (dest / rel).read_bytes() for rel in _inodes(dest)}

    bigger = view.model_copy(update={"title": "Changed title"})
    view_file = tmp_path / "view.json"
    view_file.write_text(bigger.model_dump_json())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(view_file), str(dest)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    seen = [child.stdout.readline() for _ in range(6)]  # six files placed, more to come
    assert all(seen)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    assert list(dest.parent.glob(".demo.tmp-*")), "the killed export should leave its tmp"
    assert {rel: (dest / rel).read_bytes() for rel in _inodes(dest)} == snapshot

    report = write_export(bigger, dest)
    assert not list(dest.parent.glob(".demo.tmp-*")) and not list(dest.parent.glob(".demo.bak-*"))
    assert read_metadata(dest)["project"]["title"] == "Changed title"
    assert len(report.reused) == 15


def test_crash_between_renames_restores_the_backup(tmp_path: Path) -> None:
    view = make_project(tmp_path, [("Intro", [30])])
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest)
    meta = (dest / "metadata.json").read_text()
    os.rename(dest, dest.parent / ".demo.bak-x1y2")  # old -> backup happened, new -> dest not
    (dest.parent / ".demo.tmp-zz").mkdir()
    touched = recover_export(dest)
    assert dest in touched and (dest / "metadata.json").read_text() == meta
    assert sorted(p.name for p in dest.parent.iterdir()) == [".demo.lock", "demo"]


def test_zip_holds_every_file_stored_or_deflated(tmp_path: Path) -> None:
    view = make_project(tmp_path, [("Intro", [30, 30])])
    dest = tmp_path / "exports" / "demo"
    zip_path = tmp_path / "exports" / "demo.zip"
    report = write_export(view, dest, zip_path=zip_path)
    assert report.zip_path == zip_path
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.testzip() is None
        infos = {i.filename: i for i in archive.infolist()}
    assert set(infos) == {f"demo/{rel}" for rel in _inodes(dest)}
    assert infos["demo/videos/001_intro_clip.mp4"].compress_type == zipfile.ZIP_STORED
    assert infos["demo/metadata.json"].compress_type == zipfile.ZIP_DEFLATED
    assert not list(zip_path.parent.glob(".demo.zip.*"))


_ZIP_CHILD = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from videogen_assets.export import write_zip
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    write_zip(Path(sys.argv[1]), Path(sys.argv[2]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(base, peak)
""")


@pytest.mark.slow
def test_zip_is_streamed(tmp_path: Path) -> None:
    package = tmp_path / "big"
    (package / "videos").mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    for i in range(4):  # 200 MiB of incompressible "media"
        with (package / "videos" / f"{i:03d}_big_clip.mp4").open("wb") as fh:
            for _ in range(50):
                fh.write(chunk)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _ZIP_CHILD, str(package), str(tmp_path / "b.zip")],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    base_kb, peak_kb = map(int, out.split())
    assert (tmp_path / "b.zip").stat().st_size > 200 * (1 << 20)
    assert peak_kb - base_kb < 32 * 1024, f"zipping grew RSS by {(peak_kb - base_kb) // 1024} MiB"
    assert time.perf_counter() - started < 30

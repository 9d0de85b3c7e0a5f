"""An export package real editors accept: what each finding of a package read by outside tools pins.

Pins: every FCPXML the studio writes (complete, partial with gaps, broadcast start timecode) is
valid against the DTD of the FCPXML version it declares (xmllint, tests/dtd/ derived from
Apple's DTD); narrations in the package are 48 kHz 16-bit PCM padded to whole frames, and no
timeline (FCPXML, FCP7 XML, OTIO, EDL) claims more narration than its WAV holds; EDL reel names
are unique across the video and narration EDLs; the 01:00:00:00 start timecode moves all five
timelines; narration loudness is in metadata.json (measured when not given); files the creator
put in the package folder (nested too) survive re-exports and stay out of the zip, whose entries
are 0644; an export refuses while a Dagster run makes the project's media (naming the run), and
aborts, leaving the previous package, when a studio file changes while it is being built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import wave
import xml.etree.ElementTree as ET
import zipfile
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg
import numpy as np
import opentimelineio as otio
import pytest
import yaml

from tests.test_export_timelines import FPS, make_project
from videogen_assets.export import (
    TIMELINE_FILES,
    ExportError,
    read_metadata,
    read_timeline,
    refuse_during_runs,
    runs_in_progress,
    validate_metadata,
    write_export,
)
from videogen_domain.models import ProjectView
from videogen_domain.project import ProjectBrief

DTD_DIR = Path(__file__).parent / "dtd"
SAMPLES_PER_FRAME = 48000 // FPS


def assert_valid_fcpxml(path: Path) -> None:
    """Validate ``path`` with xmllint against the DTD of the version its root declares."""
    xmllint = shutil.which("xmllint")
    assert xmllint, "xmllint (Debian libxml2-utils) is needed to validate FCPXML"
    version = ET.parse(path).getroot().get("version")
    dtd = DTD_DIR / f"fcpxml-{version}.dtd"
    assert dtd.is_file(), f"FCPXML declares version {version}: no DTD for it in {DTD_DIR}"
    proc = subprocess.run(
        [xmllint, "--noout", "--dtdvalid", str(dtd), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _narration_22k(path: Path, seconds: float, freq: float = 300.0) -> None:
    """A 22.05 kHz mono narration whose length is not a whole number of frames."""
    n = int(22050 * seconds)
    t = np.arange(n) / 22050
    pcm = (0.25 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(pcm.tobytes())


def _as_tts_made_them(view: ProjectView) -> ProjectView:
    """The project with 22.05 kHz narrations a little shorter than their clips (as TTS makes)."""
    for n, item in enumerate(view.items):
        frames = item.clip_frames or 0
        seconds = frames / FPS - 0.013 - 0.002 * n  # not on a frame boundary
        _narration_22k(Path(item.narration or ""), seconds, 250 + 30 * n)
        item.narration_ms = round(seconds * 1000)
    return view


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectView, Path]:
    root = tmp_path_factory.mktemp("delivered")
    view = _as_tts_made_them(make_project(root))
    dest = root / "exports" / "demo"
    write_export(view, dest)
    return view, dest


def _wav_facts(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()


def test_fcpxml_is_valid_against_its_declared_versions_dtd(
    delivered: tuple[ProjectView, Path], tmp_path: Path
) -> None:
    view, dest = delivered
    assert_valid_fcpxml(dest / "timeline.fcpxml")
    # a partial export (gaps where clips are missing) and a broadcast start are valid too
    partial = view.model_copy(deep=True)
    partial.items[1].clip = None
    partial.items[3].narration = None
    partial.start_timecode = "01:00:00:00"
    out = tmp_path / "partial"
    report = write_export(partial, out, allow_partial=True)
    assert {(x.sentence_id, x.kind) for x in report.left_out} == {
        (partial.items[1].sentence_id, "clip"),
        (partial.items[3].sentence_id, "narration"),
    }
    assert_valid_fcpxml(out / "timeline.fcpxml")
    root = ET.parse(out / "timeline.fcpxml").getroot()
    assert len(root.findall("./event/project/sequence/spine/gap")) == 1
    for kind in ("fcpxml", "fcp7_xml", "otio"):  # the gaps read back where they belong
        timeline = read_timeline(out / TIMELINE_FILES[kind], fps=FPS)
        for track in timeline.tracks:
            items = list(track)
            if kind == "fcpxml":  # OTIO's reader puts the sequence's tcStart before the cuts
                lead = items.pop(0)
                assert isinstance(lead, otio.schema.Gap) and lead.duration().to_frames() == 108000
            gaps = [isinstance(item, otio.schema.Gap) for item in items]
            missing = 1 if track.kind == otio.schema.TrackKind.Video else 3
            assert gaps == [n == missing for n in range(len(partial.items))], (kind, track.kind)
    # and the check can fail: an attribute the declared version does not have is caught
    bad = tmp_path / "bad.fcpxml"
    text = (dest / "timeline.fcpxml").read_text(encoding="utf-8")
    bad.write_text(text.replace('hasVideo="1"', 'hasVideo="1" videoSources="1"'), "utf-8")
    with pytest.raises(AssertionError, match="videoSources"):
        assert_valid_fcpxml(bad)


def test_narrations_are_48k_and_no_timeline_claims_more_than_the_wav_holds(
    delivered: tuple[ProjectView, Path],
) -> None:
    view, dest = delivered
    meta = read_metadata(dest)
    lengths: dict[str, int] = {}
    for item, sentence in zip(view.items, meta["sentences"], strict=True):
        rel = sentence["files"]["narration"]
        rate, width, channels, samples = _wav_facts(dest / rel)
        assert (rate, width, channels) == (48000, 2, 1)
        assert samples % SAMPLES_PER_FRAME == 0  # whole frames
        assert samples == (item.clip_frames or 0) * SAMPLES_PER_FRAME  # spans its cut exactly
        lengths[Path(rel).name] = samples
        # the speech itself is intact: resampled, not cut
        with wave.open(str(dest / rel), "rb") as w:
            pcm = np.frombuffer(w.readframes(samples), dtype="<i2")
        spoken = np.flatnonzero(np.abs(pcm) > 200)
        expected_end = (item.narration_ms or 0) * 48
        assert abs(int(spoken[-1]) - expected_end) < 48 * 5

    root = ET.parse(dest / "timeline.fcpxml").getroot()
    for asset in root.iter("asset"):
        name = Path(unquote(urlparse(asset.get("src", "")).path)).name
        if name in lengths:
            assert Fraction(asset.get("duration", "").removesuffix("s")) == Fraction(
                lengths[name], 48000
            )
    for kind in ("fcpxml", "fcp7_xml", "otio"):
        timeline = read_timeline(dest / TIMELINE_FILES[kind], fps=FPS)
        for clip in timeline.find_clips():
            url = clip.media_reference.target_url
            name = Path(unquote(urlparse(url).path)).name
            if name not in lengths:
                continue
            holds = Fraction(lengths[name], 48000)
            available = clip.media_reference.available_range
            if available is not None:
                claimed = available.duration.value / available.duration.rate
                assert Fraction(claimed).limit_denominator(48000) <= holds, (kind, name)
            used = clip.source_range.duration
            assert Fraction(used.value / used.rate).limit_denominator(48000) <= holds
    xmeml = ET.parse(dest / "timeline.xml").getroot()
    for file_el in xmeml.iter("file"):
        name = Path(unquote(urlparse(file_el.findtext("pathurl") or "").path)).name
        if name in lengths and file_el.findtext("duration"):
            assert int(file_el.findtext("duration") or 0) * SAMPLES_PER_FRAME <= lengths[name]


def test_edl_reel_names_are_unique_across_video_and_narration(
    delivered: tuple[ProjectView, Path],
) -> None:
    view, dest = delivered
    reels: list[str] = []
    for name in ("timeline.edl", "timeline_narration.edl"):
        for line in (dest / name).read_text(encoding="utf-8").splitlines():
            if line[:3].isdigit():
                reels.append(line.split()[1])
    assert len(reels) == 2 * len(view.items)
    assert len(set(reels)) == len(reels), reels
    assert all(len(r) <= 8 for r in reels)


def test_broadcast_start_timecode_moves_every_timeline(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    view.start_timecode = "01:00:00:00"
    dest = tmp_path / "out"
    write_export(view, dest)
    start = 3600 * FPS
    root = ET.parse(dest / "timeline.fcpxml").getroot()
    (sequence,) = root.iter("sequence")
    assert Fraction(sequence.get("tcStart", "").removesuffix("s")) == 3600
    first = root.find("./event/project/sequence/spine/asset-clip")
    assert first is not None and Fraction(first.get("offset", "").removesuffix("s")) == 3600
    assert_valid_fcpxml(dest / "timeline.fcpxml")
    xmeml = ET.parse(dest / "timeline.xml").getroot()
    assert xmeml.findtext("./project/children/sequence/timecode/string") == "01:00:00:00"
    for name in ("timeline.edl", "timeline_narration.edl"):
        events = [ln.split() for ln in (dest / name).read_text("utf-8").splitlines()]
        events = [e for e in events if e and e[0].isdigit()]
        assert events[0][6] == "01:00:00:00"
        total = sum(it.clip_frames or 0 for it in view.items)
        assert events[-1][7] == otio.opentime.to_timecode(
            otio.opentime.RationalTime(start + total, FPS), FPS
        )
    timeline = read_timeline(dest / "timeline.otio", fps=FPS)
    assert timeline.global_start_time.to_frames() == start
    assert read_metadata(dest)["project"]["start_timecode"] == "01:00:00:00"


def test_start_timecode_is_a_brief_setting_checked_against_fps() -> None:
    brief = ProjectBrief(name="tides", title="Tides", start_timecode="01:00:00:00")
    assert brief.start_timecode == "01:00:00:00"
    assert ProjectBrief(name="tides", title="Tides").start_timecode == "00:00:00:00"
    with pytest.raises(ValueError, match="below the fps"):
        ProjectBrief(name="tides", title="Tides", fps=25, start_timecode="01:00:00:25")
    with pytest.raises(ValueError, match="start_timecode"):
        ProjectBrief(name="tides", title="Tides", start_timecode="1:00:00")
    # unquoted in project.yaml, YAML reads 1:00:00:00 as a number: still the timecode
    parsed = yaml.safe_load("start_timecode: 1:00:00:00")
    assert isinstance(parsed["start_timecode"], int)
    brief = ProjectBrief(name="tides", title="Tides", **parsed)
    assert brief.start_timecode == "01:00:00:00"


def test_loudness_is_in_metadata_measured_when_not_given(
    delivered: tuple[ProjectView, Path], tmp_path: Path
) -> None:
    view, dest = delivered
    meta = read_metadata(dest)
    validate_metadata(meta)
    values = [s["loudness_lufs"] for s in meta["sentences"]]
    # a 0.25 full-scale sine: about -15 LUFS (BS.1770 weights 250-400 Hz near unity)
    assert all(v is not None and -18.0 < v < -12.0 for v in values), values
    given = {view.items[0].sentence_id: -23.5}
    out = tmp_path / "given"
    write_export(view, out, loudness_lufs=given)
    meta = read_metadata(out)
    assert meta["sentences"][0]["loudness_lufs"] == -23.5
    assert meta["sentences"][1]["loudness_lufs"] == values[1]


def test_creator_files_survive_reexports_and_stay_out_of_the_zip(tmp_path: Path) -> None:
    view = make_project(tmp_path)
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest)
    mine = {
        "edit.drp": b"resolve project",
        "notes/today.txt": b"cut the second shot",
        "notes/deep/er/todo.md": b"- colour",
        "audio/music/bed.wav": b"RIFF music",
        "videos/alt_take.mp4": b"an alternative take",
    }
    for rel, data in mine.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    (dest / "renders").mkdir()
    os.symlink("edit.drp", dest / "latest.drp")
    inode = (dest / "edit.drp").stat().st_ino

    # the project changes: one sentence gone, so its studio files must go
    fewer = view.model_copy(deep=True)
    dropped = fewer.items.pop()
    report = write_export(fewer, dest, zip_path=tmp_path / "demo.zip")
    for rel, data in mine.items():
        assert (dest / rel).read_bytes() == data, rel
    assert (dest / "edit.drp").stat().st_ino == inode  # the same file, not a copy
    assert (dest / "renders").is_dir()
    assert os.readlink(dest / "latest.drp") == "edit.drp"
    assert sorted(report.kept) == sorted([*mine, "latest.drp"])
    stale = f"videos/{len(view.items):03d}_{dropped.section_slug}_clip.mp4"
    assert not (dest / stale).exists()
    meta = read_metadata(dest)
    assert set(meta["package_files"]).isdisjoint(mine)
    with zipfile.ZipFile(tmp_path / "demo.zip") as zf:
        names = {n.split("/", 1)[1] for n in zf.namelist()}
    assert names == set(meta["package_files"])
    # and again, unchanged: still there
    write_export(fewer, dest)
    assert all((dest / rel).read_bytes() == data for rel, data in mine.items())


def test_zip_entries_and_folders_are_readable_by_colleagues(tmp_path: Path) -> None:
    view = make_project(tmp_path, [("Intro", [30, 31])])
    for item in view.items:
        for path in (item.clip, item.keyframe, item.narration):
            os.chmod(path or "", 0o600)  # the studio's own files are private
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest, zip_path=tmp_path / "demo.zip")
    assert dest.stat().st_mode & 0o777 == 0o755
    with zipfile.ZipFile(tmp_path / "demo.zip") as zf:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in zf.infolist()}
    assert modes and set(modes.values()) == {0o644}, modes
    assert (tmp_path / "demo.zip").stat().st_mode & 0o777 == 0o644


def test_source_changed_during_the_build_aborts_and_keeps_the_previous_package(
    tmp_path: Path,
) -> None:
    view = make_project(tmp_path, [("Intro", [30, 31, 32])])
    dest = tmp_path / "exports" / "demo"
    write_export(view, dest)
    before = (dest / "metadata.json").read_bytes()
    clip = Path(view.items[0].clip or "")

    def a_run_writes(rel: str) -> None:
        if rel.startswith("videos/003"):  # sentence 1's clip, already read, is rewritten
            data = clip.read_bytes()
            tmp = clip.with_suffix(".new")
            tmp.write_bytes(data + b"\0")
            os.replace(tmp, clip)

    with pytest.raises(ExportError, match="changed while the package was being built"):
        write_export(view, dest, on_file=a_run_writes)
    assert (dest / "metadata.json").read_bytes() == before
    assert not list(dest.parent.glob(".demo.tmp-*"))


@pytest.mark.slow
def test_export_refuses_while_a_run_makes_the_projects_media(tmp_path: Path) -> None:
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    release = threading.Event()

    @dg.asset(key=dg.AssetKey(["demo", "clip"]))
    def clip() -> None:
        release.wait(60)

    worker = threading.Thread(target=dg.materialize, args=([clip],), kwargs={"instance": instance})
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not runs_in_progress(instance, "demo") and time.monotonic() < deadline:
            time.sleep(0.1)
        (active,) = runs_in_progress(instance, "demo")
        assert active.assets == ("clip",)
        with pytest.raises(ExportError) as caught:
            refuse_during_runs(instance, "demo")
        message = str(caught.value)
        assert active.run_id in message and "\n" not in message
        assert runs_in_progress(instance, "other") == []  # another project's export may go on
        assert runs_in_progress(instance, "demo", exclude=[active.run_id]) == []  # its own run
        # a package built while the run goes on is not swapped in
        view = make_project(tmp_path, [("Intro", [30])])
        dest = tmp_path / "exports" / "demo"
        with pytest.raises(ExportError, match=active.run_id):
            write_export(view, dest, before_swap=lambda: refuse_during_runs(instance, "demo"))
        assert not dest.exists()
    finally:
        release.set()
        worker.join(60)
    refuse_during_runs(instance, "demo")  # finished: no longer refused
    assert json.loads(json.dumps([r.run_id for r in runs_in_progress(instance, "demo")])) == []


@pytest.mark.slow
def test_render_and_export_keep_creator_files_and_export_goes_to_dir(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from videogen.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["--home", str(studio_root), *args], catch_exceptions=False)
        return result.exit_code, result.output

    script = tmp_path / "s.md"
    script.write_text("# One\nA single short line for the editor.\n", encoding="utf-8")
    assert cli("new", "Tides", "--script", str(script))[0] == 0
    code, out = cli("render", "tides")
    assert code == 0, out
    package = studio_root / "exports" / "tides"
    assert (package / "timeline.fcpxml").is_file()
    mine = {"tides.drp": b"edit", "notes/a/b.txt": b"nested note", "videos/take2.mp4": b"x"}
    for rel, data in mine.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_bytes(data)
    before = (package / "metadata.json").stat().st_mtime_ns
    # With nothing changed a render leaves the outputs as they are (their inputs' fingerprint is
    # unchanged: videogen.operations.outputs_up_to_date); the creator's files are no input.
    code, out = cli("render", "tides")
    assert code == 0, out
    assert (package / "metadata.json").stat().st_mtime_ns == before
    assert all((package / rel).read_bytes() == data for rel, data in mine.items())
    # A real change to an input of the export (the timelines' first timecode, in the brief):
    # the render re-exports, and keeps the creator's files in the folder.
    brief_file = studio_root / "projects" / "tides" / "project.yaml"
    brief = yaml.safe_load(brief_file.read_text(encoding="utf-8"))
    brief["start_timecode"] = "01:00:00:00"
    brief_file.write_text(yaml.safe_dump(brief, sort_keys=False), encoding="utf-8")
    code, out = cli("render", "tides")  # the render re-exports too
    assert code == 0, out
    assert (package / "metadata.json").stat().st_mtime_ns != before  # it did
    assert read_metadata(package)["project"]["start_timecode"] == "01:00:00:00"
    assert all((package / rel).read_bytes() == data for rel, data in mine.items())
    code, out = cli("export", "tides")
    assert code == 0, out
    assert "3 of your own files in the folder kept" in out
    for rel, data in mine.items():
        assert (package / rel).read_bytes() == data, rel

    share = tmp_path / "share"
    code, out = cli("export", "tides", "--to", str(share), "--zip")
    assert code == 0, out
    assert (share / "tides.zip").is_file()
    root = ET.parse(share / "tides" / "timeline.fcpxml").getroot()
    srcs = [a.get("src", "") for a in root.iter("asset")]
    assert srcs and all(s.startswith((share / "tides").resolve().as_uri() + "/") for s in srcs)
    assert all(Path(unquote(urlparse(s).path)).is_file() for s in srcs)
    assert_valid_fcpxml(share / "tides" / "timeline.fcpxml")
    # the clip carries the narration too; the timeline plays it once, from the narration
    (clip_asset,) = [a for a in root.iter("asset") if a.get("hasVideo") == "1"]
    assert clip_asset.get("hasAudio") == "1"
    spine = root.findall("./event/project/sequence/spine/asset-clip")
    assert [c.get("srcEnable") for c in spine] == ["video"]
    (narration,) = (share / "tides" / "audio").glob("*.wav")
    rate, width, _, samples = _wav_facts(narration)
    assert (rate, width) == (48000, 2) and samples % SAMPLES_PER_FRAME == 0
    meta = read_metadata(share / "tides")
    validate_metadata(meta)
    assert meta["sentences"][0]["loudness_lufs"] is not None


def test_a_file_saved_during_the_swap_is_moved_into_the_new_package(tmp_path: Path) -> None:
    from videogen_assets.export.package import _swap

    dest = tmp_path / "demo"
    (dest / "notes").mkdir(parents=True)
    (dest / "timeline.fcpxml").write_text("old", encoding="utf-8")
    (dest / "notes" / "saved-just-now.txt").write_text("mine", encoding="utf-8")
    new = tmp_path / ".demo.tmp-1"
    new.mkdir()
    (new / "timeline.fcpxml").write_text("new", encoding="utf-8")
    _swap(new, dest, keep=lambda rel: rel != "timeline.fcpxml")
    assert (dest / "timeline.fcpxml").read_text(encoding="utf-8") == "new"
    assert (dest / "notes" / "saved-just-now.txt").read_text(encoding="utf-8") == "mine"
    assert not list(tmp_path.glob(".demo.bak-*"))


@pytest.mark.parametrize(("rate", "channels", "fps"), [(24000, 1, 25), (44100, 2, 24)])
def test_any_narration_becomes_48k_pcm_of_whole_frames(
    tmp_path: Path, rate: int, channels: int, fps: int
) -> None:
    from scipy.io import wavfile

    from videogen_assets.export.package import package_narration

    seconds = 1.337
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    source = tmp_path / "float.wav"
    wavfile.write(source, rate, np.stack([tone] * channels, axis=1) if channels > 1 else tone)
    target = tmp_path / "out.wav"
    total = package_narration(source, target, frames=None, fps=fps)
    got_rate, width, got_channels, samples = _wav_facts(target)
    assert (got_rate, width, got_channels, samples) == (48000, 2, channels, total)
    per_frame = 48000 // fps
    assert samples % per_frame == 0
    assert 0 <= samples - seconds * 48000 < per_frame + 48  # padded to the next frame only
    total = package_narration(source, target, frames=50, fps=fps)  # at least the sentence
    assert total == 50 * per_frame == _wav_facts(target)[3]

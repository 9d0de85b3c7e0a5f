"""Contract: a `videogen render` killed with SIGKILL in the middle of the clip batch loses nothing
that a second `videogen render` cannot finish.

After the second render: every clip decodes fully with as many frames as its narration lasts
(ceil(seconds * fps)); no temporary file of an interrupted write is left in the project or the
exports; every sentence has one database row and no generation job points at a missing sentence;
in the Dagster instance every partition of every per-sentence asset has a latest materialization
whose data version is the content hash of the file on disk; and the killed run, which Dagster's
run monitoring cannot judge (the default run launcher has no worker health check), is marked
failed by the render that follows it instead of staying STARTED forever.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

from tests.support.crash import SCRIPT_8, sentence_rows, studio_env, temp_leftovers, videogen_cmd
from videogen_assets.context import file_digest, key
from videogen_assets.dagster_internals import extract_data_version_from_entry
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_resources.audio import wav_num_samples
from videogen_resources.media import probe

pytestmark = pytest.mark.slow  # kills and reruns `videogen render` subprocesses

PROJECT = "volcanoes"
N = 8
FILES = {
    "narration": "narration.wav",
    "shot": "shot.json",
    "keyframe": "keyframe.png",
    "clip": "clip.mp4",
}


def _clips(folder: Path) -> list[Path]:
    return sorted((folder / "sentences").glob("*/clip.mp4"))


@pytest.fixture(scope="module")
def crashed_then_rendered(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("crash")
    root, home = base / "studio", base / "dagster_home"
    home.mkdir()
    script = base / "script.md"
    script.write_text(SCRIPT_8, encoding="utf-8")
    env = studio_env(root, home)
    subprocess.run(
        videogen_cmd(root, "new", "Volcanoes", "--name", PROJECT, "--script", str(script)),
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    folder = root / "projects" / PROJECT

    first = subprocess.Popen(
        videogen_cmd(root, "render", PROJECT),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    made_before_kill = 0
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and first.poll() is None:
            made_before_kill = len(_clips(folder))
            writing = list((folder / "sentences").glob("*/.clip.mp4.*"))
            if 0 < made_before_kill < N and writing:
                break
            time.sleep(0.02)
        assert first.poll() is None, "the first render ended before it could be killed"
        assert 0 < made_before_kill < N, f"{made_before_kill} clips when the kill was due"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    after_kill = {"clips": len(_clips(folder)), "leftovers": temp_leftovers(folder)}

    second = subprocess.run(
        videogen_cmd(root, "render", PROJECT),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield root, folder, instance, after_kill


def test_the_kill_really_happened_mid_batch(crashed_then_rendered) -> None:  # type: ignore[no-untyped-def]
    """The kill landed while a clip was being written: its temporary file was left behind."""
    _root, _folder, _instance, after_kill = crashed_then_rendered
    assert 0 < after_kill["clips"] < N
    assert [p.name.startswith(".clip.mp4.") for p in after_kill["leftovers"]] == [True]


def test_every_clip_decodes_fully_and_matches_its_narration(crashed_then_rendered) -> None:  # type: ignore[no-untyped-def]
    _root, folder, _instance, _ = crashed_then_rendered
    clips = _clips(folder)
    assert len(clips) == N
    for clip in clips:
        samples, rate = wav_num_samples(clip.parent / "narration.wav")
        info = probe(clip)  # decodes every frame
        assert info.video is not None and info.audio is not None, clip
        assert info.video.frames == math.ceil(samples * info.video.fps / rate - 1e-9), clip
    cut = probe(folder / "rough_cut.mp4")
    assert cut.video is not None and cut.video.frames > 0


def test_no_temporary_file_is_left_anywhere(crashed_then_rendered) -> None:  # type: ignore[no-untyped-def]
    root, _folder, _instance, _ = crashed_then_rendered
    assert temp_leftovers(root / "projects") == []
    assert temp_leftovers(root / "exports") == []


def test_database_has_one_row_per_sentence_and_no_orphan_jobs(crashed_then_rendered) -> None:  # type: ignore[no-untyped-def]
    root, folder, _instance, _ = crashed_then_rendered
    rows, texts, orphans = sentence_rows(root, PROJECT)
    assert len(rows) == N and all(count == 1 for _id, count in rows)
    assert texts == (N, N)
    assert orphans == 0
    assert sorted(p.name for p in (folder / "sentences").iterdir()) == sorted(r[0] for r in rows)


def test_latest_materialization_of_each_partition_matches_the_file(crashed_then_rendered) -> None:  # type: ignore[no-untyped-def]
    _root, folder, instance, _ = crashed_then_rendered
    ids = sorted(p.name for p in (folder / "sentences").iterdir())
    for kind in PER_SENTENCE:
        asset = key(PROJECT, kind)
        assert set(instance.get_materialized_partitions(asset)) == set(ids), kind
        for sid in ids:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[sid]), limit=1
            ).records
            assert len(records) == 1, (kind, sid)
            mat = records[0].asset_materialization
            assert mat is not None
            on_disk = file_digest(folder / "sentences" / sid / FILES[kind])
            record = instance.get_latest_data_version_record(asset, partition_key=sid)
            assert record is not None and record.storage_id == records[0].storage_id
            version = extract_data_version_from_entry(record.event_log_entry)
            assert version is not None and version.value == on_disk, (kind, sid)


def test_the_killed_run_does_not_stay_started(crashed_then_rendered) -> None:  # type: ignore[no-untyped-def]
    _root, _folder, instance, _ = crashed_then_rendered
    started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    assert started == []
    failed = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
    assert len(failed) == 1
    steps = {
        e.step_key for e in instance.all_logs(failed[0].run_id, of_type=DagsterEventType.STEP_START)
    }
    assert steps == {f"{PROJECT}__clip"}
    assert failed[0].tags["dagster/asset_partition_range_end"] == f"{PROJECT}.s{N:04d}"

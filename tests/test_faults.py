"""Contract: `render` finishes through the faults real services show, and fails fast, with the
server's own words, on the faults that repeating cannot fix.

Against the Chatterbox test server: ~30% of requests answered 500 still give every narration
(the client retries); a 400 fails the run at once (no retry by the client or by Dagster) and the
run failure carries the server's message. Against the ComfyUI test server: a WebSocket dropped
mid-job and a /view download cut in half are both survived; a server that stops listening
mid-job and listens again on the same port a moment later finishes the job; and files made
before the fault are byte-identical after it.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.support.servers.comfyui import SHARED, FakeComfyUI, running_comfyui
from tests.support.servers.tts import ChatterboxServer, Fault
from videogen.operations import create_project, render
from videogen_assets.context import key
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_resources.settings import BackendSettings

pytestmark = pytest.mark.slow  # each test renders against a test server

SCRIPT = "# One\nThe tide comes in twice a day.\nThe moon pulls the sea.\n"
TWO = ["tides.s0001", "tides.s0002"]
ONE_SCRIPT = "# One\nThe tide comes in twice a day.\n"
MESSAGE_400 = "Input text too long. Maximum 3000 characters allowed."

needs_recording = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)


def _project(root: Path, tmp_path: Path, instance: dg.DagsterInstance, text: str = SCRIPT) -> Path:
    script = tmp_path / "script.md"
    script.write_text(text, encoding="utf-8")
    folder, _ = create_project(
        root, title="Tides", name="tides", script_file=script, instance=instance
    )
    return folder


def _all_materialized(instance: dg.DagsterInstance, ids: list[str]) -> None:
    for kind in PER_SENTENCE:
        assert set(instance.get_materialized_partitions(key("tides", kind))) == set(ids), kind
    for kind in ("rough_cut", "subtitles"):
        assert instance.get_latest_materialization_event(key("tides", kind)) is not None


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "sentences").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def chatterbox() -> Iterator[ChatterboxServer]:
    with ChatterboxServer(flavour="openai") as server:
        yield server


def _tts_settings(server: ChatterboxServer) -> BackendSettings:
    return BackendSettings(tts="chatterbox", chatterbox_url=server.url, clip_preset="ultrafast")


def test_chatterbox_failing_a_third_of_requests_still_narrates_everything(
    studio_root: Path, instance: dg.DagsterInstance, chatterbox: ChatterboxServer, tmp_path: Path
) -> None:
    _project(studio_root, tmp_path, instance)
    chatterbox.error_rate = 0.3
    chatterbox.rng = random.Random(3)  # a sequence that fails the very first request
    render(studio_root, "tides", instance=instance, settings=_tts_settings(chatterbox))
    speech = chatterbox.requests_to("/v1/audio/speech")
    assert len(speech) > len(TWO)  # some were answered 500 and asked again
    _all_materialized(instance, TWO)


def test_chatterbox_400_fails_at_once_with_the_server_message(
    studio_root: Path, instance: dg.DagsterInstance, chatterbox: ChatterboxServer, tmp_path: Path
) -> None:
    _project(studio_root, tmp_path, instance)
    # One 400, then a healthy server: any retry (the client's or Dagster's) would succeed.
    chatterbox.queue(Fault(kind="400", path="/v1/audio/speech"))
    t0 = time.monotonic()
    with pytest.raises(Exception) as failed:
        render(studio_root, "tides", instance=instance, settings=_tts_settings(chatterbox))
    assert time.monotonic() - t0 < 30
    assert MESSAGE_400 in str(failed.value)
    assert len(chatterbox.requests_to("/v1/audio/speech")) == 1
    run = instance.get_runs(limit=1)[0]
    assert run.status == dg.DagsterRunStatus.FAILURE
    step_failures = [
        e
        for e in instance.all_logs(run.run_id)
        if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_FAILURE"
    ]
    assert len(step_failures) == 1
    assert MESSAGE_400 in str(step_failures[0].dagster_event.step_failure_data.error)  # type: ignore[union-attr]
    retries = [
        e
        for e in instance.all_logs(run.run_id)
        if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert retries == []


@pytest.fixture
def comfyui() -> Iterator[FakeComfyUI]:
    from videogen_resources.workflows import newer_node_schemas

    with running_comfyui(
        job_seconds=0.3, extra_nodes=newer_node_schemas(), version="0.7.0"
    ) as server:
        yield server


def _comfy_settings(server: FakeComfyUI) -> BackendSettings:
    return BackendSettings(comfyui_urls=[server.url], clip_preset="ultrafast")


@needs_recording
def test_comfyui_dropped_websocket_and_truncated_download_are_survived(
    studio_root: Path, instance: dg.DagsterInstance, comfyui: FakeComfyUI, tmp_path: Path
) -> None:
    folder = _project(studio_root, tmp_path, instance, ONE_SCRIPT)
    comfyui.drop_ws_next_job = True
    comfyui.truncate_downloads = 1
    render(studio_root, "tides", instance=instance, settings=_comfy_settings(comfyui))
    assert comfyui.drop_ws_next_job is False and comfyui.truncate_downloads == 0
    views = comfyui.requests_to("GET", "/view")
    assert len(views) == len(comfyui.prompts_received()) + 1  # the cut one was fetched again
    _all_materialized(instance, TWO[:1])
    for sid in TWO[:1]:
        assert (folder / "sentences" / sid / "keyframe.png").stat().st_size > 0
        assert (folder / "sentences" / sid / "clip.mp4").stat().st_size > 0


@needs_recording
def test_comfyui_going_away_mid_job_and_coming_back_loses_nothing(
    studio_root: Path, instance: dg.DagsterInstance, comfyui: FakeComfyUI, tmp_path: Path
) -> None:
    folder = _project(studio_root, tmp_path, instance, ONE_SCRIPT)
    settings = _comfy_settings(comfyui)
    render(studio_root, "tides", instance=instance, settings=settings)
    before = _digests(folder)
    script = folder / "script.md"
    script.write_text(ONE_SCRIPT + "The moon pulls the sea.\n", encoding="utf-8")

    prompts = len(comfyui.prompts_received())
    bounced = threading.Event()

    def bounce() -> None:  # stop while the new sentence's keyframe job runs, start 1 s later
        deadline = time.monotonic() + 60
        while len(comfyui.prompts_received()) == prompts and time.monotonic() < deadline:
            time.sleep(0.01)
        comfyui.stop()
        time.sleep(1.0)
        comfyui.start()
        bounced.set()

    thread = threading.Thread(target=bounce, daemon=True)
    thread.start()
    render(studio_root, "tides", instance=instance, settings=settings)
    thread.join(10)
    assert bounced.is_set()
    after = _digests(folder)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {
        f"sentences/tides.s0002/{name}"
        for name in ("narration.wav", "shot.json", "keyframe.png", "clip.mp4")
    }
    _all_materialized(instance, TWO)

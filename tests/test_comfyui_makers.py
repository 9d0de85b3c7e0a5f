"""Contract: ComfyUIKeyframes and ComfyUIClips turn a Shot into studio files via ComfyUI.

Against the fake server: the prompt sent carries the shot's prompt, negative prompt and seed,
the characters' LoRAs, and the reference image / keyframe uploaded via POST /upload/image (the
name the server answered is the one bound); the server's nodes are checked first (a clear error
naming the missing nodes and minimum ComfyUI version); a keyframe is a 1920x1080 PNG; a clip's
frame count is ceil(narration seconds * fps) rounded per the binding, and the final MP4 is
conformed to the narration; ``extra`` holds prompt id, server, seed, workflow name/version and a
progress summary; ``version()`` is the workflow's content version.
"""

from __future__ import annotations

import itertools
import math
import struct
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.servers.comfyui import SHARED, FakeComfyUI, running_comfyui
from videogen_domain.models import Shot
from videogen_resources.base import CharacterRef, ClipJob, ImageResult, KeyframeJob
from videogen_resources.comfyui import ComfyUIResource
from videogen_resources.comfyui_makers import ComfyUIClips, ComfyUIKeyframes
from videogen_resources.errors import ServiceError
from videogen_resources.workflows import load_workflow, newer_node_schemas

pytestmark = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)

SHOT = Shot(
    image_prompt="a volcano at dusk",
    video_prompt="lava flows slowly, camera pushes in",
    negative_prompt="blurry, text",
    seed=1234,
    characters=("Ada",),
)


@pytest.fixture
def server() -> Iterator[FakeComfyUI]:
    with running_comfyui(job_seconds=0.05) as srv:
        yield srv


@pytest.fixture
def newer_server() -> Iterator[FakeComfyUI]:
    with running_comfyui(
        job_seconds=0.05, extra_nodes=newer_node_schemas(), version="0.7.0"
    ) as srv:
        yield srv


def comfy(url: str) -> ComfyUIResource:
    return ComfyUIResource(urls=[url], poll_interval_s=0.1, backoff_s=0.01, timeout_s=60)


def write_wav(path: Path, seconds: float, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return path


def ada(tmp_path: Path) -> CharacterRef:
    ref = tmp_path / "ada.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(ref)
    return CharacterRef(name="Ada", reference_image=ref, lora="ada.safetensors", lora_strength=0.8)


@pytest.mark.slow
def test_keyframe_flux1_with_lora_and_reference(server: FakeComfyUI, tmp_path: Path) -> None:
    # a file of the same name already on the server is left alone: uploads go to the project's
    # folder under a name made of the picture's hash, and the name the server answered is bound
    server.add_input_file("ada.png", b"other bytes")
    maker = ComfyUIKeyframes(comfyui=comfy(server.url), workflow="flux-1-dev-v1")
    lines: list[str] = []
    out = tmp_path / "kf" / "s0001.png"
    res = maker.make_keyframe(
        KeyframeJob(
            shot=SHOT,
            sentence_text="Volcanoes erupt.",
            section_title="Intro",
            style="documentary photo",
            characters=[ada(tmp_path)],
            out_path=out,
            progress=lines.append,
        ),
    )
    with Image.open(out) as im:
        assert im.size == (1920, 1080) and im.format == "PNG"
    assert res.width == 1920 and res.seed == 1234 and res.engine == "comfyui"
    wf = load_workflow("flux-1-dev-v1")
    assert res.workflow_version == wf.version == maker.version()
    sent = server.prompts_received()[-1]["prompt"]
    assert sent["6"]["inputs"]["text"] == "a volcano at dusk, documentary photo"
    assert sent["16"]["inputs"]["seed"] == 1234
    assert sent["15"]["inputs"]["width"] == 1920 and sent["15"]["inputs"]["height"] == 1088
    assert sent["4"]["inputs"]["lora_name"] == "ada.safetensors"
    assert sent["4"]["inputs"]["strength_model"] == 0.8 and "5" not in sent
    upload = server.requests_to("POST", "/upload/image")[0].form
    assert upload["subfolder"] == "videogen/kf" and upload["overwrite"] == "true"
    name = upload["image"]["filename"]
    assert name.startswith("ada-") and name.endswith(".png")
    assert sent["10"]["inputs"]["image"] == f"videogen/kf/{name}"
    assert (server.root / "input" / "ada.png").read_bytes() == b"other bytes"
    assert (server.root / "input" / "videogen" / "kf" / name).read_bytes() == (
        tmp_path / "ada.png"
    ).read_bytes()
    assert sent["18"]["inputs"]["filename_prefix"] == "videogen/kf/keyframe"
    assert res.extra["prompt_id"] and res.extra["server"] == server.url
    assert res.extra["workflow"] == "flux-1-dev-v1" and res.extra["seed"] == 1234
    assert res.extra["progress"]["sampler_steps"] > 0
    assert not list(out.parent.glob(".comfyui-*"))  # temporary downloads cleaned up
    assert lines


def test_keyframe_without_characters_bypasses_optional_nodes(
    server: FakeComfyUI, tmp_path: Path
) -> None:
    maker = ComfyUIKeyframes(comfyui=comfy(server.url))
    maker.make_keyframe(
        KeyframeJob(
            shot=SHOT,
            sentence_text="x",
            section_title="x",
            style="",
            characters=[],
            out_path=tmp_path / "k.png",
        ),
    )
    sent = server.prompts_received()[-1]["prompt"]
    assert {"4", "5", "10", "14"}.isdisjoint(sent)
    assert not server.requests_to("POST", "/upload/image")


def test_flux2_needs_a_newer_server(
    server: FakeComfyUI, newer_server: FakeComfyUI, tmp_path: Path
) -> None:
    old = ComfyUIKeyframes(comfyui=comfy(server.url), workflow="flux-2-v1")
    with pytest.raises(ServiceError) as err:
        old.make_keyframe(
            KeyframeJob(
                shot=SHOT,
                sentence_text="x",
                section_title="x",
                style="",
                characters=[],
                out_path=tmp_path / "k.png",
            ),
        )
    msg = str(err.value)
    assert "EmptyFlux2LatentImage, Flux2Scheduler" in msg and "ComfyUI >= 0.3.72" in msg
    assert "0.3.64" in msg and not server.requests_to("POST", "/prompt")
    new = ComfyUIKeyframes(comfyui=comfy(newer_server.url), workflow="flux-2-v1")
    res = new.make_keyframe(
        KeyframeJob(
            shot=SHOT,
            sentence_text="x",
            section_title="x",
            style="",
            characters=[ada(tmp_path)],
            out_path=tmp_path / "k.png",
        ),
    )
    sent = newer_server.prompts_received()[-1]["prompt"]
    assert sent["21"]["inputs"]["noise_seed"] == 1234 and "7" in sent and "13" in sent
    assert sent["24"]["inputs"]["width"] == sent["23"]["inputs"]["width"] == 1920
    assert res.workflow_version == load_workflow("flux-2-v1").version


def test_object_info_is_cached_per_server(server: FakeComfyUI, tmp_path: Path) -> None:
    maker = ComfyUIKeyframes(comfyui=comfy(server.url))
    for i in range(2):
        maker.make_keyframe(
            KeyframeJob(
                shot=SHOT,
                sentence_text="x",
                section_title="x",
                style="",
                characters=[],
                out_path=tmp_path / f"k{i}.png",
            ),
        )
    assert len(server.requests_to("GET", "/object_info")) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workflow", "fps", "step"), [("wan-2.2-v1", 16, 4), ("ltx-video-v1", 24, 8)]
)
def test_clip_frames_from_narration(
    server: FakeComfyUI, tmp_path: Path, workflow: str, fps: int, step: int
) -> None:
    keyframe = tmp_path / "kf.png"
    Image.new("RGB", (1920, 1080), (0, 90, 200)).save(keyframe)
    narration = write_wav(tmp_path / "n.wav", 1.3)
    maker = ComfyUIClips(
        comfyui=comfy(server.url), workflow=workflow, gen_width=320, gen_height=192
    )
    out = tmp_path / "clips" / "s0001.mp4"
    res = maker.make_clip(ClipJob(shot=SHOT, keyframe=keyframe, narration=narration, out_path=out))
    sent = server.prompts_received()[-1]["prompt"]
    wf = load_workflow(workflow)
    need = math.ceil(1.3 * fps)
    length_target = wf.binding.slots["frames"].targets[0]
    length = sent[length_target.node]["inputs"][length_target.input]
    assert length >= need and (length - 1) % step == 0 and length - need < step
    image_target = wf.binding.slots["image"].targets[0]
    bound = sent[image_target.node]["inputs"]["image"]
    assert bound.startswith("videogen/clips/kf-") and bound.endswith(".png")
    neg = wf.binding.slots["negative_prompt"].targets[0]
    assert sent[neg.node]["inputs"]["text"] == "blurry, text"
    assert res.fps == 30 and res.num_frames == math.ceil(1.3 * 30)
    assert res.extra["generated_fps"] == fps and res.workflow_version == wf.version
    assert out.is_file() and out.stat().st_size > 0
    import av

    with av.open(str(out)) as container:
        v = container.streams.video[0]
        assert (v.width, v.height) == (1920, 1080)
        assert container.streams.audio


@pytest.mark.slow
def test_ltx2_clip_on_newer_server(newer_server: FakeComfyUI, tmp_path: Path) -> None:
    keyframe = tmp_path / "kf.png"
    Image.new("RGB", (640, 360), (0, 90, 200)).save(keyframe)
    maker = ComfyUIClips(
        comfyui=comfy(newer_server.url), workflow="ltx-2-v1", gen_width=320, gen_height=192
    )
    res = maker.make_clip(
        ClipJob(
            shot=SHOT,
            keyframe=keyframe,
            narration=write_wav(tmp_path / "n.wav", 0.9),
            out_path=tmp_path / "c.mp4",
            workflow="ltx-2-v1",
        ),
    )
    sent = newer_server.prompts_received()[-1]["prompt"]
    assert sent["9"]["inputs"]["length"] == sent["11"]["inputs"]["frames_number"] == 25
    assert res.num_frames == 27 and maker.version("ltx-2-v1") == res.workflow_version


def _keyframe_jobs(
    tmp_path: Path, n: int, folder: str, cancel_check: Callable[[], bool] | None = None
) -> list[KeyframeJob]:
    return [
        KeyframeJob(
            shot=SHOT.model_copy(update={"seed": 100 + i}),
            sentence_text=f"sentence {i}",
            section_title="x",
            style="",
            characters=[],
            out_path=tmp_path / folder / "proj.s0001" / f"k{i}.png",
            cancel_check=cancel_check,
        )
        for i in range(n)
    ]


def _one_by_one(maker: ComfyUIKeyframes, jobs: list[KeyframeJob]) -> list[ImageResult]:
    return [maker.make_keyframe(j) for j in jobs]


def _matches_server_output(server: FakeComfyUI, res: ImageResult) -> bool:
    """The keyframe is the server's output for its prompt (a flat colour), normalized."""
    [saved] = server.history[res.extra["prompt_id"]]["outputs"].values()
    [image] = saved["images"]
    with Image.open(server.root / image["type"] / image["subfolder"] / image["filename"]) as im:
        colour = im.convert("RGB").getpixel((0, 0))
    with Image.open(res.path) as im:
        return im.size == (1920, 1080) and im.format == "PNG" and im.getpixel((9, 9)) == colour


def _comparable(res: ImageResult) -> dict[str, Any]:
    """A result without what differs from run to run (prompt id, file names, timings)."""
    extra = {
        k: v for k, v in res.extra.items() if k not in ("prompt_id", "progress", "comfyui_files")
    }
    return {**res.model_dump(exclude={"path", "extra"}), **extra}


@pytest.mark.slow
def test_batched_keyframes_keep_the_server_queue_fed(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.3) as server:
        maker = ComfyUIKeyframes(comfyui=comfy(server.url))
        jobs = _keyframe_jobs(tmp_path, 5, "batch")
        batched = []
        for res in maker.make_keyframes(jobs):
            batched.append(res)
            time.sleep(0.1)  # the caller's own work on a result (recording it) takes a while
        times = sorted(server.job_times.values(), key=lambda t: t.number)
        assert [t.status for t in times] == ["success"] * 5
        for prev, nxt in itertools.pairwise(times):
            assert prev.ended is not None and nxt.started is not None
            assert nxt.received < prev.ended  # queued before the previous job ended
            # ...so the server starts it at once (its own thread hand-over, not our download)
            assert nxt.started - prev.ended < 0.25
        assert [r.path for r in batched] == [j.out_path for j in jobs]
        assert all(_matches_server_output(server, r) for r in batched)
        assert not list((tmp_path / "batch").rglob(".comfyui-*"))

        server.job_seconds = 0.05
        single = _one_by_one(maker, _keyframe_jobs(tmp_path, 5, "single"))
        assert all(_matches_server_output(server, r) for r in single)
        prompts = [p["prompt"] for p in server.prompts_received()]
    assert prompts[:5] == prompts[5:]  # the same workflows were queued
    assert [_comparable(r) for r in batched] == [_comparable(r) for r in single]


def test_batched_keyframe_failure_takes_the_next_job_off_the_server(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.3) as server:
        maker = ComfyUIKeyframes(comfyui=comfy(server.url))
        sampler = "16"  # the KSampler of flux-1-dev-v1
        server.error_node, server.error_jobs = sampler, {0}
        with pytest.raises(ServiceError) as alone:
            _one_by_one(maker, _keyframe_jobs(tmp_path, 1, "single"))

        server.error_jobs = {2}  # the batch's second job (numbers count from the one above)
        made: list[ImageResult] = []
        with pytest.raises(ServiceError) as batched:
            for res in maker.make_keyframes(_keyframe_jobs(tmp_path, 5, "batch")):
                made.append(res)
        assert str(batched.value) == str(alone.value) and not batched.value.retryable
        assert [r.path.name for r in made] == ["k0.png"]
        deadline = time.monotonic() + 5
        while not server.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.queue_empty()  # the third job neither runs nor waits
        times = sorted(server.job_times.values(), key=lambda t: t.number)[1:]
        assert len(times) == 3  # nothing was queued past the third job
        assert times[1].status == "error"
        third = times[2]
        assert third.status == "deleted" or (
            third.status == "error"
            and server.history[third.prompt_id]["status"]["messages"][-1][0]
            == "execution_interrupted"
        )
    assert not (tmp_path / "batch" / "k2.png").exists()
    assert not list((tmp_path / "batch").rglob(".comfyui-*"))


def test_batched_keyframes_stop_on_cancel(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.3) as server:
        maker = ComfyUIKeyframes(comfyui=comfy(server.url))
        made: list[ImageResult] = []
        with pytest.raises(ServiceError, match="cancelled"):
            for res in maker.make_keyframes(
                _keyframe_jobs(tmp_path, 4, "batch", cancel_check=lambda: len(made) >= 1)
            ):
                made.append(res)
        deadline = time.monotonic() + 5
        while not server.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.queue_empty() and len(made) == 1
        # jobs 0-2 were queued before the cancellation was seen, job 3 never
        times = sorted(server.job_times.values(), key=lambda t: t.number)
        assert len(times) == 3 and times[0].status == "success"
        assert times[1].prompt_id in {i.get("prompt_id") for i in server.interrupts}
        # job 2 waited behind job 1: deleted before job 1 was interrupted, so it never ran
        # (interrupting first hands the server to job 2, which then can only be interrupted)
        assert times[1].status == "error" and times[2].status == "deleted"
        assert server.deleted == [times[2].prompt_id]


@pytest.mark.slow
def test_batched_clips_match_one_by_one(server: FakeComfyUI, tmp_path: Path) -> None:
    maker = ComfyUIClips(comfyui=comfy(server.url), gen_width=320, gen_height=192)
    jobs = []
    for i in range(2):
        keyframe = tmp_path / f"kf{i}.png"
        Image.new("RGB", (640, 360), (0, 90, 20 * i)).save(keyframe)
        jobs.append(
            ClipJob(
                shot=SHOT,
                keyframe=keyframe,
                narration=write_wav(tmp_path / f"n{i}.wav", 0.5 + 0.4 * i),
                out_path=tmp_path / "batch" / f"c{i}.mp4",
            )
        )
    batched = list(maker.make_clips(jobs))
    single = [
        maker.make_clip(
            ClipJob(
                shot=j.shot,
                keyframe=j.keyframe,
                narration=j.narration,
                out_path=tmp_path / "single" / "batch" / j.out_path.name,
            ),
        )
        for j in jobs
    ]  # the same project folder ("batch"): the same output prefix
    prompts = [p["prompt"] for p in server.prompts_received()]
    assert prompts[:2] == prompts[2:]
    assert [r.num_frames for r in batched] == [r.num_frames for r in single] == [15, 27]
    assert all(r.path.is_file() for r in batched)
    uploads = [r.form["image"]["filename"] for r in server.requests_to("POST", "/upload/image")]
    assert [u.split("-")[0] for u in uploads] == ["kf0", "kf1"] * 2 and uploads[:2] == uploads[2:]

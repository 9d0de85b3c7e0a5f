"""The studio against its real backends' protocols: ComfyUI, Chatterbox TTS and an
OpenAI-compatible LLM (DeepSeek), each played by a protocol-faithful test server on 127.0.0.1.

The contract, end to end through `videogen.operations.render` with backends chosen only by
`BackendSettings` (the key read from the environment):

- every file is real: 1920x1080 PNG keyframes; H.264 1920x1080 clips with the narration muxed as
  AAC 48 kHz and exactly ``ceil(narration seconds * fps)`` decoded frames;
- ComfyUI receives the project's workflows bound to the shot: the positive prompt is the shot's
  image prompt (plus the style), the seed is the shot's seed, the size is bound, a cast member's
  LoRA and reference image are bound; a clip's LoadImage names the uploaded keyframe and its
  frame count follows from the narration;
- Chatterbox is asked for each sentence's text in the speaker's (or the project's) voice; the LLM
  writes all shots of a batch in one request;
- keyframe and clip materializations carry ``comfyui_prompt_id``, ``comfyui_server``,
  ``comfyui_seed`` and ``comfyui_workflow_version``; progress lines reach the run's Dagster log;
- a workflow the server refuses (HTTP 400 ``node_errors``) fails the keyframe step once, not
  retried, naming the node and the input; a generation past its timeout, a ``cancel_check``
  that turns True and a cancelled Dagster run each send ``POST /interrupt`` for the prompt.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from PIL import Image

from tests.support.servers.comfyui import SHARED, FakeComfyUI
from tests.support.servers.llm import OpenAICompatServer
from tests.support.servers.tts import ChatterboxServer
from videogen.operations import create_project, render, sync
from videogen.render_control import RenderFailed
from videogen_assets.context import key, read_shot
from videogen_assets.definitions import build_definitions
from videogen_domain.models import Shot
from videogen_resources.audio import wav_num_samples
from videogen_resources.base import KeyframeJob
from videogen_resources.comfyui import ComfyUIResource
from videogen_resources.comfyui_makers import ComfyUIKeyframes
from videogen_resources.errors import ServiceError
from videogen_resources.media import probe
from videogen_resources.settings import BackendSettings
from videogen_resources.workflows import load_workflow, newer_node_schemas
from videogen_store.characters import add_character, cast_add

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED / "object_info.json").is_file(), reason="recorded ComfyUI responses not found"
    ),
]

KEY = "sk-e2e-0123456789abcdef"
PROJECT = "volcanoes"
IDS = [f"{PROJECT}.s0001", f"{PROJECT}.s0002", f"{PROJECT}.s0003"]
SCRIPT = """# Fire below
The sky over the volcano glows red.
Ada and Bob climb the ash slope together.
> characters: Ada, Bob | speaker: Ada

## Afterwards
Life returns to the slopes.
"""
IMAGE_WF, VIDEO_WF = "flux-2-v1", "wan-2.2-v1"  # the project defaults
FLUX2_CLASSES = {
    "UNETLoader", "CLIPLoader", "VAELoader", "LoraLoaderModelOnly", "CLIPTextEncode",
    "FluxGuidance", "LoadImage", "ImageScaleToTotalPixels", "VAEEncode", "ReferenceLatent",
    "BasicGuider", "RandomNoise", "KSamplerSelect", "Flux2Scheduler", "EmptyFlux2LatentImage",
    "SamplerCustomAdvanced", "VAEDecode", "SaveImage",
}  # fmt: skip


def _comfyui(**kwargs: Any) -> FakeComfyUI:
    """A server new enough for the Flux 2 workflow (recorded nodes plus the newer schemas)."""
    server = FakeComfyUI(extra_nodes=newer_node_schemas(), version="0.7.0", **kwargs)
    server.start()
    return server


def _settings(
    comfy: FakeComfyUI, tts: ChatterboxServer, llm: OpenAICompatServer | None
) -> BackendSettings:
    return BackendSettings(
        tts="chatterbox",
        chatterbox_url=tts.url,
        comfyui_urls=[comfy.url],
        llm_base_url=f"{llm.url}/v1" if llm else None,
        llm_key_env="DEEPSEEK_API_KEY" if llm else None,
    )


def _new_project(root: Path, script: str, *, cast: bool) -> Path:
    folder, _ = create_project(root, title="Volcanoes", name=PROJECT, voice="narrator")
    if cast:
        face = root.parent / "ada.png"
        Image.new("RGB", (64, 48), (200, 120, 40)).save(face)
        add_character(
            root,
            name="Ada",
            description="a geologist in a red coat",
            images=[face],
            lora="ada.safetensors",
            lora_strength=0.8,
            voice="ada",
        )
        add_character(
            root,
            name="Bob",
            description="a tall guide with a grey beard",
            lora="bob.safetensors",
            lora_strength=0.6,
        )
        cast_add(root, PROJECT, "Ada")
        cast_add(root, PROJECT, "Bob")
    (folder / "script.md").write_text(script, encoding="utf-8")
    return folder


def _md(instance: dg.DagsterInstance, kind: str, sid: str) -> dict[str, Any]:
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key(PROJECT, kind), asset_partitions=[sid]), limit=1
    ).records[0]
    mat = rec.asset_materialization
    assert mat is not None
    return {"metadata": {k: v.value for k, v in mat.metadata.items()}, "tags": mat.tags or {}}


def _ran(server: FakeComfyUI, prompt_id: str) -> dict[str, Any]:
    """The workflow the server ran for ``prompt_id`` (exactly as it was posted)."""
    prompt: dict[str, Any] = server.history[prompt_id]["prompt"][2]
    assert any(p["prompt"] == prompt for p in server.prompts_received())
    return prompt


def _bound(prompt: dict[str, Any], workflow: str, slot: str) -> list[Any]:
    targets = load_workflow(workflow).binding.slots[slot].targets
    return [prompt[t.node]["inputs"][t.input] for t in targets]


@dataclass
class Rendered:
    root: Path
    folder: Path
    instance: dg.DagsterInstance
    comfy: FakeComfyUI
    tts: ChatterboxServer
    llm: OpenAICompatServer
    seconds: float


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    base = tmp_path_factory.mktemp("e2e")
    (base / "dagster").mkdir()
    with (
        pytest.MonkeyPatch.context() as mp,
        ChatterboxServer("openai") as tts,
        OpenAICompatServer(api_key=KEY) as llm,
        dg.instance_for_test(temp_dir=str(base / "dagster")) as instance,
    ):
        mp.setenv("DEEPSEEK_API_KEY", KEY)
        comfy = _comfyui()
        try:
            root = base / "studio"
            folder = _new_project(root, SCRIPT, cast=True)
            t0 = time.monotonic()
            render(root, PROJECT, instance=instance, settings=_settings(comfy, tts, llm))
            yield Rendered(root, folder, instance, comfy, tts, llm, time.monotonic() - t0)
        finally:
            comfy.close()


def test_every_file_is_real(rendered: Rendered) -> None:
    for sid in IDS:
        media = rendered.folder / "sentences" / sid
        with Image.open(media / "keyframe.png") as im:
            assert (im.format, im.size) == ("PNG", (1920, 1080))
        samples, rate = wav_num_samples(media / "narration.wav")
        clip = probe(media / "clip.mp4")
        assert clip.video is not None and clip.audio is not None
        assert (clip.video.codec, clip.video.width, clip.video.height) == ("h264", 1920, 1080)
        assert (clip.audio.codec, clip.audio.sample_rate) == ("aac", 48000)
        assert clip.video.frames == math.ceil(samples * clip.video.fps / rate - 1e-9)
    assert probe(rendered.folder / "rough_cut.mp4").video is not None


def test_keyframe_workflow_is_bound_to_the_shot(rendered: Rendered) -> None:
    for sid in IDS:
        shot = read_shot(rendered.folder / "sentences" / sid / "shot.json")
        assert shot.source == "llm"
        md = _md(rendered.instance, "keyframe", sid)["metadata"]
        prompt = _ran(rendered.comfy, md["comfyui_prompt_id"])
        assert {n["class_type"] for n in prompt.values()} <= FLUX2_CLASSES
        assert {"EmptyFlux2LatentImage", "SamplerCustomAdvanced", "SaveImage"} <= {
            n["class_type"] for n in prompt.values()
        }
        expected = shot.image_prompt
        if "documentary" not in expected.lower():
            expected = f"{expected}, documentary"
        assert _bound(prompt, IMAGE_WF, "prompt") == [expected]
        assert _bound(prompt, IMAGE_WF, "seed") == [shot.seed]
        assert _bound(prompt, IMAGE_WF, "width") == [1920, 1920]
        assert _bound(prompt, IMAGE_WF, "height") == [1088, 1088]  # 1080 up to a multiple of 16
        if sid == IDS[1]:  # Ada and Bob: both LoRAs, and Ada's reference image, are bound
            assert shot.characters == ("Ada", "Bob")
            assert _bound(prompt, IMAGE_WF, "lora_1_name") == ["ada.safetensors"]
            assert _bound(prompt, IMAGE_WF, "lora_1_strength") == [0.8]
            assert _bound(prompt, IMAGE_WF, "lora_2_name") == ["bob.safetensors"]
            assert _bound(prompt, IMAGE_WF, "lora_2_strength") == [0.6]
            [ref] = _bound(prompt, IMAGE_WF, "reference_image")
            stored = rendered.root / "characters"
            assert (rendered.comfy.root / "input" / ref).read_bytes() in {
                p.read_bytes() for p in stored.glob("*.png")
            }
        else:  # no cast member: the optional LoRA and reference nodes are bypassed
            assert {"4", "5", "10", "13"}.isdisjoint(prompt)


def test_clip_workflow_uploads_the_keyframe_and_fits_the_narration(rendered: Rendered) -> None:
    for sid in IDS:
        media = rendered.folder / "sentences" / sid
        shot = read_shot(media / "shot.json")
        md = _md(rendered.instance, "clip", sid)["metadata"]
        prompt = _ran(rendered.comfy, md["comfyui_prompt_id"])
        [uploaded] = _bound(prompt, VIDEO_WF, "image")
        assert (
            prompt[load_workflow(VIDEO_WF).binding.slots["image"].targets[0].node]["class_type"]
            == "LoadImage"
        )
        assert (rendered.comfy.root / "input" / uploaded).read_bytes() == (
            media / "keyframe.png"
        ).read_bytes()
        samples, rate = wav_num_samples(media / "narration.wav")
        need = math.ceil(round(samples / rate * 16, 6))  # the workflow's 16 fps
        [length] = _bound(prompt, VIDEO_WF, "frames")
        assert need <= length < need + 4 and (length - 1) % 4 == 0  # Wan wants 4k + 1 frames
        assert _bound(prompt, VIDEO_WF, "seed") == [shot.seed, shot.seed]
        assert _bound(prompt, VIDEO_WF, "prompt") == [shot.video_prompt]
        assert md["comfyui_generated_frames"] == str(need)


def test_chatterbox_and_llm_requests(rendered: Rendered) -> None:
    asked = [r.json for r in rendered.tts.requests if r.path.endswith("/audio/speech")]
    assert [(a["input"], a["voice"]) for a in asked] == [
        ("The sky over the volcano glows red.", "narrator"),  # the project's voice
        ("Ada and Bob climb the ash slope together.", "ada"),  # the speaker's voice
        ("Life returns to the slopes.", "narrator"),
    ]
    shot_requests = [
        r for r in rendered.llm.requests
        if r.path.endswith("/chat/completions") and "Sentences (json)" in json.dumps(r.json)
    ]  # fmt: skip
    assert len(shot_requests) == 1  # all three sentences in one batched request
    assert shot_requests[0].header("Authorization") == f"Bearer {KEY}"
    body = json.dumps(shot_requests[0].json)
    assert all(text in body for text in ("glows red", "ash slope together", "Life returns"))


def test_materializations_name_prompt_server_seed_and_workflow(rendered: Rendered) -> None:
    for kind, workflow in (("keyframe", IMAGE_WF), ("clip", VIDEO_WF)):
        version = load_workflow(workflow).version
        for sid in IDS:
            got = _md(rendered.instance, kind, sid)
            md, tags = got["metadata"], got["tags"]
            shot = read_shot(rendered.folder / "sentences" / sid / "shot.json")
            assert md["comfyui_prompt_id"] in rendered.comfy.history
            assert md["comfyui_server"] == rendered.comfy.url
            assert md["comfyui_seed"] == str(shot.seed)
            assert md["comfyui_workflow"] == workflow
            assert md["comfyui_workflow_version"] == md["workflow_version"] == version
            assert not any(k.startswith("comfyui_comfyui") for k in md)
            assert md["engine"] == "comfyui"
            # the code version names the workflow that really ran
            assert tags["dagster/code_version"].startswith(version)
        assert KEY not in json.dumps(md)


def test_progress_reaches_the_run_log(rendered: Rendered) -> None:
    lines = [
        e.user_message
        for run in rendered.instance.get_runs()
        for e in rendered.instance.all_logs(run.run_id)
        if e.user_message
    ]
    assert sum("queued prompt" in x for x in lines) == 6  # 3 keyframes + 3 clips
    assert any("ComfyUI: node" in x and "step" in x for x in lines)
    assert any(x.startswith("conforming ") for x in lines)
    assert sum(x.startswith("chatterbox: ") for x in lines) == 3
    assert any(x.startswith("LLM wrote 3 shots") for x in lines)
    assert rendered.seconds < 60


def test_refused_workflow_fails_the_keyframe_step_naming_node_and_input(
    studio_root: Path, instance: dg.DagsterInstance
) -> None:
    # The server has none of the workflow's model files: ComfyUI answers 400 node_errors.
    comfy = _comfyui(models=["some-other-model.safetensors"])
    try:
        with ChatterboxServer("openai") as tts:
            _new_project(studio_root, "# One\nThe sky glows red.\n", cast=False)
            # a failed render raises RenderFailed (one line: the step's root cause and the log
            # file), still naming the node and input ComfyUI refused
            with pytest.raises(
                RenderFailed, match=r"node 1 \(UNETLoader\) input 'unet_name'"
            ) as refused:
                render(
                    studio_root, PROJECT, instance=instance, settings=_settings(comfy, tts, None)
                )
            assert refused.value.log_file is not None and refused.value.log_file.is_file()
        assert len(comfy.requests_to("POST", "/prompt")) == 1  # refused once, never retried
        failed = [
            r for r in instance.get_runs()
            if r.status == dg.DagsterRunStatus.FAILURE
        ]  # fmt: skip
        assert len(failed) == 1
        messages = [
            json.dumps(e.dagster_event.event_specific_data, default=str)
            for e in instance.all_logs(failed[0].run_id)
            if e.dagster_event is not None and e.dagster_event.is_step_failure
        ]
        assert len(messages) == 1, messages
        assert "node 1 (UNETLoader) input 'unet_name'" in messages[0]
        assert "Value not in list" in messages[0]
        assert "flux2_dev_fp8mixed.safetensors" in messages[0]
    finally:
        comfy.close()


SHOT = Shot(
    image_prompt="a volcano at dusk",
    video_prompt="slow push-in",
    negative_prompt="blurry",
    seed=4242,
)


def _slow_keyframe(
    comfy: FakeComfyUI,
    out: Path,
    *,
    timeout_s: float,
    cancel: Callable[[], bool] | None,
    lines: list[str],
) -> None:
    maker = ComfyUIKeyframes(
        comfyui=ComfyUIResource(urls=[comfy.url], timeout_s=timeout_s, poll_interval_s=0.1),
        workflow=IMAGE_WF,
    )
    maker.make_keyframe(
        KeyframeJob(
            shot=SHOT,
            sentence_text="x",
            section_title="x",
            style="",
            characters=[],
            out_path=out,
            progress=lines.append,
            cancel_check=cancel,
        ),
    )


def _interrupted(comfy: FakeComfyUI) -> str:
    """The one prompt's id, once the server has recorded it as interrupted."""
    [posted] = comfy.requests_to("POST", "/interrupt")
    pid = str(posted.json["prompt_id"])
    deadline = time.monotonic() + 5
    while pid not in comfy.history and time.monotonic() < deadline:
        time.sleep(0.02)
    assert comfy.history[pid]["status"]["messages"][-1][0] == "execution_interrupted"
    return pid


def test_timeout_interrupts_the_prompt(tmp_path: Path) -> None:
    comfy = _comfyui(job_seconds=30)
    try:
        t0 = time.monotonic()
        with pytest.raises(ServiceError, match="timeout and was interrupted"):
            _slow_keyframe(comfy, tmp_path / "k.png", timeout_s=0.8, cancel=None, lines=[])
        assert time.monotonic() - t0 < 10
        _interrupted(comfy)
        assert not (tmp_path / "k.png").exists()
    finally:
        comfy.close()


def test_cancel_check_interrupts_mid_generation(tmp_path: Path) -> None:
    comfy = _comfyui(job_seconds=30)
    comfy.sampler_steps = 60  # a progress message every half second
    lines: list[str] = []
    try:
        with pytest.raises(ServiceError, match="cancelled"):
            _slow_keyframe(
                comfy,
                tmp_path / "k.png",
                timeout_s=60,
                cancel=lambda: any(" step " in x for x in lines),
                lines=lines,
            )
        _interrupted(comfy)
        assert not (tmp_path / "k.png").exists()
    finally:
        comfy.close()


def test_cancelling_the_dagster_run_interrupts_the_prompt(
    studio_root: Path, instance: dg.DagsterInstance
) -> None:
    comfy = _comfyui(job_seconds=60)
    try:
        with ChatterboxServer("openai") as tts:
            settings = _settings(comfy, tts, None)
            _new_project(studio_root, "# One\nThe sky glows red.\n", cast=False)
            sync(studio_root, PROJECT, instance=instance)
            defs = build_definitions(studio_root, settings)
            assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
            resources = dict(defs.resources or {})

            def run(kind: str) -> dg.ExecuteInProcessResult:
                return dg.materialize(
                    assets,
                    instance=instance,
                    resources=resources,
                    selection=[key(PROJECT, kind)],
                    partition_key=IDS[0],
                    raise_on_error=False,
                )

            assert run("shot").success
            results: list[dg.ExecuteInProcessResult] = []
            worker = threading.Thread(target=lambda: results.append(run("keyframe")))
            t0 = time.monotonic()
            worker.start()
            while not comfy.requests_to("POST", "/prompt") and time.monotonic() - t0 < 20:
                time.sleep(0.05)
            assert comfy.requests_to("POST", "/prompt"), "the keyframe was never queued"
            [started] = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED]
            instance.report_run_canceling(started)
            worker.join(30)
            assert not worker.is_alive() and time.monotonic() - t0 < 20
        _interrupted(comfy)
        assert len(comfy.requests_to("POST", "/prompt")) == 1  # a cancelled run is not retried
        assert not results[0].success
        assert not (
            studio_root / "projects" / PROJECT / "sentences" / IDS[0] / "keyframe.png"
        ).exists()
    finally:
        comfy.close()

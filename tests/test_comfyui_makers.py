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

import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from videogen.models import Shot
from videogen_resources.base import CharacterRef
from videogen_resources.comfyui import ComfyUIResource
from videogen_resources.comfyui_makers import ComfyUIClips, ComfyUIKeyframes
from videogen_resources.errors import ServiceError
from videogen_resources.workflows import load_workflow, newer_node_schemas

try:
    from tests.servers.comfyui import SHARED, FakeComfyUI, running_comfyui
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from servers.comfyui import SHARED, FakeComfyUI, running_comfyui  # type: ignore[no-redef]

pytestmark = pytest.mark.skipif(not (SHARED / "object_info.json").is_file(),
                                reason=f"recorded ComfyUI responses not found in {SHARED}")

SHOT = Shot(image_prompt="a volcano at dusk", video_prompt="lava flows slowly, camera pushes in",
            negative_prompt="blurry, text", seed=1234, characters=("Ada",))


@pytest.fixture
def server() -> Iterator[FakeComfyUI]:
    with running_comfyui(job_seconds=0.05) as srv:
        yield srv


@pytest.fixture
def newer_server() -> Iterator[FakeComfyUI]:
    with running_comfyui(job_seconds=0.05, extra_nodes=newer_node_schemas(),
                         version="0.7.0") as srv:
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
    return CharacterRef(name="Ada", reference_image=ref, lora="ada.safetensors",
                        lora_strength=0.8)


def test_keyframe_flux1_with_lora_and_reference(server: FakeComfyUI, tmp_path: Path) -> None:
    # a file of the same name already on the server: ours is renamed and bound as renamed
    server.add_input_file("ada.png", b"other bytes")
    maker = ComfyUIKeyframes(comfyui=comfy(server.url), workflow="flux-1-dev-v1")
    lines: list[str] = []
    out = tmp_path / "kf" / "s0001.png"
    res = maker.make_keyframe(shot=SHOT, sentence_text="Volcanoes erupt.", section_title="Intro",
                              style="documentary photo", characters=[ada(tmp_path)],
                              out_path=out, progress=lines.append)
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
    assert sent["10"]["inputs"]["image"] == "ada (1).png"
    assert server.requests_to("POST", "/upload/image")[0].form["image"]["filename"] == "ada.png"
    assert res.extra["prompt_id"] and res.extra["server"] == server.url
    assert res.extra["workflow"] == "flux-1-dev-v1" and res.extra["seed"] == 1234
    assert res.extra["progress"]["sampler_steps"] > 0
    assert not list(out.parent.glob(".comfyui-*"))  # temporary downloads cleaned up
    assert lines


def test_keyframe_without_characters_bypasses_optional_nodes(server: FakeComfyUI,
                                                             tmp_path: Path) -> None:
    maker = ComfyUIKeyframes(comfyui=comfy(server.url))
    maker.make_keyframe(shot=SHOT, sentence_text="x", section_title="x", style="",
                        characters=[], out_path=tmp_path / "k.png")
    sent = server.prompts_received()[-1]["prompt"]
    assert {"4", "5", "10", "14"}.isdisjoint(sent)
    assert not server.requests_to("POST", "/upload/image")


def test_flux2_needs_a_newer_server(server: FakeComfyUI, newer_server: FakeComfyUI,
                                    tmp_path: Path) -> None:
    old = ComfyUIKeyframes(comfyui=comfy(server.url), workflow="flux-2-v1")
    with pytest.raises(ServiceError) as err:
        old.make_keyframe(shot=SHOT, sentence_text="x", section_title="x", style="",
                          characters=[], out_path=tmp_path / "k.png")
    msg = str(err.value)
    assert "EmptyFlux2LatentImage, Flux2Scheduler" in msg and "ComfyUI >= 0.3.72" in msg
    assert "0.3.64" in msg and not server.requests_to("POST", "/prompt")
    new = ComfyUIKeyframes(comfyui=comfy(newer_server.url), workflow="flux-2-v1")
    res = new.make_keyframe(shot=SHOT, sentence_text="x", section_title="x", style="",
                            characters=[ada(tmp_path)], out_path=tmp_path / "k.png")
    sent = newer_server.prompts_received()[-1]["prompt"]
    assert sent["21"]["inputs"]["noise_seed"] == 1234 and "7" in sent and "13" in sent
    assert sent["24"]["inputs"]["width"] == sent["23"]["inputs"]["width"] == 1920
    assert res.workflow_version == load_workflow("flux-2-v1").version


def test_object_info_is_cached_per_server(server: FakeComfyUI, tmp_path: Path) -> None:
    maker = ComfyUIKeyframes(comfyui=comfy(server.url))
    for i in range(2):
        maker.make_keyframe(shot=SHOT, sentence_text="x", section_title="x", style="",
                            characters=[], out_path=tmp_path / f"k{i}.png")
    assert len(server.requests_to("GET", "/object_info")) == 1


@pytest.mark.parametrize(("workflow", "fps", "step"), [("wan-2.2-v1", 16, 4),
                                                       ("ltx-video-v1", 24, 8)])
def test_clip_frames_from_narration(server: FakeComfyUI, tmp_path: Path, workflow: str,
                                    fps: int, step: int) -> None:
    keyframe = tmp_path / "kf.png"
    Image.new("RGB", (1920, 1080), (0, 90, 200)).save(keyframe)
    narration = write_wav(tmp_path / "n.wav", 1.3)
    maker = ComfyUIClips(comfyui=comfy(server.url), workflow=workflow, gen_width=320,
                         gen_height=192)
    out = tmp_path / "clips" / "s0001.mp4"
    res = maker.make_clip(shot=SHOT, keyframe=keyframe, narration=narration, out_path=out)
    sent = server.prompts_received()[-1]["prompt"]
    wf = load_workflow(workflow)
    need = math.ceil(1.3 * fps)
    length_target = wf.binding.slots["frames"].targets[0]
    length = sent[length_target.node]["inputs"][length_target.input]
    assert length >= need and (length - 1) % step == 0 and length - need < step
    image_target = wf.binding.slots["image"].targets[0]
    assert sent[image_target.node]["inputs"]["image"] == "kf.png"
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


def test_ltx2_clip_on_newer_server(newer_server: FakeComfyUI, tmp_path: Path) -> None:
    keyframe = tmp_path / "kf.png"
    Image.new("RGB", (640, 360), (0, 90, 200)).save(keyframe)
    maker = ComfyUIClips(comfyui=comfy(newer_server.url), workflow="ltx-2-v1", gen_width=320,
                         gen_height=192)
    res = maker.make_clip(shot=SHOT, keyframe=keyframe,
                          narration=write_wav(tmp_path / "n.wav", 0.9),
                          out_path=tmp_path / "c.mp4", workflow="ltx-2-v1")
    sent = newer_server.prompts_received()[-1]["prompt"]
    assert sent["9"]["inputs"]["length"] == sent["11"]["inputs"]["frames_number"] == 25
    assert res.num_frames == 27 and maker.version("ltx-2-v1") == res.workflow_version

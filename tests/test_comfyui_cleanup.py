"""Contract: the studio keeps ComfyUI's input/ and output/ folders from growing without bound.

ComfyUI (0.3.x) has no HTTP endpoint that deletes a file in input/ or output/ (only queue and
history entries), so: every upload and output goes below ``videogen/<project>/`` (one folder to
clean per project); an upload is named by the picture's hash and overwritten, so the same picture
is stored once however often it is sent; and when the server's folder is visible from the studio
(``comfyui_dir`` / ``COMFYUI_DIR``) each output is deleted there once downloaded, and a
clip's keyframe upload (its own) once the clip is made, unless
``cleanup`` is off (``COMFYUI_CLEANUP=0``). Nothing outside the studio's own folder is touched.
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.support.servers.comfyui import SHARED, FakeComfyUI, running_comfyui
from videogen_domain.models import Shot
from videogen_resources.base import CharacterRef, ClipJob, KeyframeJob
from videogen_resources.comfyui import ComfyUIResource, OutputFile
from videogen_resources.comfyui_makers import ComfyUIClips, ComfyUIKeyframes

pytestmark = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)

SHOT = Shot(image_prompt="a volcano", video_prompt="lava", seed=3, characters=("Ada",))


@pytest.fixture
def server() -> Iterator[FakeComfyUI]:
    with running_comfyui(job_seconds=0.05) as srv:
        yield srv


def _maker(server: FakeComfyUI, **kw: object) -> ComfyUIKeyframes:
    comfy = ComfyUIResource(urls=[server.url], poll_interval_s=0.1, timeout_s=60, **kw)
    return ComfyUIKeyframes(comfyui=comfy, workflow="flux-1-dev-v1")


def _keyframe(maker: ComfyUIKeyframes, out: Path, ref: Path) -> dict[str, object]:
    ada = CharacterRef(name="Ada", reference_image=ref)
    res = maker.make_keyframe(
        KeyframeJob(
            shot=SHOT,
            sentence_text="x",
            section_title="x",
            style="",
            characters=[ada],
            out_path=out,
        )
    )
    return res.extra


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _ref(tmp_path: Path) -> Path:
    ref = tmp_path / "ada.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(ref)
    return ref


@pytest.mark.slow
def test_outputs_are_deleted_on_the_server_once_downloaded(
    server: FakeComfyUI, tmp_path: Path
) -> None:
    foreign = server.root / "output" / "ComfyUI_00001_.png"
    foreign.write_bytes(b"someone else's picture")
    other_project = server.root / "output" / "videogen" / "other" / "keyframe_00001_.png"
    other_project.parent.mkdir(parents=True)
    other_project.write_bytes(b"another project's picture")
    maker = _maker(server, comfyui_dir=str(server.root), cleanup=True)
    ref = _ref(tmp_path)
    outs = [tmp_path / "studio" / f"volcanoes.s000{i}" / "keyframe.png" for i in (1, 2)]
    for out in outs:
        _keyframe(maker, out, ref)
        assert out.is_file()
    # both outputs were written below the project's folder, then deleted there
    for prompt in server.prompts_received():
        assert prompt["prompt"]["18"]["inputs"]["filename_prefix"] == "videogen/volcanoes/keyframe"
    assert _files(server.root / "output") == [
        "ComfyUI_00001_.png",
        "videogen/other/keyframe_00001_.png",
    ]
    # the reference picture was sent twice and is stored once
    uploads = _files(server.root / "input" / "videogen" / "volcanoes")
    assert len(server.requests_to("POST", "/upload/image")) == 2 and len(uploads) == 1


@pytest.mark.slow
def test_cleanup_off_or_no_folder_keeps_the_outputs(server: FakeComfyUI, tmp_path: Path) -> None:
    ref = _ref(tmp_path)
    _keyframe(_maker(server, comfyui_dir=str(server.root), cleanup=False),
              tmp_path / "p.s0001" / "keyframe.png", ref)  # fmt: skip
    _keyframe(_maker(server, comfyui_dir=None), tmp_path / "p.s0002" / "keyframe.png", ref)
    assert len(_files(server.root / "output" / "videogen" / "p")) == 2


def test_only_the_studios_own_outputs_are_ever_deleted(tmp_path: Path) -> None:
    base = tmp_path / "ComfyUI"
    for rel in ("output/videogen/p/a.png", "output/elsewhere/b.png", "input/videogen/p/c.png",
                "output/d.png"):  # fmt: skip
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(b"x")
    comfy = ComfyUIResource(urls=["http://127.0.0.1:9"], comfyui_dir=str(base))
    removed = comfy.remove_server_files(
        [
            OutputFile(node_id="1", filename="a.png", subfolder="videogen/p"),
            OutputFile(node_id="1", filename="b.png", subfolder="elsewhere"),
            OutputFile(node_id="1", filename="c.png", subfolder="videogen/p", type="input"),
            OutputFile(node_id="1", filename="d.png", subfolder=""),
            OutputFile(node_id="1", filename="a.png", subfolder="videogen/../elsewhere"),
            OutputFile(node_id="1", filename="../d.png", subfolder="videogen/p"),
        ]
    )
    assert removed == [(base / "output/videogen/p/a.png").resolve()]
    assert _files(base) == ["input/videogen/p/c.png", "output/d.png", "output/elsewhere/b.png"]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMFYUI_DIR", str(tmp_path))
    monkeypatch.setenv("COMFYUI_CLEANUP", "0")
    comfy = ComfyUIResource(urls=["http://127.0.0.1:9"])
    assert comfy.comfyui_dir == str(tmp_path) and comfy.cleanup is False
    monkeypatch.delenv("COMFYUI_DIR")
    monkeypatch.delenv("COMFYUI_CLEANUP")
    comfy = ComfyUIResource(urls=["http://127.0.0.1:9"])
    assert comfy.comfyui_dir is None and comfy.cleanup is True


@pytest.mark.slow
def test_a_clips_keyframe_upload_and_output_are_deleted_once_made(
    server: FakeComfyUI, tmp_path: Path
) -> None:
    keyframe = tmp_path / "keyframe.png"
    Image.new("RGB", (640, 360), (10, 90, 20)).save(keyframe)
    narration = tmp_path / "narration.wav"
    with wave.open(str(narration), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(struct.pack("<h", 0) * 24000)
    comfy = ComfyUIResource(
        urls=[server.url], poll_interval_s=0.1, timeout_s=60, comfyui_dir=str(server.root)
    )
    maker = ComfyUIClips(comfyui=comfy, workflow="wan-2.2-v1", gen_width=320, gen_height=192)
    out = tmp_path / "studio" / "volcanoes.s0001" / "clip.mp4"
    res = maker.make_clip(ClipJob(shot=SHOT, keyframe=keyframe, narration=narration, out_path=out))
    assert out.is_file() and res.num_frames == 15
    assert len(server.requests_to("POST", "/upload/image")) == 1
    assert _files(server.root / "input") == []
    assert _files(server.root / "output") == []

"""Contract: the size a model generates is never hidden.

A binding's ``maximum`` scales width and height down together (a 16:9 request stays 16:9, not
square); a keyframe records the size asked for and the size the model made (metadata, and a PNG
text chunk in the file itself), and the keyframe asset's ``upscaled_at_most_2x`` check warns
(severity WARN, the run goes on) when a picture was enlarged more than 2x — against the test
server in its small-images mode.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from PIL import Image

from tests.support.servers.comfyui import SHARED, FakeComfyUI, running_comfyui
from videogen.operations import create_project, render
from videogen_domain.models import Shot
from videogen_resources.base import KeyframeJob
from videogen_resources.comfyui import ComfyUIResource
from videogen_resources.comfyui_makers import ComfyUIKeyframes, generated_size
from videogen_resources.settings import BackendSettings
from videogen_resources.workflows import load_workflow, newer_node_schemas, workflows_root

pytestmark = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)

SHOT = Shot(image_prompt="a volcano at dusk", video_prompt="lava flows", seed=7)


@pytest.fixture
def server() -> Iterator[FakeComfyUI]:
    with running_comfyui(job_seconds=0.05) as srv:
        yield srv


def _capped_registry(tmp_path: Path, maximum: int) -> Path:
    root = tmp_path / "workflows"
    shutil.copytree(workflows_root(), root)
    binding = root / "image" / "flux-1-dev-v1.binding.yaml"
    text = binding.read_text()
    for side in ("width", "height"):
        old = f'{side}: {{node: "15", input: {side}, multiple_of: 16}}'
        assert old in text
        text = text.replace(old, old[:-1] + f", maximum: {maximum}}}")
    binding.write_text(text)
    return root


def test_maximum_keeps_the_aspect(tmp_path: Path) -> None:
    wf = load_workflow("flux-1-dev-v1", _capped_registry(tmp_path, 1024))
    assert wf.fit_size(1920, 1080) == (1024, 576)  # 16:9 stays 16:9
    assert wf.fit_size(1080, 1920) == (576, 1024)
    assert wf.fit_size(4000, 1000) == (1024, 256)
    assert wf.fit_size(800, 450) == (800, 464)  # under the cap: only rounded (up, to 16)
    prompt = wf.apply({"prompt": "x", "width": 1920, "height": 1080})
    assert (prompt["15"]["inputs"]["width"], prompt["15"]["inputs"]["height"]) == (1024, 576)
    # a maximum that is no multiple: rounded within the cap, aspect within one rounding step
    w, h = load_workflow("flux-1-dev-v1", _capped_registry(tmp_path / "b", 1000)).fit_size(
        1920, 1080
    )
    assert w <= 1000 and h <= 1000 and abs(w / h - 16 / 9) < 0.1


def test_capped_request_reaches_the_server_with_its_aspect(
    server: FakeComfyUI, tmp_path: Path
) -> None:
    maker = ComfyUIKeyframes(
        comfyui=ComfyUIResource(urls=[server.url], poll_interval_s=0.1, timeout_s=60),
        workflow="flux-1-dev-v1",
        workflows_dir=str(_capped_registry(tmp_path, 1024)),
    )
    out = tmp_path / "k.png"
    res = maker.make_keyframe(
        KeyframeJob(
            shot=SHOT, sentence_text="x", section_title="x", style="", characters=[], out_path=out
        )
    )
    sent = server.prompts_received()[-1]["prompt"]["15"]["inputs"]
    assert (sent["width"], sent["height"]) == (1024, 576)
    assert res.extra["requested_size"] == res.extra["generated_size"] == "1024x576"
    assert res.extra["upscale"] == 1.88
    assert generated_size(out) == (1024, 576)


@pytest.mark.parametrize(
    ("scale", "made", "upscale"), [(1 / 30, (64, 36), 30.0), (1.0, (1920, 1088), 1.0)]
)
def test_generated_size_is_recorded(
    server: FakeComfyUI,
    tmp_path: Path,
    scale: float,
    made: tuple[int, int],
    upscale: float,
) -> None:
    server.image_scale = scale
    maker = ComfyUIKeyframes(
        comfyui=ComfyUIResource(urls=[server.url], poll_interval_s=0.1, timeout_s=60),
        workflow="flux-1-dev-v1",
    )
    out = tmp_path / "k.png"
    res = maker.make_keyframe(
        KeyframeJob(
            shot=SHOT, sentence_text="x", section_title="x", style="", characters=[], out_path=out
        )
    )
    with Image.open(out) as im:
        assert im.size == (1920, 1080)
    assert res.extra["requested_size"] == "1920x1088"
    assert res.extra["generated_size"] == f"{made[0]}x{made[1]}"
    assert res.extra["upscale"] == upscale
    assert generated_size(out) == made


def _check_evaluations(instance: dg.DagsterInstance, name: str) -> list[Any]:
    from dagster import DagsterEventType

    found = []
    for run in instance.get_runs():
        for rec in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records:
            event = rec.event_log_entry.dagster_event
            assert event is not None
            evaluation = event.event_specific_data
            if getattr(evaluation, "check_name", None) == name:
                found.append(evaluation)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sentences", [1, 2])
def test_upscale_check_warns_on_small_images(
    studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance, sentences: int
) -> None:
    script = tmp_path / "s.md"
    lines = ["# Fire", "Magma rises.", "Lava flows."][: 1 + sentences]
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    create_project(studio_root, title="Small", name="small", script_file=script, instance=instance)
    with running_comfyui(
        job_seconds=0.05, extra_nodes=newer_node_schemas(), version="0.7.0"
    ) as comfy:
        comfy.image_scale = 1 / 16
        render(
            studio_root,
            "small",
            instance=instance,
            settings=BackendSettings(comfyui_urls=[comfy.url]),
        )
    (evaluation,) = _check_evaluations(instance, "upscaled_at_most_2x")
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    md = {k: v.value for k, v in evaluation.metadata.items()}
    if sentences == 1:
        assert md["generated_size"] == "120x68" and md["upscale"] == 16.0
    else:
        assert md["sentences_failed"] == 2
    # the materialization records the sizes too
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["small", "keyframe"])), limit=1
    ).records[0]
    mat = rec.asset_materialization
    assert mat is not None
    assert mat.metadata["comfyui_generated_size"].value == "120x68"
    assert mat.metadata["comfyui_requested_size"].value == "1920x1088"
    # the size check still passes: the file is 1920x1080
    (size_check,) = _check_evaluations(instance, "is_1920x1080")
    assert size_check.passed is True

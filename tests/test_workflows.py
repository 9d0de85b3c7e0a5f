"""Contract: registered ComfyUI workflows are valid graphs whose bindings fit them.

Every shipped workflow (videogen_resources/workflows_data/workflows.yaml) validates against the
recorded ComfyUI 0.3.64 node definitions (those whose nodes exist there) and against the Flux 2 /
LTX-2 node schemas established from ComfyUI's source; bad files give errors naming the file and
field; binding application sets values, rounds frames, bypasses unused LoRA/reference nodes; the
version is a content hash that changes when the workflow or binding changes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from videogen_resources.comfyui import parse_version
from videogen_resources.workflows import (
    WorkflowError,
    list_workflows,
    load_registry,
    load_workflow,
    missing_nodes,
    newer_node_schemas,
    validate_workflow,
    workflows_root,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "comfyui"
needs_recording = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)
RECORDED_VERSION = "0.3.64"


def recorded() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((SHARED / "object_info.json").read_text())
    return raw


def newer() -> dict[str, Any]:
    info = recorded()
    info.update(newer_node_schemas())
    return info


def test_registry_lists_the_five_workflows() -> None:
    reg = load_registry()
    assert set(reg) == {"flux-2-v1", "flux-1-dev-v1", "wan-2.2-v1", "ltx-2-v1", "ltx-video-v1"}
    assert set(list_workflows("image")) == {"flux-2-v1", "flux-1-dev-v1"}
    for name, entry in reg.items():
        wf = load_workflow(name)
        assert wf.kind == entry.kind and wf.description
        assert wf.binding_path.name == wf.path.name.replace(".json", ".binding.yaml")
        assert "prompt" in wf.slots and "seed" in wf.slots
        if wf.kind == "video":
            assert {"frames", "fps", "image"} <= wf.slots


@pytest.mark.slow
@needs_recording
@pytest.mark.parametrize(
    "name", ["flux-1-dev-v1", "wan-2.2-v1", "ltx-video-v1", "flux-2-v1", "ltx-2-v1"]
)
def test_workflow_validates_against_recorded_nodes_or_newer_schemas(name: str) -> None:
    wf = load_workflow(name)
    missing = missing_nodes(wf, recorded())
    old_enough = parse_version(wf.min_comfyui_version) <= parse_version(RECORDED_VERSION)
    assert (missing == []) == old_enough, missing
    info = recorded() if not missing else newer()
    assert [str(p) for p in validate_workflow(wf, info)] == []
    # every variant the studio sends validates too: all optional parts used, and none
    full = wf.apply(_values(wf, everything=True))
    bare = wf.apply(_values(wf, everything=False))
    assert [str(p) for p in validate_workflow(full, info)] == []
    assert [str(p) for p in validate_workflow(bare, info)] == []
    assert len(bare) < len(full) or not any(s.bypass for s in wf.binding.slots.values())


def test_newer_nodes_are_absent_from_the_recording() -> None:
    if not (SHARED / "object_info.json").is_file():
        pytest.skip(f"recorded ComfyUI responses not found in {SHARED}")
    assert missing_nodes(load_workflow("flux-2-v1"), recorded()) == [
        "EmptyFlux2LatentImage",
        "Flux2Scheduler",
    ]
    assert "LTXAVTextEncoderLoader" in missing_nodes(load_workflow("ltx-2-v1"), recorded())


def _values(wf: Any, *, everything: bool) -> dict[str, Any]:
    v: dict[str, Any] = {"prompt": "a red fox", "seed": 7}
    if wf.has_slot("image"):
        v["image"] = "keyframe.png"
    if everything:
        for slot in wf.slots:
            if slot.endswith("_name"):
                v[slot] = "fox.safetensors"
        if wf.has_slot("reference_image"):
            v["reference_image"] = "fox.png"
    return v


def test_binding_application_sets_values_and_rounds_frames() -> None:
    wf = load_workflow("ltx-2-v1")
    p = wf.apply(
        {
            "prompt": "waves",
            "negative_prompt": "blur",
            "seed": 42,
            "frames": 100,
            "fps": 25,
            "image": "k.png",
            "width": 1280,
            "height": 720,
        }
    )
    assert p["6"]["inputs"]["text"] == "waves" and p["7"]["inputs"]["text"] == "blur"
    assert p["15"]["inputs"]["noise_seed"] == 42
    assert p["9"]["inputs"]["length"] == 105 and p["11"]["inputs"]["frames_number"] == 105
    assert p["9"]["inputs"]["height"] == 736  # rounded up to a multiple of 32
    assert p["8"]["inputs"]["frame_rate"] == 25.0 and p["11"]["inputs"]["frame_rate"] == 25
    assert p["21"]["inputs"]["fps"] == 25.0
    assert p["4"]["inputs"]["image"] == "k.png"
    assert wf.prompt["6"]["inputs"]["text"] != "waves"  # the template is untouched
    wan = load_workflow("wan-2.2-v1").apply({"prompt": "x", "image": "k.png", "frames": 50})
    assert wan["8"]["inputs"]["length"] == 53  # 4k + 1
    long = load_workflow("wan-2.2-v1").apply({"prompt": "x", "image": "k.png", "frames": 900})
    assert long["8"]["inputs"]["length"] == 161  # capped at the binding's maximum


def test_unused_lora_and_reference_nodes_are_bypassed() -> None:
    wf = load_workflow("flux-1-dev-v1")
    bare = wf.apply({"prompt": "x"})
    assert {"4", "5", "10", "11", "12", "13", "14"}.isdisjoint(bare)
    assert bare["16"]["inputs"]["model"] == ["1", 0]  # rewired around both LoRA nodes
    assert bare["6"]["inputs"]["clip"] == ["2", 0]
    assert bare["16"]["inputs"]["positive"] == ["7", 0]  # around StyleModelApply
    one = wf.apply(
        {
            "prompt": "x",
            "lora_1_name": "ada.safetensors",
            "lora_1_strength": 0.7,
            "reference_image": "ada.png",
        }
    )
    assert one["4"]["inputs"]["lora_name"] == "ada.safetensors"
    assert one["4"]["inputs"]["strength_clip"] == 0.7 and "5" not in one
    assert one["6"]["inputs"]["clip"] == ["4", 1] and one["16"]["inputs"]["model"] == ["4", 0]
    assert one["10"]["inputs"]["image"] == "ada.png"
    wan = load_workflow("wan-2.2-v1").apply({"prompt": "x", "image": "k.png"})
    assert wan["9"]["inputs"]["model"] == ["1", 0] and wan["10"]["inputs"]["model"] == ["2", 0]


def test_bad_inputs_give_clear_errors() -> None:
    wf = load_workflow("flux-2-v1")
    with pytest.raises(WorkflowError, match=r"no slot.*negative_prompt"):
        wf.apply({"prompt": "x", "negative_prompt": "y"})
    with pytest.raises(WorkflowError, match="needs a value for 'image'"):
        load_workflow("wan-2.2-v1").apply({"prompt": "x"})
    with pytest.raises(WorkflowError, match="unknown workflow 'nope'"):
        load_workflow("nope")


def _copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "workflows"
    shutil.copytree(workflows_root(), root)
    return root


def test_bad_files_name_the_file_and_field(tmp_path: Path) -> None:
    root = _copy_root(tmp_path)
    wf_file = root / "image" / "flux-2-v1.json"
    wf_file.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(WorkflowError, match=r"flux-2-v1\.json: .*Export \(API\)"):
        load_workflow("flux-2-v1", root)
    wf_file.write_text(json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(WorkflowError, match=r"flux-2-v1\.json: 1\.class_type: node has no"):
        load_workflow("flux-2-v1", root)
    wf_file.write_text("{not json")
    with pytest.raises(WorkflowError, match="not valid JSON"):
        load_workflow("flux-2-v1", root)
    shutil.copy(workflows_root() / "image" / "flux-2-v1.json", wf_file)
    binding = root / "image" / "flux-2-v1.binding.yaml"
    text = binding.read_text()
    binding.write_text(text.replace('seed: {node: "21"', 'seed: {node: "99"'))
    with pytest.raises(WorkflowError, match=r"binding\.yaml: slots\.seed: names node '99'"):
        load_workflow("flux-2-v1", root)
    binding.write_text(text.replace("input: noise_seed", "input: noise_sed"))
    with pytest.raises(WorkflowError, match=r"slots\.seed: names input 'noise_sed' of node 21"):
        load_workflow("flux-2-v1", root)
    binding.write_text(text.replace("output_node:", "output_nod:"))
    with pytest.raises(WorkflowError, match=r"binding\.yaml"):
        load_workflow("flux-2-v1", root)


@needs_recording
def test_validation_reports_each_problem() -> None:
    prompt = {
        "1": {"class_type": "NoSuchNode", "inputs": {}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 99999, "height": 8, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["7", 0]}},
        "4": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["3", 0], "filename_prefix": "x", "format": "mov", "codec": "auto"},
        },
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": "whatever.safetensors"}},
    }
    problems = [str(p) for p in validate_workflow(prompt, recorded())]
    assert "node 1 (NoSuchNode): node class 'NoSuchNode' does not exist on this server" in problems
    assert "node 2 (EmptyImage) input 'color': required input is missing (INT)" in problems
    assert "node 2 (EmptyImage) input 'width': value 99999 bigger than max of 16384" in problems
    assert (
        "node 3 (VAEDecode) input 'samples': wants LATENT but node 2 (EmptyImage) output 0 "
        "gives IMAGE"
    ) in problems
    assert "node 3 (VAEDecode) input 'vae': links to node '7', which does not exist" in problems
    assert (
        "node 4 (SaveVideo) input 'video': wants VIDEO but node 3 (VAEDecode) output 0 gives IMAGE"
    ) in problems
    assert any(p.startswith("node 4 (SaveVideo) input 'format': value 'mov'") for p in problems)
    assert not any("node 5" in p for p in problems)  # model files are not checked


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    root = _copy_root(tmp_path)
    v1 = load_workflow("wan-2.2-v1", root).version
    assert v1 == load_workflow("wan-2.2-v1").version and len(v1) == 12
    path = root / "video" / "wan-2.2-v1.json"
    data = json.loads(path.read_text())
    data["11"]["inputs"]["steps"] = 30
    path.write_text(json.dumps(data, indent=2))
    v2 = load_workflow("wan-2.2-v1", root).version
    assert v2 != v1
    binding = root / "video" / "wan-2.2-v1.binding.yaml"
    binding.write_text(binding.read_text() + "\n# a comment\n")
    assert load_workflow("wan-2.2-v1", root).version not in (v1, v2)


def test_adding_a_model_needs_no_code(tmp_path: Path) -> None:
    root = _copy_root(tmp_path)
    shutil.copy(root / "image" / "flux-1-dev-v1.json", root / "image" / "my-model-v1.json")
    shutil.copy(
        root / "image" / "flux-1-dev-v1.binding.yaml", root / "image" / "my-model-v1.binding.yaml"
    )
    reg = root / "workflows.yaml"
    reg.write_text(
        reg.read_text()
        + (
            "  my-model-v1:\n    file: image/my-model-v1.json\n    kind: image\n"
            '    min_comfyui_version: "0.3.64"\n    description: mine\n'
        )
    )
    wf = load_workflow("my-model-v1", root)
    assert wf.kind == "image" and wf.apply({"prompt": "x"})["6"]["inputs"]["text"] == "x"

"""Contract (live): the same ComfyUI flows work against a real server named by COMFYUI_URL.

Skipped unless COMFYUI_URL is set (comma-separated URLs allowed). Checks the server answers
every read operation, that a model-free graph runs end to end (queue, WebSocket, history,
download), that a bad graph is refused with readable node errors, and reports which registered
workflows the server can run (missing nodes name the minimum ComfyUI version).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from videogen_resources.comfyui import ComfyUIResource
from videogen_resources.comfyui_makers import check_server_nodes
from videogen_resources.errors import ServiceError
from videogen_resources.workflows import list_workflows, load_workflow

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("COMFYUI_URL"), reason="COMFYUI_URL is not set"),
]


@pytest.fixture
def comfy() -> ComfyUIResource:
    urls = [u.strip() for u in os.environ.get("COMFYUI_URL", "").split(",") if u.strip()]
    return ComfyUIResource(urls=urls, timeout_s=120)


def test_read_operations(comfy: ComfyUIResource) -> None:
    assert comfy.system_stats().comfyui_version
    assert "SaveImage" in comfy.object_info()
    assert comfy.queue().size >= 0
    assert comfy.history("00000000-0000-0000-0000-000000000000") is None


def test_model_free_graph_runs_end_to_end(comfy: ComfyUIResource, tmp_path: Path) -> None:
    wf = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 255}},
        "2": {"class_type": "SaveImage",
              "inputs": {"images": ["1", 0], "filename_prefix": "videogen_live/probe"}},
    }
    res = comfy.run_workflow(wf, outputs_dir=tmp_path)
    assert len(res.files) == 1 and res.files[0].parent == tmp_path


def test_bad_graph_is_refused_readably(comfy: ComfyUIResource, tmp_path: Path) -> None:
    bad = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}},
           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    with pytest.raises(ServiceError) as err:
        comfy.run_workflow(bad, outputs_dir=tmp_path)
    assert err.value.status == 400 and "node 1 (EmptyImage) input 'height'" in str(err.value)


@pytest.mark.parametrize("name", list_workflows())
def test_registered_workflow_nodes(comfy: ComfyUIResource, name: str) -> None:
    wf = load_workflow(name)
    server = comfy.pick_server()
    try:
        check_server_nodes(comfy, server, wf)
    except ServiceError as exc:
        pytest.skip(str(exc))

"""Pytest fixtures for the fake ComfyUI server; load with ``pytest_plugins``.

``comfyui_server`` is one running server (recorded 0.3.64 nodes); ``comfyui_server_newer`` also
serves the Flux 2 / LTX-2 node schemas; ``comfyui_factory(**kwargs)`` starts more of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .comfyui import SHARED, FakeComfyUI, running_comfyui


def _require_recording() -> None:
    if not (SHARED / "object_info.json").is_file():
        pytest.skip(f"recorded ComfyUI responses not found in {SHARED}")


@pytest.fixture
def comfyui_factory() -> Iterator[Callable[..., FakeComfyUI]]:
    _require_recording()
    started: list[FakeComfyUI] = []

    def make(**kwargs: Any) -> FakeComfyUI:
        server = FakeComfyUI(**kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def comfyui_server() -> Iterator[FakeComfyUI]:
    _require_recording()
    with running_comfyui() as server:
        yield server


@pytest.fixture
def comfyui_server_newer() -> Iterator[FakeComfyUI]:
    _require_recording()
    from videogen_resources.workflows import newer_node_schemas

    with running_comfyui(extra_nodes=newer_node_schemas(), version="0.7.0") as server:
        yield server

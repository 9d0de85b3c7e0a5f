"""The LLM in the pipeline, against an OpenAI-compatible test server on 127.0.0.1: the `script`
asset writes script.md from the brief and never overwrites a creator's script; shots come from the
LLM when it is configured; the key comes only from the environment and never reaches metadata."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from tests.support.servers.llm import OpenAICompatServer
from videogen.operations import create_project, render, sync
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_resources.settings import BackendSettings

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def llm_server(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    with OpenAICompatServer(api_key=KEY) as srv:
        yield srv


def _settings(server: OpenAICompatServer) -> BackendSettings:
    return BackendSettings(
        llm_base_url=server.url + "/v1", llm_key_env="DEEPSEEK_API_KEY", clip_preset="ultrafast"
    )


def _materialize_script(root: Path, settings: BackendSettings, instance: dg.DagsterInstance):  # type: ignore[no-untyped-def]
    defs = build_definitions(root, settings)
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    return dg.materialize(
        assets,
        instance=instance,
        resources=dict(defs.resources or {}),
        selection=[key("tides", "script")],
    )


@pytest.mark.slow
def test_script_asset_writes_then_never_overwrites(
    studio_root: Path, instance: dg.DagsterInstance, llm_server: OpenAICompatServer
) -> None:
    folder, _ = create_project(studio_root, title="How tides work", name="tides", minutes=1)
    settings = _settings(llm_server)
    result = _materialize_script(studio_root, settings, instance)
    script = folder / "script.md"
    assert script.exists() and not (folder / "script.draft.md").exists()
    md = result.asset_materializations_for_node("tides__script")[0].metadata
    assert md["draft_beside_your_script"].value is False
    assert md["sentences"].value >= 3
    assert 100 <= md["words"].value <= 220  # ~150 spoken words per minute
    sent = llm_server.chat_requests()[-1]
    assert sent["model"] == "deepseek-flash"
    assert sent["response_format"] == {"type": "json_object"}
    assert any("How tides work" in m["content"] for m in sent["messages"])

    # The creator edits the script; asking again leaves it alone and writes a draft beside it.
    edited = script.read_text(encoding="utf-8") + "\nMy own closing line.\n"
    script.write_text(edited, encoding="utf-8")
    result = _materialize_script(studio_root, settings, instance)
    assert script.read_text(encoding="utf-8") == edited
    assert (folder / "script.draft.md").exists()
    md = result.asset_materializations_for_node("tides__script")[0].metadata
    assert md["draft_beside_your_script"].value is True
    everything = json.dumps({k: str(v.value) for k, v in md.items()})
    assert KEY not in everything


@pytest.mark.slow
def test_shots_come_from_the_llm_when_configured(
    studio_root: Path, instance: dg.DagsterInstance, llm_server: OpenAICompatServer, tmp_path: Path
) -> None:
    script = tmp_path / "s.md"
    script.write_text(
        "# One\nThe tide comes in twice a day.\nThe moon pulls the sea.\n> camera: orbit\n",
        encoding="utf-8",
    )
    create_project(studio_root, title="Tides", name="tides", script_file=script, instance=instance)
    sync(studio_root, "tides", instance=instance)
    settings = _settings(llm_server)
    render(studio_root, "tides", instance=instance, settings=settings)
    shots = {}
    for sid in ("tides.s0001", "tides.s0002"):
        path = studio_root / "projects" / "tides" / "sentences" / sid / "shot.json"
        shots[sid] = json.loads(path.read_text(encoding="utf-8"))
    assert {s["source"] for s in shots.values()} == {"llm"}
    assert shots["tides.s0002"]["camera_movement"] == "orbit"  # the directive still wins
    shot_requests = [r for r in llm_server.chat_requests() if "Sentences (json)" in json.dumps(r)]
    assert len(shot_requests) == 1  # both sentences in one batched request
    assert (studio_root / "projects" / "tides" / "rough_cut.mp4").exists()

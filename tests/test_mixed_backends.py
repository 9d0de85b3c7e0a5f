"""Contract: the engine of each kind (keyframes, clips) is chosen per project and per run.

- Resolution, strongest first: the run's (``VIDEOGEN_KEYFRAMES`` / ``VIDEOGEN_CLIPS``,
  ``videogen render --keyframes/--clips``), the project's (``keyframes:`` / ``clips:`` in
  project.yaml), the studio default (ComfyUI for both when ``COMFYUI_URL`` is set, else the
  embedded cards and Ken Burns). A bad engine name is one clear error naming the variable.
- AI keyframes from ComfyUI (the protocol-faithful test server) with Ken Burns clips, and the
  reverse, render end to end: ComfyUI receives only the kind it serves; each asset's metadata,
  kinds and pool follow its engine.
- Code versions follow the engine: switching one kind's engine marks exactly that kind stale.
- A project that asks for ComfyUI without ``COMFYUI_URL`` fails its step with a message that
  says what to set; the CLI's per-run option renders it with the embedded engine instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from tests.support.servers.comfyui import SHARED, FakeComfyUI
from videogen.cli import main
from videogen.operations import create_project, render
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_assets.status import sentence_statuses
from videogen_domain.errors import InputError
from videogen_domain.project import ProjectBrief
from videogen_resources.settings import BackendSettings
from videogen_resources.workflows import load_workflow, newer_node_schemas

needs_recording = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(), reason="recorded ComfyUI responses not found"
)

PROJECT = "mixed"
SCRIPT = """# Fire
The sky over the volcano glows red.
Ash falls like grey snow.
"""
IMAGE_WF, VIDEO_WF = "flux-2-v1", "wan-2.2-v1"


def _brief(**kw: Any) -> ProjectBrief:
    return ProjectBrief(name="p", title="P", **kw)


def test_the_engine_of_each_kind_is_the_runs_then_the_projects_then_the_default() -> None:
    plain = BackendSettings()
    assert (plain.keyframe_engine(), plain.clip_engine()) == ("cards", "kenburns")
    comfy = BackendSettings(comfyui_urls=["http://127.0.0.1:8188"])
    assert (comfy.keyframe_engine(), comfy.clip_engine()) == ("comfyui", "comfyui")
    brief = _brief(clips="kenburns")
    assert (comfy.keyframe_engine(brief.keyframes), comfy.clip_engine(brief.clips)) == (
        "comfyui",
        "kenburns",
    )
    run = BackendSettings.from_env(
        {"COMFYUI_URL": "http://127.0.0.1:8188", "VIDEOGEN_KEYFRAMES": "cards"}
    )
    assert run.keyframe_engine(_brief(keyframes="comfyui").keyframes) == "cards"
    assert run.clip_engine(None) == "comfyui"
    assert BackendSettings.from_env({"VIDEOGEN_CLIPS": " KenBurns "}).clips == "kenburns"
    with pytest.raises(InputError, match=r"^VIDEOGEN_CLIPS: unknown engine 'wan'; use comfyui"):
        BackendSettings.from_env({"VIDEOGEN_CLIPS": "wan"})
    with pytest.raises(ValueError, match="keyframes"):
        _brief(keyframes="kenburns")


def _new_project(root: Path, instance: dg.DagsterInstance, **engines: str) -> Path:
    script = root.parent / "script.md"
    script.write_text(SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        root, title="Mixed", name=PROJECT, script_file=script, instance=instance
    )
    brief = yaml.safe_load((folder / "project.yaml").read_text(encoding="utf-8"))
    brief.update(engines)
    (folder / "project.yaml").write_text(yaml.safe_dump(brief), encoding="utf-8")
    return folder


def _latest(instance: dg.DagsterInstance, kind: str, sid: str) -> dict[str, Any]:
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key(PROJECT, kind), asset_partitions=[sid]), limit=1
    ).records[0]
    mat = rec.asset_materialization
    assert mat is not None
    return {k: v.value for k, v in mat.metadata.items()}


def _classes(prompt: dict[str, Any]) -> set[str]:
    return {str(node["class_type"]) for node in prompt["prompt"].values()}


@pytest.fixture
def comfy() -> Iterator[FakeComfyUI]:
    server = FakeComfyUI(extra_nodes=newer_node_schemas(), version="0.7.0")
    server.start()
    try:
        yield server
    finally:
        server.close()


def _spec(defs: dg.Definitions, kind: str) -> dg.AssetSpec:
    for spec in defs.resolve_all_asset_specs():
        if spec.key == key(PROJECT, kind):
            return spec
    raise AssertionError(kind)


@pytest.mark.slow
@needs_recording
def test_ai_keyframes_with_ken_burns_clips_then_the_clips_switch_to_comfyui(
    comfy: FakeComfyUI, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    _new_project(studio_root, instance, clips="kenburns")
    settings = BackendSettings(comfyui_urls=[comfy.url], clip_preset="ultrafast")
    render(studio_root, PROJECT, instance=instance, settings=settings)
    ids = instance.get_dynamic_partitions(f"{PROJECT}__sentences")
    prompts = comfy.prompts_received()
    image_classes = load_workflow(IMAGE_WF).class_types()
    assert len(prompts) == len(ids) == 2
    assert all(_classes(p) <= image_classes for p in prompts)  # no video workflow was sent
    for sid in ids:
        assert _latest(instance, "keyframe", sid)["engine"] == "comfyui"
        assert _latest(instance, "keyframe", sid)["comfyui_prompt_id"] in comfy.history
        assert _latest(instance, "clip", sid)["engine"] == "kenburns"
    defs = build_definitions(studio_root, settings)
    assert "comfyui" in _spec(defs, "keyframe").kinds
    assert "ffmpeg" in _spec(defs, "clip").kinds
    statuses = sentence_statuses(instance, defs, PROJECT, ids)
    assert all(v == "done" for row in statuses.values() for v in row.values()), statuses

    # The run moves clips to ComfyUI: only the clips are stale, and only they are made again.
    switched = settings.model_copy(update={"clips": "comfyui"})
    defs = build_definitions(studio_root, switched)
    assert "comfyui" in _spec(defs, "clip").kinds
    statuses = sentence_statuses(instance, defs, PROJECT, ids)
    for sid in ids:
        assert statuses[sid] == {
            "narration": "done",
            "shot": "done",
            "keyframe": "done",
            "clip": "stale",
        }, statuses
    render(studio_root, PROJECT, instance=instance, settings=switched)
    video_classes = load_workflow(VIDEO_WF).class_types()
    later = comfy.prompts_received()[len(prompts) :]
    assert len([p for p in later if _classes(p) <= video_classes]) == 2
    for sid in ids:
        assert _latest(instance, "clip", sid)["engine"] == "comfyui"
        assert _latest(instance, "clip", sid)["comfyui_workflow_version"]
        assert _latest(instance, "keyframe", sid)["engine"] == "comfyui"
    statuses = sentence_statuses(instance, defs, PROJECT, ids)
    assert all(v == "done" for row in statuses.values() for v in row.values()), statuses


@pytest.mark.slow
@needs_recording
def test_card_keyframes_with_comfyui_clips(
    comfy: FakeComfyUI, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    _new_project(studio_root, instance, keyframes="cards")
    settings = BackendSettings(comfyui_urls=[comfy.url])
    render(studio_root, PROJECT, instance=instance, settings=settings)
    ids = instance.get_dynamic_partitions(f"{PROJECT}__sentences")
    prompts = comfy.prompts_received()
    video_classes = load_workflow(VIDEO_WF).class_types()
    assert len(prompts) == len(ids) == 2
    assert all(_classes(p) <= video_classes for p in prompts)  # no image workflow was sent
    for sid in ids:
        assert _latest(instance, "keyframe", sid)["engine"] == "cards"
        assert _latest(instance, "clip", sid)["engine"] == "comfyui"
    # The uploaded images are the card keyframes the studio drew.
    uploads = comfy.requests_to("POST", "/upload/image")
    assert len(uploads) == 2
    defs = build_definitions(studio_root, settings)
    assert "pillow" in _spec(defs, "keyframe").kinds
    assert "comfyui" in _spec(defs, "clip").kinds

    # Back to the studio default for keyframes (ComfyUI): only the keyframes change version,
    # so they are stale and the clips below them wait for new keyframes.
    brief = yaml.safe_load((studio_root / "projects" / PROJECT / "project.yaml").read_text())
    del brief["keyframes"]
    (studio_root / "projects" / PROJECT / "project.yaml").write_text(yaml.safe_dump(brief))
    statuses = sentence_statuses(instance, build_definitions(studio_root, settings), PROJECT, ids)
    assert {statuses[sid]["keyframe"] for sid in ids} == {"stale"}
    assert {statuses[sid]["narration"] for sid in ids} == {"done"}
    assert {statuses[sid]["shot"] for sid in ids} == {"done"}


@pytest.mark.slow
def test_comfyui_without_a_url_fails_saying_what_to_set_and_a_run_can_choose_embedded(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    _new_project(studio_root, instance, keyframes="comfyui")
    settings = BackendSettings(clip_preset="ultrafast")
    defs = build_definitions(studio_root, settings)
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    ids = instance.get_dynamic_partitions(f"{PROJECT}__sentences")
    for kind in ("narration", "shot"):
        dg.materialize(
            assets,
            instance=instance,
            resources=dict(defs.resources or {}),
            selection=[key(PROJECT, kind)],
            partition_key=ids[0],
        )
    result = dg.materialize(
        assets,
        instance=instance,
        resources=dict(defs.resources or {}),
        selection=[key(PROJECT, "keyframe")],
        partition_key=ids[0],
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert "COMFYUI_URL is not set" in message and "keyframes: cards" in message

    # The run's choice wins over project.yaml: the CLI renders it with cards.
    home = tmp_path / "dagster_cli"
    home.mkdir()
    runner = CliRunner()
    out = runner.invoke(
        main,
        ["--home", str(studio_root), "render", PROJECT, "--keyframes", "cards"],
        env={"DAGSTER_HOME": str(home), "VIDEOGEN_CLIP_PRESET": "ultrafast"},
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    assert "rough cut:" in out.output
    cli_instance = dg.DagsterInstance.from_config(str(home))
    rec = cli_instance.fetch_materializations(key(PROJECT, "keyframe"), limit=1).records[0]
    assert rec.asset_materialization is not None
    assert rec.asset_materialization.metadata["engine"].value == "cards"
    bad = runner.invoke(
        main,
        ["--home", str(studio_root), "render", PROJECT, "--clips", "wan"],
        env={"DAGSTER_HOME": str(home)},
    )
    assert bad.exit_code == 2 and "'wan' is not one of 'comfyui', 'kenburns'" in bad.output
    for command in (["demo"], ["render", PROJECT], ["ui"]):
        bad = runner.invoke(
            main, ["--home", str(studio_root), *command],
            env={"DAGSTER_HOME": str(home), "VIDEOGEN_KEYFRAMES": "flux"},
        )  # fmt: skip
        assert bad.exit_code == 2, (command, bad.output)
        assert bad.output == (
            "error: VIDEOGEN_KEYFRAMES: unknown engine 'flux'; use comfyui or cards "
            "(or leave it unset)\n"
        )

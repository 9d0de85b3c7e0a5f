"""Contract: the ComfyUI workflow registry is layered, and the CLI shows and checks it.

- The shipped workflows are package data; a studio's own ``<studio>/workflows/`` folder and each
  folder of ``VIDEOGEN_WORKFLOWS`` are overlays (weakest to strongest) that add workflows and
  replace shipped ones by name; the rest of the shipped registry stays. A folder named by the
  variable that has no ``workflows.yaml`` is one error naming the file. The Definitions use the
  studio's overlay (a project's code version is its overlay workflow's); a project naming a
  workflow that is missing, or of the other kind, is left out with its error, not the studio.
- `videogen new --image-workflow/--video-workflow/--keyframes/--clips` writes them into
  project.yaml; an unknown name or one of the other kind exits 2 with one line listing the known
  ones, and creates nothing.
- `videogen workflows` lists every workflow with where it comes from, ``--bindings`` shows which
  node input each value fills, ``--validate`` checks them against a live server's
  ``/object_info`` (the ComfyUI test server): missing nodes, a server too old, model files not
  installed; any problem exits 1.
- The worked example (SD 1.5 text-to-image, shipped under ``examples/sd15``) copied into a
  studio renders keyframes through ComfyUI with Ken Burns clips.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from tests.support.samples import SMALL_SCRIPT
from tests.support.servers.comfyui import SHARED, FakeComfyUI
from videogen.cli import main
from videogen.operations import render
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_resources.settings import BackendSettings
from videogen_resources.workflows import (
    SHIPPED_ROOT,
    WorkflowError,
    list_workflows,
    load_registry,
    load_workflow,
    newer_node_schemas,
    registry_sources,
    studio_workflows,
)

needs_recording = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(), reason="recorded ComfyUI responses not found"
)

SHIPPED = {"flux-2-v1", "flux-1-dev-v1", "wan-2.2-v1", "ltx-2-v1", "ltx-video-v1"}
EXAMPLE = SHIPPED_ROOT / "examples" / "sd15"
SD15 = "sd15-text-to-image-v1"
# Every model file the shipped workflows and the example load (a server that has them all).
MODELS = sorted(
    {
        str(v)
        for name in [*SHIPPED, SD15]
        for node in load_workflow(name, EXAMPLE).prompt.values()
        for v in node["inputs"].values()
        if isinstance(v, str) and v.endswith(".safetensors")
    }
)


def _overlay(folder: Path, entries: dict[str, Any], files: dict[str, Path]) -> Path:
    """An overlay folder: a workflows.yaml with ``entries`` and copies of ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    for rel, src in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / rel)
    (folder / "workflows.yaml").write_text(yaml.safe_dump({"workflows": entries}))
    return folder


def _flux1_copy(folder: Path, prompt: str) -> Path:
    """An overlay replacing flux-1-dev-v1 with a copy whose default prompt is ``prompt``."""
    src = SHIPPED_ROOT / "image"
    _overlay(
        folder,
        {"flux-1-dev-v1": {"file": "image/f.json", "kind": "image",
                           "min_comfyui_version": "0.3.64", "description": "mine"}},
        {"image/f.json": src / "flux-1-dev-v1.json",
         "image/f.binding.yaml": src / "flux-1-dev-v1.binding.yaml"},
    )  # fmt: skip
    data = json.loads((folder / "image" / "f.json").read_text())
    data["6"]["inputs"]["text"] = prompt
    (folder / "image" / "f.json").write_text(json.dumps(data))
    return folder


def test_the_shipped_registry_is_package_data() -> None:
    assert SHIPPED_ROOT.parent.name == "videogen_resources"
    assert set(load_registry()) == SHIPPED
    assert (SHIPPED_ROOT / "schemas" / "newer_nodes.json").is_file()


def test_studio_folder_and_env_folders_are_overlays(
    studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    studio = studio_workflows(studio_root)
    assert set(load_registry(studio)) == SHIPPED  # no studio folder yet: the shipped ones
    shutil.copytree(EXAMPLE, studio)
    _flux1_copy(tmp_path / "mine", "studio prompt")
    data = yaml.safe_load((studio / "workflows.yaml").read_text())
    data["workflows"]["flux-1-dev-v1"] = {
        "file": str(tmp_path / "mine" / "image" / "f.json"),
        "kind": "image",
        "min_comfyui_version": "0.3.64",
    }
    (studio / "workflows.yaml").write_text(yaml.safe_dump(data))
    assert set(load_registry(studio)) == SHIPPED | {SD15}
    sources = registry_sources(studio)
    assert sources[SD15] == studio and sources["flux-1-dev-v1"] == studio
    assert sources["wan-2.2-v1"] == SHIPPED_ROOT
    shipped_v = load_workflow("flux-1-dev-v1").version
    studio_wf = load_workflow("flux-1-dev-v1", studio)
    assert studio_wf.prompt["6"]["inputs"]["text"] == "studio prompt"
    assert studio_wf.version != shipped_v

    # VIDEOGEN_WORKFLOWS folders are stronger than the studio's, the last one strongest.
    one = _flux1_copy(tmp_path / "one", "env prompt one")
    two = _flux1_copy(tmp_path / "two", "env prompt two")
    monkeypatch.setenv("VIDEOGEN_WORKFLOWS", str(one))
    assert load_workflow("flux-1-dev-v1", studio).prompt["6"]["inputs"]["text"] == (
        "env prompt one"
    )
    monkeypatch.setenv("VIDEOGEN_WORKFLOWS", os.pathsep.join([str(one), str(two)]))
    assert load_workflow("flux-1-dev-v1", studio).prompt["6"]["inputs"]["text"] == (
        "env prompt two"
    )
    assert set(list_workflows("image", studio)) == {"flux-2-v1", "flux-1-dev-v1", SD15}
    monkeypatch.setenv("VIDEOGEN_WORKFLOWS", str(tmp_path / "empty"))
    with pytest.raises(WorkflowError, match=r"empty/workflows\.yaml: workflow registry not found"):
        load_registry(studio)


@pytest.mark.slow
def test_definitions_use_the_studios_workflows(studio_root: Path, tmp_path: Path) -> None:
    _flux1_copy(studio_workflows(studio_root), "studio prompt")
    runner = CliRunner()
    env = {"DAGSTER_HOME": str(tmp_path / "dh")}
    (tmp_path / "dh").mkdir()
    out = runner.invoke(
        main,
        ["--home", str(studio_root), "new", "Flux", "--image-workflow", "flux-1-dev-v1"],
        env=env,
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    defs = build_definitions(studio_root, BackendSettings(comfyui_urls=["http://127.0.0.1:1"]))
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == key("flux", "keyframe"))
    studio_v = load_workflow("flux-1-dev-v1", studio_workflows(studio_root)).version
    assert spec.code_version is not None and spec.code_version.startswith(f"{studio_v}-")
    assert not spec.code_version.startswith(load_workflow("flux-1-dev-v1").version)


@pytest.mark.slow
def test_a_project_with_a_missing_workflow_is_left_out_alone(
    studio_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = CliRunner()
    env = {"DAGSTER_HOME": str(tmp_path / "dh")}
    (tmp_path / "dh").mkdir()
    for title in ("Good", "Gone", "Wrong"):
        out = runner.invoke(main, ["--home", str(studio_root), "new", title], env=env)
        assert out.exit_code == 0, out.output
    for name, field, value in (
        ("gone", "image_workflow", "removed-v1"),
        ("wrong", "video_workflow", "flux-2-v1"),
    ):
        path = studio_root / "projects" / name / "project.yaml"
        brief = yaml.safe_load(path.read_text())
        brief[field] = value
        path.write_text(yaml.safe_dump(brief))
    capsys.readouterr()
    # A brief's workflow names must be registered names of their kind (checked whole, when
    # project.yaml is read, against the studio's registry), and a project that cannot load is
    # shown as a warning asset in the invalid_project group naming its reason; its own group is
    # absent and the other projects load as usual.
    unknown = "image_workflow: unknown image workflow 'removed-v1'; known image workflows: "
    wrong_kind = "video_workflow: 'flux-2-v1' is an image workflow, not a video workflow"
    for settings in (BackendSettings(comfyui_urls=["http://127.0.0.1:1"]), BackendSettings()):
        defs = build_definitions(studio_root, settings)
        specs = list(defs.resolve_all_asset_specs())
        assert {spec.group_name for spec in specs} == {"good", "invalid_project"}
        warnings = {
            str(getattr(s.metadata["folder"], "value", s.metadata["folder"])): s
            for s in specs
            if s.group_name == "invalid_project"
        }
        assert set(warnings) == {"gone", "wrong"}
        for name, reason in (("gone", unknown), ("wrong", wrong_kind)):
            spec = warnings[name]
            assert spec.description is not None and reason in spec.description
            assert spec.description.startswith(f"Warning: project folder {name!r} is invalid")
            assert "warning" in spec.kinds
        err = capsys.readouterr().err
        gone = studio_root / "projects" / "gone" / "project.yaml"
        wrong = studio_root / "projects" / "wrong" / "project.yaml"
        assert f"videogen: project skipped: {gone}:" in err and unknown in err
        assert f"videogen: project skipped: {wrong}:" in err and wrong_kind in err


@pytest.fixture
def cli(studio_root: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    home = tmp_path / "dagster_home"
    home.mkdir()
    runner = CliRunner()

    def run(*args: str, **env: str) -> tuple[int, str]:
        result = runner.invoke(
            main,
            ["--home", str(studio_root), *args],
            env={"DAGSTER_HOME": str(home), **env},
            catch_exceptions=False,
        )
        return result.exit_code, result.output

    return run


@pytest.mark.slow
def test_new_takes_workflows_and_engines(cli, studio_root: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(EXAMPLE, studio_workflows(studio_root))
    code, out = cli(
        "new", "Sd", "--image-workflow", SD15, "--video-workflow", "ltx-video-v1",
        "--keyframes", "comfyui", "--clips", "kenburns",
    )  # fmt: skip
    assert code == 0, out
    brief = yaml.safe_load((studio_root / "projects" / "sd" / "project.yaml").read_text())
    assert brief["image_workflow"] == SD15 and brief["video_workflow"] == "ltx-video-v1"
    assert brief["keyframes"] == "comfyui" and brief["clips"] == "kenburns"

    code, out = cli("new", "Bad", "--image-workflow", "sdxl-v9")
    assert code == 2
    assert out.startswith("error: image_workflow: unknown image workflow 'sdxl-v9'; known")
    assert SD15 in out and "flux-2-v1" in out and out.count("\n") == 1
    code, out = cli("new", "Bad", "--video-workflow", SD15)
    assert code == 2 and f"{SD15!r} is an image workflow, not a video workflow" in out
    assert "wan-2.2-v1" in out
    assert not (studio_root / "projects" / "bad").exists()


def test_workflows_lists_and_shows_bindings(cli, studio_root: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = cli("workflows")
    assert code == 0
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert sorted(names) == sorted(SHIPPED)
    shutil.copytree(EXAMPLE, studio_workflows(studio_root))
    code, out = cli("workflows", "--json")
    items = {w["name"]: w for w in json.loads(out)["workflows"]}
    assert items[SD15]["from"] == "studio" and items["wan-2.2-v1"]["from"] == "shipped"
    assert items[SD15]["kind"] == "image"
    code, out = cli("workflows", SD15, "--bindings")
    assert code == 0
    assert "prompt -> 3.text (CLIPTextEncode)" in out and "(required)" in out
    assert "lora_1_name -> 2.lora_name (LoraLoader)" in out and "left out when unset" in out
    code, out = cli("workflows", "nope")
    assert code == 2 and out.startswith("error: workflows: unknown workflow(s) nope; known:")


@pytest.fixture
def comfy() -> Iterator[FakeComfyUI]:
    server = FakeComfyUI(extra_nodes=newer_node_schemas(), version="0.7.0", models=MODELS)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
@needs_recording
def test_validate_against_a_live_server(cli, studio_root: Path, comfy: FakeComfyUI) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(EXAMPLE, studio_workflows(studio_root))
    code, out = cli("workflows", "--validate", "--url", comfy.url)
    assert code == 0, out
    assert out.count(f"ok on {comfy.url} (ComfyUI 0.7.0)") == len(SHIPPED) + 1
    assert comfy.requests_to("GET", "/object_info")

    # With COMFYUI_URL, every server is checked (a job may go to any): here the good one and a
    # server without the Flux 2 / LTX-2 nodes, older, and without the SD 1.5 checkpoint.
    old = FakeComfyUI(version="0.3.64", models=[m for m in MODELS if "v1-5" not in m])
    old.start()
    try:
        urls = f"{comfy.url},{old.url}"
        code, out = cli("workflows", "--validate", "--json", COMFYUI_URL=urls)
    finally:
        old.close()
    assert code == 1
    items = {w["name"]: w for w in json.loads(out)["workflows"]}
    for item in items.values():
        assert [c["server"] for c in item["checks"]] == [comfy.url, old.url]
        assert item["checks"][0]["problems"] == [] and item["checks"][0]["version"] == "0.7.0"
    flux2 = " | ".join(items["flux-2-v1"]["checks"][1]["problems"])
    assert "node class 'EmptyFlux2LatentImage' does not exist on this server" in flux2
    assert "needs ComfyUI >= 0.3.72; the server has 0.3.64" in flux2
    assert items[SD15]["checks"][1]["problems"] == [
        "node 1 (CheckpointLoaderSimple) input 'ckpt_name': model file "
        f"'v1-5-pruned-emaonly-fp16.safetensors' is not installed on the server "
        f"({len(MODELS) - 1} file(s) offered)"
    ]
    assert items["flux-1-dev-v1"]["checks"][1]["problems"] == []
    code, out = cli("workflows", "--validate")
    assert code == 2 and "--validate needs a server: pass --url or set COMFYUI_URL" in out


@pytest.mark.slow
@needs_recording
def test_the_worked_example_renders(
    studio_root: Path, instance: dg.DagsterInstance, comfy: FakeComfyUI, tmp_path: Path
) -> None:
    from videogen.operations import create_project

    shutil.copytree(EXAMPLE, studio_workflows(studio_root))
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(
        studio_root, title="Sd", name="sd", script_file=script, image_workflow=SD15,
        clips="kenburns", instance=instance,
    )  # fmt: skip
    settings = BackendSettings(comfyui_urls=[comfy.url], clip_preset="ultrafast")
    render(studio_root, "sd", instance=instance, settings=settings)
    prompts = [p["prompt"] for p in comfy.prompts_received()]
    assert len(prompts) == 3
    for prompt in prompts:
        assert prompt["1"]["inputs"]["ckpt_name"] == "v1-5-pruned-emaonly-fp16.safetensors"
        assert "2" not in prompt  # no character: the LoRA node is left out
        assert prompt["6"]["inputs"]["model"] == ["1", 0]
        assert max(prompt["5"]["inputs"]["width"], prompt["5"]["inputs"]["height"]) <= 768
    ids = instance.get_dynamic_partitions("sd__sentences")
    version = load_workflow(SD15, studio_workflows(studio_root)).version
    for sid in ids:
        rec = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key("sd", "keyframe"), asset_partitions=[sid]),
            limit=1,
        ).records[0]
        assert rec.asset_materialization is not None
        assert rec.asset_materialization.metadata["workflow_version"].value == version
        assert (studio_root / "projects" / "sd" / "sentences" / sid / "clip.mp4").is_file()

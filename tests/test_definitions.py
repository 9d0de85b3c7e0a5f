"""The real Definitions: one asset group per project with pinned keys, kinds, automation and
sensors; project-level assets depend on their own project's sentences only."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project
from videogen_assets.definitions import build_definitions
from videogen_resources.settings import BackendSettings

PER_SENTENCE = ["narration", "shot", "keyframe", "clip"]
PER_PROJECT = ["rough_cut", "subtitles", "storyboard", "export"]


def _two_projects(root: Path, tmp_path: Path) -> None:
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(root, title="Alpha", name="alpha", script_file=script)
    create_project(root, title="Beta", name="beta", script_file=script, automation=False)


def test_definitions_load_with_one_group_per_project(studio_root: Path, tmp_path: Path) -> None:
    _two_projects(studio_root, tmp_path)
    defs = build_definitions(studio_root, BackendSettings())
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for p in ("alpha", "beta"):
        for name in ["sentence", "direction", *PER_SENTENCE, *PER_PROJECT]:
            assert f"{p}/{name}" in keys
    for k in graph.get_all_asset_keys():
        assert graph.get(k).group_name == k.path[0]
    clip = graph.get(dg.AssetKey(["alpha", "clip"]))
    assert clip.partitions_def == dg.DynamicPartitionsDefinition(name="alpha__sentences")
    assert set(clip.parent_keys) == {
        dg.AssetKey(["alpha", "keyframe"]),
        dg.AssetKey(["alpha", "narration"]),
        dg.AssetKey(["alpha", "shot"]),
    }
    assert "ffmpeg" in clip.kinds and "png" in graph.get(dg.AssetKey(["alpha", "keyframe"])).kinds


def test_project_outputs_depend_only_on_their_own_project(
    studio_root: Path, tmp_path: Path
) -> None:
    _two_projects(studio_root, tmp_path)
    graph = build_definitions(studio_root, BackendSettings()).resolve_asset_graph()
    for p, other in (("alpha", "beta"), ("beta", "alpha")):
        for name in PER_PROJECT:
            ancestors = graph.get(dg.AssetKey([p, name])).parent_keys
            assert ancestors and all(k.path[0] == p for k in ancestors)
            assert not any(k.path[0] == other for k in ancestors)


def test_automation_is_per_project(studio_root: Path, tmp_path: Path) -> None:
    _two_projects(studio_root, tmp_path)
    defs = build_definitions(studio_root, BackendSettings())
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["alpha", "narration"])).automation_condition is not None
    assert graph.get(dg.AssetKey(["alpha", "rough_cut"])).automation_condition is not None
    assert graph.get(dg.AssetKey(["beta", "narration"])).automation_condition is None
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(sensors) == {"script_watcher", "progress", "automation_alpha"}  # none for beta
    assert sensors["progress"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["script_watcher"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["automation_alpha"].default_status == dg.DefaultSensorStatus.RUNNING
    alpha_keys = sensors["automation_alpha"].asset_selection.resolve(graph)
    assert alpha_keys and all(k.path[0] == "alpha" for k in alpha_keys)


def test_code_versions_follow_backend_settings(studio_root: Path, tmp_path: Path) -> None:
    _two_projects(studio_root, tmp_path)
    a = build_definitions(studio_root, BackendSettings()).resolve_asset_graph()
    b = build_definitions(studio_root, BackendSettings(tts="espeak")).resolve_asset_graph()
    narr = dg.AssetKey(["alpha", "narration"])
    key = dg.AssetKey(["alpha", "keyframe"])
    assert a.get(narr).code_version != b.get(narr).code_version
    assert a.get(key).code_version == b.get(key).code_version


def test_module_definitions_load(studio_root: Path, tmp_path: Path) -> None:
    _two_projects(studio_root, tmp_path)
    from videogen_assets import definitions

    defs = dg.Definitions.merge(definitions.defs())  # the lazily built code location
    assert dg.AssetKey(["alpha", "export"]) in defs.resolve_asset_graph().get_all_asset_keys()


def test_a_broken_project_folder_shows_as_a_warning_and_the_others_load(
    studio_root: Path, tmp_path: Path
) -> None:
    """Issue 13: a project.yaml that is a folder, a FIFO or not YAML, or a folder whose name is
    not a project name, loads as a warning asset naming the reason; every valid project loads."""
    import os

    _two_projects(studio_root, tmp_path)
    projects = studio_root / "projects"
    (projects / "as_folder" / "project.yaml").mkdir(parents=True)
    (projects / "as_fifo").mkdir()
    os.mkfifo(projects / "as_fifo" / "project.yaml")
    (projects / "not_yaml").mkdir()
    (projects / "not_yaml" / "project.yaml").write_text("name: not_yaml\ntitle: [\n")
    (projects / "pnl\n").mkdir()
    (projects / "pnl\n" / "project.yaml").write_text('name: "pnl\\n"\ntitle: P\n')
    from videogen_assets import definitions

    defs = dg.Definitions.merge(definitions.defs())  # what `dagster dev` loads
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    for p in ("alpha", "beta"):
        assert dg.AssetKey([p, "export"]) in keys and dg.AssetKey([p, "clip"]) in keys
    warnings = {
        graph.get(k).metadata["folder"]: graph.get(k).description or ""
        for k in keys
        if k.path[0] == definitions.INVALID_PREFIX
    }
    assert set(warnings) == {"as_folder", "as_fifo", "not_yaml", "pnl\n"}
    assert "is a folder, not a regular file" in warnings["as_folder"]
    assert "is a FIFO" in warnings["as_fifo"]
    assert "project.yaml:3: malformed YAML" in warnings["not_yaml"]
    assert "invalid project name 'pnl\\n'" in warnings["pnl\n"]
    assert all(w.startswith("Warning: project folder") for w in warnings.values())

"""Contract: `sentence_statuses` (the bulk status of every sentence asset that `videogen render`,
`videogen status` and the storyboard use) says exactly what Dagster's own stale-status resolver
says for every partition and asset: missing before a first materialization, stale after a word
edit (narration, shot), a directive edit (shot), a code version change (every narration) and for
what was made from a stale input once that input is made again, done otherwise; and the shapes
`videogen status` reads from a project's specs (code version and inputs of each per-sentence
asset) are the ones the Definitions give the assets, for every engine a project can choose."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, render, sync
from videogen_assets.context import key
from videogen_assets.dagster_internals import StaleStatus
from videogen_assets.definitions import build_definitions
from videogen_assets.partitions import partitions_name
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_assets.status import (
    graph_shapes,
    project_shapes,
    sentence_statuses,
    shape_statuses,
    stale_status_resolver,
)
from videogen_resources.settings import BackendSettings

SETTINGS = BackendSettings(clip_preset="ultrafast")
NAMES = {StaleStatus.MISSING: "missing", StaleStatus.STALE: "stale", StaleStatus.FRESH: "done"}


def _dagster_says(
    instance: dg.DagsterInstance, defs: dg.Definitions, keys: list[str]
) -> dict[str, dict[str, str]]:
    resolver = stale_status_resolver(instance, defs)
    return {
        pk: {kind: NAMES[resolver.get_status(key("alpha", kind), pk)] for kind in PER_SENTENCE}
        for pk in keys
    }


def _agree(
    instance: dg.DagsterInstance, defs: dg.Definitions, settings: BackendSettings = SETTINGS
) -> dict[str, dict[str, str]]:
    keys = instance.get_dynamic_partitions(partitions_name("alpha"))
    ours = sentence_statuses(instance, defs, "alpha", keys)
    assert ours == _dagster_says(instance, defs, keys)
    root = Path(defs.resources["studio"].root)  # type: ignore[index]
    shapes = project_shapes(root, "alpha", settings)
    assert shape_statuses(instance, shapes, keys) == ours  # what `videogen status` shows
    return {pk: dict(row) for pk, row in ours.items()}


def _edit(root: Path, old: str, new: str) -> None:
    path = root / "projects" / "alpha" / "script.md"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.slow
def test_bulk_statuses_agree_with_dagsters_resolver(tmp_path: Path) -> None:
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    root = tmp_path / "studio"
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        create_project(root, title="Alpha", name="alpha", script_file=script, instance=instance)
        sync(root, "alpha", instance=instance)
        defs = build_definitions(root, SETTINGS)
        first = _agree(instance, defs)
        assert {v for row in first.values() for v in row.values()} == {"missing"}

        render(root, "alpha", instance=instance, settings=SETTINGS)
        ids = instance.get_dynamic_partitions(partitions_name("alpha"))
        done = _agree(instance, defs)
        assert {v for row in done.values() for v in row.values()} == {"done"}

        # a word edit: the narration and the shot of that sentence; a directive edit: the shot
        _edit(root, "Ash falls like grey snow.", "Ash falls like soft grey snow.")
        life = "Life returns to the slopes.\n"
        _edit(root, life, f"{life}> image: ferns\n")
        sync(root, "alpha", instance=instance)
        edited = _agree(instance, defs)
        assert edited[ids[0]] == dict.fromkeys(PER_SENTENCE, "done")
        assert edited[ids[1]] == {
            "narration": "stale",
            "shot": "stale",
            "keyframe": "done",
            "clip": "done",
        }
        assert edited[ids[2]] == {
            "narration": "done",
            "shot": "stale",
            "keyframe": "done",
            "clip": "done",
        }

        # the shot made again: now the keyframe and clip made from the old shot are stale
        dg.materialize(
            [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))],
            instance=instance,
            resources=dict(defs.resources or {}),
            selection=[key("alpha", "shot")],
            partition_key=ids[2],
        )
        remade = _agree(instance, defs)
        assert remade[ids[2]] == {
            "narration": "done",
            "shot": "done",
            "keyframe": "stale",
            "clip": "stale",
        }

        # another voice engine: a new narration code version, so every narration is stale
        other_voice = BackendSettings(clip_preset="ultrafast", tts="espeak")
        espeak = build_definitions(root, other_voice)
        voices = _agree(instance, espeak, other_voice)
        assert all(row["narration"] == "stale" for row in voices.values())


@pytest.mark.parametrize(
    "settings",
    [
        BackendSettings(),
        BackendSettings(tts="espeak", clip_preset="ultrafast"),
        BackendSettings(comfyui_urls=["http://127.0.0.1:1"], keyframes="comfyui"),
        BackendSettings(comfyui_urls=["http://127.0.0.1:1"], clips="comfyui"),
        BackendSettings(llm_base_url="http://127.0.0.1:1/v1", llm_model="local-model"),
    ],
    ids=["embedded", "espeak", "comfyui_keyframes", "comfyui_clips", "llm"],
)
def test_the_shapes_from_a_projects_specs_are_the_definitions(
    tmp_path: Path, settings: BackendSettings
) -> None:
    """Per project (each with its own engines and style), the code version and inputs of every
    per-sentence asset read from its specs equal those of the studio's Definitions."""
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    root = tmp_path / "studio"
    create_project(root, title="Alpha", name="alpha", script_file=script)
    create_project(root, title="Beta", name="beta", style="anime", script_file=script)
    if settings.comfyui_urls:
        create_project(
            root,
            title="Gamma",
            name="gamma",
            keyframes="cards",
            clips="comfyui",
            script_file=script,
        )
    defs = build_definitions(root, settings)
    projects = ["alpha", "beta", *(["gamma"] if settings.comfyui_urls else [])]
    for project in projects:
        ours = project_shapes(root, project, settings)
        assert ours == graph_shapes(defs, project)
        assert [s.kind for s in ours] == list(PER_SENTENCE)
        assert all(s.code_version for s in ours)
    versions = {p: [s.code_version for s in project_shapes(root, p, settings)] for p in projects}
    assert versions["alpha"] != versions["beta"]  # the style is part of the shot's version

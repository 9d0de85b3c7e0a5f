"""Editing a character marks exactly the shots that show it (and, through them, their keyframes
and clips) stale; narration is untouched unless the character's voice changes."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from videogen.operations import create_project, render, sync
from videogen_assets.definitions import build_definitions
from videogen_assets.status import sentence_statuses
from videogen_resources.settings import BackendSettings
from videogen_store.characters import add_character, cast_add, edit_character

SCRIPT = """# Lab
The lab is quiet tonight.
Ada checks the seismograph again.
> characters: Ada
The needle starts to dance.
"""
IDS = ["lab.s0001", "lab.s0002", "lab.s0003"]
SETTINGS = BackendSettings(clip_preset="ultrafast")


@pytest.mark.slow
def test_character_edit_staleness(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    script = tmp_path / "s.md"
    script.write_text(SCRIPT, encoding="utf-8")
    face = tmp_path / "ada.png"
    Image.new("RGB", (64, 64), (200, 120, 90)).save(face)
    add_character(
        studio_root,
        name="Ada",
        description="a volcanologist in a red jacket",
        images=[face],
        lora="ada_v1.safetensors",
    )
    create_project(studio_root, title="Lab", name="lab", script_file=script, instance=instance)
    cast_add(studio_root, "lab", "Ada")
    sync(studio_root, "lab", instance=instance, force=True)
    render(studio_root, "lab", instance=instance, settings=SETTINGS)
    shot = (studio_root / "projects/lab/sentences/lab.s0002/shot.json").read_text()
    assert "a volcanologist in a red jacket" in shot

    defs = build_definitions(studio_root, SETTINGS)
    fresh = dict.fromkeys(("narration", "shot", "keyframe", "clip"), "done")
    assert sentence_statuses(instance, defs, "lab", IDS) == dict.fromkeys(IDS, fresh)

    edit_character(studio_root, "Ada", description="a volcanologist in a yellow helmet")
    result = sync(studio_root, "lab", instance=instance, force=True)
    assert result.direction_changed == ["lab.s0002"] and result.text_changed == []
    statuses = sentence_statuses(instance, defs, "lab", IDS)
    assert statuses["lab.s0001"] == statuses["lab.s0003"] == fresh
    assert statuses["lab.s0002"]["shot"] == "stale"
    assert statuses["lab.s0002"]["narration"] == "done"

    render(studio_root, "lab", instance=instance, settings=SETTINGS)
    shot = (studio_root / "projects/lab/sentences/lab.s0002/shot.json").read_text()
    assert "yellow helmet" in shot
    assert sentence_statuses(instance, defs, "lab", IDS) == dict.fromkeys(IDS, fresh)

    # Only the LoRA changes: the prompt stays, but the shot (and so its keyframe) is redone.
    before = shot
    edit_character(studio_root, "Ada", lora="ada_v2.safetensors")
    assert sync(studio_root, "lab", instance=instance, force=True).direction_changed == [
        "lab.s0002"
    ]
    render(studio_root, "lab", instance=instance, settings=SETTINGS)
    after = (studio_root / "projects/lab/sentences/lab.s0002/shot.json").read_text()
    assert after != before
    assert sentence_statuses(instance, defs, "lab", IDS) == dict.fromkeys(IDS, fresh)

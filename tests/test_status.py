"""Contract: `sentence_statuses` (the bulk status of every sentence asset that `videogen render`,
`videogen status` and the storyboard use) says exactly what Dagster's own stale-status resolver
says for every partition and asset: missing before a first materialization, stale after a word
edit (narration, shot), a directive edit (shot), a code version change (every narration) and for
what was made from a stale input once that input is made again, done otherwise."""

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
from videogen_assets.status import sentence_statuses, stale_status_resolver
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


def _agree(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, dict[str, str]]:
    keys = instance.get_dynamic_partitions(partitions_name("alpha"))
    ours = sentence_statuses(instance, defs, "alpha", keys)
    assert ours == _dagster_says(instance, defs, keys)
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
        espeak = build_definitions(root, BackendSettings(clip_preset="ultrafast", tts="espeak"))
        voices = _agree(instance, espeak)
        assert all(row["narration"] == "stale" for row in voices.values())

"""The `script` asset shows the script.md that exists, whoever wrote it.

Pins: syncing a project whose script.md the creator wrote records one materialization of
``<project>/script`` in the Dagster instance (made outside Dagster, so with no run), carrying
the file's content hash as its data version (the version the asset gives the scripts it writes)
and the file's path; syncing again without a change records nothing more; saving an edited
script.md records a new one with the new hash; a project without script.md records none.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, sync
from videogen_assets.context import file_digest
from videogen_assets.dagster_internals import DATA_VERSION_TAG

KEY = dg.AssetKey(["volcanoes", "script"])


def materializations(instance: dg.DagsterInstance) -> list[dg.AssetMaterialization]:
    records = instance.fetch_materializations(KEY, limit=100).records
    found = [r.asset_materialization for r in records]
    return [m for m in found if m is not None]


def test_creator_script_is_recorded_once_per_content(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.md"
    mine.write_text(SMALL_SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        studio_root, title="Volcanoes", name="volcanoes", script_file=mine, instance=instance
    )
    script = folder / "script.md"
    first = materializations(instance)
    assert len(first) == 1
    assert first[0].tags is not None and first[0].tags[DATA_VERSION_TAG] == file_digest(script)
    assert first[0].metadata["path"] == dg.MetadataValue.path(str(script))
    latest = instance.get_latest_materialization_event(KEY)
    assert latest is not None and latest.run_id == ""  # reported, not made by a run

    sync(studio_root, "volcanoes", instance=instance)
    sync(studio_root, "volcanoes", instance=instance, force=True)
    assert len(materializations(instance)) == 1

    script.write_text(SMALL_SCRIPT + "Smoke drifts east.\n", encoding="utf-8")
    sync(studio_root, "volcanoes", instance=instance)
    after = materializations(instance)
    assert len(after) == 2
    versions = {m.tags[DATA_VERSION_TAG] for m in after if m.tags}
    assert versions == {first[0].tags[DATA_VERSION_TAG], file_digest(script)}


def test_no_script_no_materialization(studio_root: Path, instance: dg.DagsterInstance) -> None:
    create_project(studio_root, title="Volcanoes", name="volcanoes", instance=instance)
    assert materializations(instance) == []

"""Sync of script.md into the studio database and Dagster: stable ids, exact data-version changes,
partitions added/removed, a bad edit changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, sync
from videogen_assets.context import DIRECTION, SENTENCE, key
from videogen_assets.partitions import sentence_partitions
from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_store.database import StudioDatabase


def _latest_versions(instance: dg.DagsterInstance, k: dg.AssetKey, parts: list[str]) -> dict:
    from videogen_assets.dagster_internals import extract_data_version_from_entry

    out = {}
    for p in parts:
        rec = instance.get_latest_data_version_record(k, is_source=True, partition_key=p)
        assert rec is not None, p
        out[p] = extract_data_version_from_entry(rec.event_log_entry).value  # type: ignore[union-attr]
    return out


@pytest.fixture
def project(studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance) -> Path:
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        studio_root, title="Volcanoes", name="volcanoes", script_file=script, instance=instance
    )
    sync(studio_root, "volcanoes", instance=instance)  # the first sensor tick / render does this
    return folder


def test_create_adds_partitions_at_once(
    studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    script = tmp_path / "t.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(studio_root, title="T", name="t", script_file=script, instance=instance)
    assert instance.get_dynamic_partitions(sentence_partitions("t").name) == [
        "t.s0001",
        "t.s0002",
        "t.s0003",
    ]


@pytest.mark.slow
def test_partitions_and_observations_after_first_sync(
    project: Path, instance: dg.DagsterInstance
) -> None:
    keys = instance.get_dynamic_partitions(sentence_partitions("volcanoes").name)
    assert keys == ["volcanoes.s0001", "volcanoes.s0002", "volcanoes.s0003"]
    assert len(_latest_versions(instance, key("volcanoes", SENTENCE), keys)) == 3
    assert len(_latest_versions(instance, key("volcanoes", DIRECTION), keys)) == 3


@pytest.mark.slow
def test_editing_one_sentence_changes_exactly_one_data_version(
    project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    keys = instance.get_dynamic_partitions(sentence_partitions("volcanoes").name)
    before_s = _latest_versions(instance, key("volcanoes", SENTENCE), keys)
    before_d = _latest_versions(instance, key("volcanoes", DIRECTION), keys)
    script = project / "script.md"
    script.write_text(
        script.read_text().replace("Ash falls like grey snow.", "Ash falls like dirty grey snow."),
        encoding="utf-8",
    )
    result = sync(studio_root, "volcanoes", instance=instance)
    assert result.text_changed == ["volcanoes.s0002"] and result.direction_changed == []
    after_s = _latest_versions(instance, key("volcanoes", SENTENCE), keys)
    after_d = _latest_versions(instance, key("volcanoes", DIRECTION), keys)
    assert [k for k in keys if before_s[k] != after_s[k]] == ["volcanoes.s0002"]
    assert after_d == before_d


@pytest.mark.slow
def test_editing_a_directive_changes_only_direction(
    project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    script = project / "script.md"
    script.write_text(
        script.read_text().replace("> camera: zoom-in | motion: 0.7", "> camera: pan-left"),
        encoding="utf-8",
    )
    result = sync(studio_root, "volcanoes", instance=instance)
    assert result.direction_changed == ["volcanoes.s0002"]
    assert result.text_changed == []


@pytest.mark.slow
def test_insert_and_delete_update_partitions_and_files(
    project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    media = project / "sentences" / "volcanoes.s0003"
    media.mkdir(parents=True)
    (media / "narration.wav").write_bytes(b"RIFF")
    script = project / "script.md"
    text = script.read_text().replace("Life returns to the slopes.", "Penguins never visit.")
    script.write_text(text, encoding="utf-8")
    result = sync(studio_root, "volcanoes", instance=instance)
    assert result.added == ["volcanoes.s0004"] and result.removed == ["volcanoes.s0003"]
    keys = instance.get_dynamic_partitions(sentence_partitions("volcanoes").name)
    assert keys == ["volcanoes.s0001", "volcanoes.s0002", "volcanoes.s0004"]
    assert not media.exists()


@pytest.mark.slow
def test_reordering_keeps_ids(
    project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    script = project / "script.md"
    script.write_text(
        "# Ending\nLife returns to the slopes.\n# Opening\nThe sky over the volcano glows red.\n"
        "Ash falls like grey snow.\n> camera: zoom-in | motion: 0.7\n",
        encoding="utf-8",
    )
    result = sync(studio_root, "volcanoes", instance=instance)
    assert result.order == ["volcanoes.s0003", "volcanoes.s0001", "volcanoes.s0002"]
    assert result.added == [] and result.removed == [] and result.reordered
    assert result.text_changed == []


@pytest.mark.slow
def test_bad_edit_changes_nothing(
    project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    db = StudioDatabase.for_studio(studio_root)
    before = [(r.id, r.text, r.order) for r in db.sentences("volcanoes")]
    script = project / "script.md"
    script.write_text(script.read_text() + "> motion: 7\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        sync(studio_root, "volcanoes", instance=instance)
    assert err.value.field == "motion" and err.value.line == 8
    assert [(r.id, r.text, r.order) for r in db.sentences("volcanoes")] == before
    assert instance.get_dynamic_partitions(sentence_partitions("volcanoes").name) == [
        "volcanoes.s0001",
        "volcanoes.s0002",
        "volcanoes.s0003",
    ]


@pytest.mark.slow
def test_unchanged_file_is_not_reread(project: Path, studio_root: Path) -> None:
    result = sync(studio_root, "volcanoes")
    assert result.unchanged_file and not result.changed


@pytest.mark.slow
def test_sync_keeps_the_script_splits_in_the_studio_cache(project: Path, studio_root: Path) -> None:
    """A later `videogen status` in a fresh process reads the splits instead of re-splitting."""
    cache = paths.sentence_splits_path(studio_root, "volcanoes")
    assert cache == studio_root / ".cache" / "sentence-splits" / "volcanoes.json"
    splits = json.loads(cache.read_text(encoding="utf-8"))["splits"]
    assert sorted(map(tuple, splits.values())) == [
        ("Ash falls like grey snow.",),
        ("Life returns to the slopes.",),
        ("The sky over the volcano glows red.",),
    ]
    script = project / "script.md"
    script.write_text(
        script.read_text().replace("Life returns", "Life returns at last. Birds return"),
        encoding="utf-8",
    )
    result = sync(studio_root, "volcanoes")
    assert len(result.order) == 4
    splits = json.loads(cache.read_text(encoding="utf-8"))["splits"]
    assert ["Life returns at last.", "Birds return to the slopes."] in splits.values()
    assert ["Life returns to the slopes."] not in splits.values()


def _repeated_script(n: int, directives: bool) -> list[str]:
    lines = ["# Magma"]
    for i in range(n):
        lines.append("Magma rises.")
        if directives:
            lines.append(f"> image: view number {i}")
    return lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "directives"),
    [
        (60, True),
        pytest.param(300, True, marks=pytest.mark.slow),
        pytest.param(300, False, marks=pytest.mark.slow),
    ],
)
def test_repeated_sentences_keep_ids_through_insert_and_edit(
    studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance, n: int, directives: bool
) -> None:
    script = tmp_path / "r.md"
    script.write_text("\n".join(_repeated_script(n, directives)) + "\n", encoding="utf-8")
    folder, _ = create_project(
        studio_root, title="Rep", name="rep", script_file=script, instance=instance
    )
    db = StudioDatabase.for_studio(studio_root)
    before = {r.id: r.image_prompt for r in db.sentences("rep")}
    ids = [r.id for r in db.sentences("rep")]
    last_media = folder / "sentences" / ids[-1]
    last_media.mkdir(parents=True)
    (last_media / "narration.wav").write_bytes(b"RIFF")

    lines = _repeated_script(n, directives)
    lines.insert(1, "A new opening line about the crust.")
    (folder / "script.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = sync(studio_root, "rep", instance=instance)
    assert len(first.added) == 1 and first.removed == []
    assert first.order[1:] == ids and first.text_changed == [] and first.direction_changed == []

    step = 2 if directives else 1
    edited_line = 2 + 29 * step  # the 30th "Magma rises." (after the inserted line)
    assert lines[edited_line] == "Magma rises."
    lines[edited_line] = "Magma rises fast."
    (folder / "script.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    second = sync(studio_root, "rep", instance=instance)
    assert second.added == [] and second.removed == []
    assert second.text_changed == [ids[29]]
    assert second.order[1:] == ids
    after = {r.id: (r.text, r.image_prompt) for r in db.sentences("rep")}
    for sid in ids:  # every id still carries its own directive
        assert after[sid][1] == before[sid]
    assert after[ids[29]][0] == "Magma rises fast."
    assert last_media.exists()
    assert instance.get_dynamic_partitions(sentence_partitions("rep").name)[:-1] == ids


@pytest.mark.slow
def test_swapping_two_sentences_and_editing_both_keeps_both_ids(
    project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    db = StudioDatabase.for_studio(studio_root)
    rows = db.sentences("volcanoes")
    script = project / "script.md"
    text = script.read_text()
    first, second = rows[0].text, rows[1].text
    text = text.replace(first, "\x00").replace(second, first.rstrip(".") + " tonight.")
    text = text.replace("\x00", second.rstrip(".") + " again.")
    script.write_text(text, encoding="utf-8")
    result = sync(studio_root, "volcanoes", instance=instance)
    assert result.added == [] and result.removed == []
    assert result.order[:2] == [rows[1].id, rows[0].id]
    assert sorted(result.text_changed) == sorted([rows[0].id, rows[1].id])

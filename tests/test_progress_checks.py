"""Stale and progress on the lineage page: the ``up_to_date`` asset checks and their sensor.

Pins: every per-sentence asset and the rough cut have an ``up_to_date`` check; the ``progress``
sensor reports it (a runless check evaluation, no run started) as passed once a project is
fully rendered; after an edit it warns on each per-sentence asset with the stale count and the
edited sentence named by its words, and on the rough cut with how many sentences are fully
made; a tick with nothing new reports nothing; running the check by hand gives the same
verdict; declarative automation requests the edited sentence but none of these checks (they
add no step to the studio's runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, render, sync
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_resources.settings import BackendSettings

pytestmark = pytest.mark.slow  # renders a project, then edits it

SETTINGS = BackendSettings(clip_preset="ultrafast")
PROJECT = "volcanoes"
KINDS = ("narration", "shot", "keyframe", "clip", "rough_cut")
EDITED = 's0002 · "Ash falls like soft grey snow."'


def check_key(kind: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(key(PROJECT, kind), "up_to_date")


def latest(instance: dg.DagsterInstance) -> dict[str, tuple[bool, str, dict[str, Any], int]]:
    """Each check's latest evaluation: passed, description, metadata values, storage id."""
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key(k) for k in KINDS]
    )
    out = {}
    for ck, rec in records.items():
        assert rec is not None and rec.event is not None and rec.event.dagster_event is not None
        ev = rec.event.dagster_event.event_specific_data
        meta = {k: v.value for k, v in ev.metadata.items()}
        out[ck.asset_key.path[-1]] = (ev.passed, ev.description or "", meta, rec.id)
    return out


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> tuple[str, str]:
    """One tick of the progress sensor: (its skip message, its cursor)."""
    sensor = defs.get_repository_def().get_sensor_def("progress")
    with dg.build_sensor_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        resources=defs.resources,
        cursor=cursor,
    ) as ctx:
        out = sensor(ctx)
        assert isinstance(out, dg.SkipReason), out
        return out.skip_message or "", ctx.cursor or ""


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    base = tmp_path_factory.mktemp("progress")
    root = base / "studio"
    script = base / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    (base / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(base / "dagster")) as instance:
        create_project(root, title="Volcanoes", name=PROJECT, script_file=script, instance=instance)
        render(root, PROJECT, instance=instance, settings=SETTINGS)
        yield root, instance


def test_checks_pass_when_rendered_and_name_the_edited_sentence_after_an_edit(
    studio: tuple[Path, dg.DagsterInstance],
) -> None:
    root, instance = studio
    defs = build_definitions(root, SETTINGS)
    graph = defs.resolve_asset_graph()
    assert {ck for ck in graph.asset_check_keys if ck.name == "up_to_date"} == {
        check_key(k) for k in KINDS
    }

    runs_before = len(instance.get_runs())
    message, cursor = tick(defs, instance, None)
    assert message == "5 check evaluation(s) reported"
    first = latest(instance)
    assert all(passed for passed, _, _, _ in first.values()), first
    assert first["clip"][1] == "3/3 sentences current"
    assert first["rough_cut"][1] == "3/3 sentences fully made · rough cut current"
    assert first["rough_cut"][2]["progress_percent"] == 100.0

    # nothing new: nothing reported (after one look at its own events)
    for _ in range(2):
        message, cursor = tick(defs, instance, cursor)
    assert message == "nothing changed"
    assert {k: v[3] for k, v in latest(instance).items()} == {k: v[3] for k, v in first.items()}

    automation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    folder = root / "projects" / PROJECT
    script = folder / "script.md"
    script.write_text(
        script.read_text().replace("Ash falls like grey snow.", "Ash falls like soft grey snow."),
        encoding="utf-8",
    )
    sync(root, PROJECT, instance=instance)
    message, cursor = tick(defs, instance, cursor)
    # the words changed: narration and shot are stale at once; keyframe and clip only once a
    # new shot comes out different (Dagster's data-version rule), so they still pass
    assert message == "3 check evaluation(s) reported"
    after = latest(instance)
    assert after["keyframe"] == first["keyframe"] and after["clip"] == first["clip"]
    for kind in ("narration", "shot"):
        passed, description, meta, _ = after[kind]
        assert not passed and description == "2/3 sentences current · 1 stale", kind
        assert meta["stale"] == 1 and meta["stale_sentences"] == EDITED
    passed, description, meta, _ = after["rough_cut"]
    assert not passed
    assert description == "2/3 sentences fully made · rough cut current"
    assert meta["sentences_behind"] == EDITED and meta["progress_percent"] == pytest.approx(66.7)
    assert len(instance.get_runs()) == runs_before  # reported, not run

    # run by hand (the UI's "Execute"), the check agrees
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={check_key("shot")}
    )
    result = job.execute_in_process(instance=instance, resources=defs.resources)
    evaluations = result.get_asset_check_evaluations()
    assert [(e.passed, e.description) for e in evaluations] == [
        (False, "2/3 sentences current · 1 stale")
    ]
    assert evaluations[0].severity == dg.AssetCheckSeverity.WARN

    # automation requests the edited sentence's chain, never these checks
    evaluation = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=automation.cursor
    )
    assert evaluation.get_requested_partitions(key(PROJECT, "narration")) == {f"{PROJECT}.s0002"}
    assert not [r.key for r in evaluation.results if isinstance(r.key, dg.AssetCheckKey)]

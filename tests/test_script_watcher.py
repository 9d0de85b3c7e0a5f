"""The script_watcher sensor: a saved script.md becomes partitions and observed data versions
without a code reload; a bad save is reported and changes nothing; deleting a sentence removes
its partition and files and asks for the project outputs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project
from videogen_assets.definitions import build_definitions
from videogen_assets.partitions import partitions_name
from videogen_resources.settings import BackendSettings


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):  # type: ignore[no-untyped-def]
    """One evaluation as the daemon makes it (its run requests resolved against the
    repository's jobs): a SkipReason, or a SensorResult with the resolved run requests."""
    from dagster import partition_loading_context

    sensor = defs.resolve_sensor_def("script_watcher")
    with (
        dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources=dict(defs.resources or {}),
            repository_def=defs.get_repository_def(),
        ) as ctx,
        partition_loading_context(dynamic_partitions_store=instance),
    ):
        data = sensor.evaluate_tick(ctx)
    if not data.run_requests and data.cursor == cursor:
        return dg.SkipReason(data.skip_message), cursor
    return dg.SensorResult(run_requests=data.run_requests, cursor=data.cursor), data.cursor


def _observed(instance: dg.DagsterInstance, name: str) -> dict[str, str]:
    from videogen_assets.dagster_internals import extract_data_version_from_entry

    out = {}
    for pk in instance.get_dynamic_partitions(partitions_name("volcanoes")):
        rec = instance.get_latest_data_version_record(
            dg.AssetKey(["volcanoes", name]), is_source=True, partition_key=pk
        )
        if rec is not None:
            out[pk] = extract_data_version_from_entry(rec.event_log_entry).value  # type: ignore[union-attr]
    return out


@pytest.mark.slow
def test_sensor_syncs_edits_without_reload(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        studio_root, title="V", name="volcanoes", script_file=script, instance=instance
    )
    defs = build_definitions(studio_root, BackendSettings())
    result, cursor = _tick(defs, instance, None)
    assert isinstance(result, dg.SensorResult)
    first = _observed(instance, "sentence")
    assert sorted(first) == ["volcanoes.s0001", "volcanoes.s0002", "volcanoes.s0003"]
    result, cursor = _tick(defs, instance, cursor)
    assert isinstance(result, dg.SkipReason)  # nothing changed

    # Edit one sentence and add one: same Definitions object, no reload.
    text = SMALL_SCRIPT.replace("Ash falls like grey snow.", "Ash falls like wet snow.")
    (folder / "script.md").write_text(text + "Birds come back.\n", encoding="utf-8")
    result, cursor = _tick(defs, instance, cursor)
    after = _observed(instance, "sentence")
    assert [k for k in first if first[k] != after[k]] == ["volcanoes.s0002"]
    assert "volcanoes.s0004" in after

    # A bad save: nothing changes, the cursor moves on (it is retried on the next save).
    (folder / "script.md").write_text(text + "> motion: 9\n", encoding="utf-8")
    result, cursor = _tick(defs, instance, cursor)
    assert _observed(instance, "sentence") == after
    assert instance.get_dynamic_partitions(partitions_name("volcanoes"))[-1] == "volcanoes.s0004"

    # Deleting a sentence removes its partition and files and asks for the project outputs.
    media = folder / "sentences" / "volcanoes.s0003"
    media.mkdir(parents=True)
    (media / "clip.mp4").write_bytes(b"x")
    (folder / "script.md").write_text(
        text.replace("Life returns to the slopes.\n", ""), encoding="utf-8"
    )
    result, cursor = _tick(defs, instance, cursor)
    assert isinstance(result, dg.SensorResult)
    parts = instance.get_dynamic_partitions(partitions_name("volcanoes"))
    assert parts == ["volcanoes.s0001", "volcanoes.s0002"]
    assert not media.exists()
    assert len(result.run_requests or []) == 1
    requested = {k.to_user_string() for k in result.run_requests[0].asset_selection or []}
    assert requested == {
        "volcanoes/rough_cut",
        "volcanoes/subtitles",
        "volcanoes/storyboard",
        "volcanoes/export",
    }


@pytest.mark.slow
def test_one_edit_is_one_run_unless_the_project_is_busy(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """An edit of one made sentence: the watcher asks for one run (its chain and the project
    outputs) and leaves the new versions for that run to report. While a run of the project
    is waiting or running, the edit is reported at once and left to automation, which waits
    for that run."""
    from dagster import DagsterRun, DagsterRunStatus

    from videogen.operations import render
    from videogen_assets.context import key

    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        studio_root, title="V", name="volcanoes", script_file=script, instance=instance
    )
    settings = BackendSettings(clip_preset="ultrafast")
    render(studio_root, "volcanoes", instance=instance, settings=settings)
    defs = build_definitions(studio_root, settings)
    result, cursor = _tick(defs, instance, None)
    before = _observed(instance, "sentence")

    text = SMALL_SCRIPT.replace("Ash falls like grey snow.", "Ash falls like wet snow.")
    (folder / "script.md").write_text(text, encoding="utf-8")
    result, cursor = _tick(defs, instance, cursor)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests or []
    assert request.partition_key == "volcanoes.s0002"
    chain_and_outputs = ["narration", "shot", "keyframe", "clip"]
    chain_and_outputs += ["rough_cut", "subtitles", "storyboard", "export"]
    assert {k.to_user_string() for k in request.asset_selection or []} == {
        f"volcanoes/{n}" for n in chain_and_outputs
    }
    assert _observed(instance, "sentence") == before, "left for the run to report"

    # a run of the project is running: the next edit is reported now and left to automation
    instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id="running-run",
            status=DagsterRunStatus.STARTED,
            asset_selection=frozenset({key("volcanoes", "rough_cut")}),
        )
    )
    (folder / "script.md").write_text(
        text.replace("Life returns to the slopes.", "Life returns to the green slopes."),
        encoding="utf-8",
    )
    result, cursor = _tick(defs, instance, cursor)
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    after = _observed(instance, "sentence")
    # both pending edits are reported: the one left for the first run (which, in this test,
    # never ran) and the new one
    assert {k for k in before if before[k] != after[k]} == {"volcanoes.s0002", "volcanoes.s0003"}

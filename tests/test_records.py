"""Contract: `videogen_assets.records` (the bulk reader of the latest materialization or
observation of every sentence partition, behind statuses, batches and automation) reads from
Dagster's SQL event log exactly what Dagster's own records say: each record's partition, data
version (also under its old tag name) and provenance (code version, input data versions and
storage ids, also "no input record"), only records of the asked asset and event type, none
from before the asset was wiped, and each partition's latest record as
`get_latest_data_version_record` finds it (also when only the latest storage ids are read and
then the data versions of a few records; the provenance also in the plain `MadeFrom` a status
compares). `store_asset_events` stores a batch of asset events
leaving the event log as Dagster's own one-by-one storing leaves it (records, latest ids,
indexed tags, asset entries, the run's log)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterEventType, EventLogEntry, serialize_value

from videogen_assets.dagster_internals import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    RUNLESS_RUN_ID,
    extract_data_provenance_from_entry,
    extract_data_version_from_entry,
    runless_event_entries,
)
from videogen_assets.records import (
    LatestRecords,
    MadeFrom,
    Row,
    _read_records,
    _tags_of,
    read_rows,
    store_asset_events,
)

CLIP = dg.AssetKey(["p", "clip"])
SHOT = dg.AssetKey(["p", "shot"])
WORDS = dg.AssetKey(["p", "sentence"])
PARTS = ["s1", "s2", "s3", "s4"]


def _report(
    instance: dg.DagsterInstance, event: dg.AssetMaterialization | dg.AssetObservation
) -> None:
    instance.report_runless_asset_event(event)


def _latest_id(instance: dg.DagsterInstance, asset: dg.AssetKey, observed: bool) -> int:
    kind = (
        DagsterEventType.ASSET_OBSERVATION if observed else DagsterEventType.ASSET_MATERIALIZATION
    )
    return max(instance.event_log_storage.get_latest_storage_id_by_partition(asset, kind).values())


def _fill(instance: dg.DagsterInstance) -> None:
    for i, pk in enumerate(PARTS):
        _report(
            instance,
            dg.AssetObservation(
                asset_key=WORDS, partition=pk, tags={DATA_VERSION_TAG: f"w{i}"}, metadata={"n": i}
            ),
        )
        _report(
            instance,
            dg.AssetMaterialization(
                asset_key=SHOT, partition=pk, tags={DATA_VERSION_TAG: f"shot{i}"}
            ),
        )
        words_id = _latest_id(instance, WORDS, True)
        shot_id = _latest_id(instance, SHOT, False)
        tags = {
            CODE_VERSION_TAG: "v2",
            DATA_VERSION_TAG: f"clip{i}",
            DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
            f"dagster/input_data_version/{SHOT.to_user_string()}": f"shot{i}",
            f"dagster/input_event_pointer/{SHOT.to_user_string()}": str(shot_id),
            f"dagster/input_data_version/{WORDS.to_user_string()}": f"w{i}",
            f"dagster/input_event_pointer/{WORDS.to_user_string()}": (
                "NULL" if pk == "s2" else str(words_id)
            ),
        }
        if pk == "s3":  # no tags at all
            tags = {}
        if pk == "s4":  # the data version under its old name, no provenance
            tags = {"dagster/logical_version": "old4"}
        _report(
            instance,
            dg.AssetMaterialization(
                asset_key=CLIP, partition=pk, tags=tags, metadata={"path": f"/x/{pk}"}
            ),
        )
    # an unpartitioned record of the same asset, and a second record of s1
    _report(instance, dg.AssetMaterialization(asset_key=CLIP, tags={DATA_VERSION_TAG: "np"}))
    _report(
        instance,
        dg.AssetMaterialization(
            asset_key=CLIP, partition="s1", tags={DATA_VERSION_TAG: "clip1-again"}
        ),
    )


def _all_ids(instance: dg.DagsterInstance) -> list[int]:
    ids: list[int] = []
    for asset in (CLIP, SHOT, WORDS):
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            records = fetch(dg.AssetRecordsFilter(asset_key=asset), limit=1000).records
            ids.extend(r.storage_id for r in records)
    return ids


def _as_dagster_reads(instance: dg.DagsterInstance, asset: dg.AssetKey, observed: bool):
    fetch = instance.fetch_observations if observed else instance.fetch_materializations
    records = fetch(dg.AssetRecordsFilter(asset_key=asset), limit=1000).records
    return {
        r.storage_id: (
            r.partition_key,
            (extract_data_version_from_entry(r.event_log_entry) or dg.DataVersion("-")).value,
            extract_data_provenance_from_entry(r.event_log_entry),
        )
        for r in records
    }


def _as_we_read(rows: list[Row]):
    return {r.storage_id: (r.partition, r.data_version or "-", r.provenance) for r in rows}


@pytest.mark.slow
def test_rows_read_as_dagster_reads_them(instance: dg.DagsterInstance) -> None:
    _fill(instance)
    ids = _all_ids(instance)
    for asset, observed in ((CLIP, False), (SHOT, False), (WORDS, True)):
        ours = _as_we_read(list(read_rows(instance, asset, observed, ids)))
        assert ours == _as_dagster_reads(instance, asset, observed)
        assert ours == _as_we_read(list(_read_records(instance, asset, observed, ids)))
    clip = _as_we_read(list(read_rows(instance, CLIP, False, ids)))
    provenances = [p for _, _, p in clip.values() if p is not None]
    assert len(provenances) == 2  # s1's and s2's (a NULL pointer); the others have none
    assert any(p.input_storage_ids.get(WORDS, 0) is None for p in provenances)
    assert {v for _, v, _ in clip.values()} >= {"old4", "-", "np", "clip1-again"}
    # the tags as taken from a stored event's JSON where the database cannot take them out
    for asset in (CLIP, SHOT, WORDS):
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            for record in fetch(dg.AssetRecordsFilter(asset_key=asset), limit=100).records:
                entry = record.event_log_entry
                assert _tags_of(serialize_value(entry)) == (entry.tags or {})
    # an observation is not a materialization, nor one asset's record another's
    assert not list(read_rows(instance, WORDS, False, ids))
    assert not list(read_rows(instance, SHOT, True, ids))


@pytest.mark.slow
@pytest.mark.parametrize("others", [0, 600], ids=["few-partitions", "many-partitions"])
def test_latest_records_match_dagsters_latest(instance: dg.DagsterInstance, others: int) -> None:
    _fill(instance)
    # (asked about many partitions, the reader reads every partition's latest and picks)
    asked = [*PARTS, "s9", *(f"x{i}" for i in range(others))]
    latest = LatestRecords(instance, asked)
    ids_only = LatestRecords(instance, asked)  # never reads whole records
    _report(instance, dg.AssetMaterialization(asset_key=CLIP, partition="not-asked"))
    assert latest.get(CLIP, False, "not-asked") is None
    assert ids_only.storage_id(CLIP, False, "not-asked") is None
    for asset, observed in ((CLIP, False), (SHOT, False), (WORDS, True)):
        versions = ids_only.data_versions(asset, observed, [*PARTS, "s9"])
        for pk in [*PARTS, "s9"]:
            record = instance.get_latest_data_version_record(asset, observed, pk)
            got = latest.get(asset, observed, pk)
            if record is None:
                assert got is None
                assert ids_only.storage_id(asset, observed, pk) is None
                assert versions[pk] is None
                continue
            assert got is not None
            dv = extract_data_version_from_entry(record.event_log_entry)
            assert got.storage_id == record.storage_id
            assert got.data_version == (dv.value if dv else None)
            provenance = extract_data_provenance_from_entry(record.event_log_entry)
            assert got.provenance == provenance
            if provenance is None:
                assert got.made_from is None
            else:
                assert got.made_from == MadeFrom(
                    provenance.code_version,
                    frozenset(provenance.input_data_versions),
                    dict(provenance.input_storage_ids),
                )
            assert ids_only.storage_id(asset, observed, pk) == record.storage_id
            assert versions[pk] == got.data_version
            assert latest.data_versions(asset, observed, [pk]) == {pk: got.data_version}
    assert latest.data_version(CLIP, False, "s1") == "clip1-again"


@pytest.mark.slow
def test_records_before_a_wipe_are_not_read(instance: dg.DagsterInstance) -> None:
    _fill(instance)
    before = _all_ids(instance)
    instance.wipe_assets([CLIP])
    _report(
        instance,
        dg.AssetMaterialization(asset_key=CLIP, partition="s2", tags={DATA_VERSION_TAG: "new"}),
    )
    ids = _all_ids(instance) + before
    rows = list(read_rows(instance, CLIP, False, ids))
    assert [(r.partition, r.data_version) for r in rows] == [("s2", "new")]
    assert _as_we_read(rows) == _as_we_read(list(_read_records(instance, CLIP, False, ids)))
    latest = LatestRecords(instance, PARTS)
    assert latest.get(CLIP, False, "s1") is None
    assert latest.data_version(CLIP, False, "s2") == "new"
    # (a wiped record's storage id may be given to a later record)
    assert latest.records_at(CLIP, False, before) == {
        r.storage_id: ("s2", "new") for r in rows if r.storage_id in before
    }


def _entry(event: dg.AssetMaterialization | dg.AssetObservation, at: float) -> EventLogEntry:
    return runless_event_entries([event], timestamp=at)[0]


def _batch() -> list[EventLogEntry]:
    events: list[dg.AssetMaterialization | dg.AssetObservation] = []
    for i, pk in enumerate(PARTS * 2):
        tag = {DATA_VERSION_TAG: f"w{i}"}
        events.append(dg.AssetObservation(asset_key=WORDS, partition=pk, tags=tag))
        events.append(dg.AssetMaterialization(asset_key=SHOT, partition=pk, tags=tag))
    events.append(dg.AssetMaterialization(asset_key=CLIP, metadata={"n": 1}))
    return [_entry(e, 1_800_000_000.0 + i) for i, e in enumerate(events)]


def _log_state(instance: dg.DagsterInstance) -> list[object]:
    storage = instance.event_log_storage
    state: list[object] = [sorted(k.to_string() for k in instance.all_asset_keys())]
    for asset, observed in ((CLIP, False), (SHOT, False), (WORDS, True)):
        state.append(_as_dagster_reads(instance, asset, observed))
        kind = (
            DagsterEventType.ASSET_OBSERVATION
            if observed
            else DagsterEventType.ASSET_MATERIALIZATION
        )
        state.append(storage.get_latest_storage_id_by_partition(asset, kind))
        state.append(
            sorted(map(sorted, (t.items() for t in storage.get_event_tags_for_asset(asset))))
        )
        latest = instance.get_latest_materialization_event(asset)
        state.append(latest.timestamp if latest else None)
    entry = instance.get_asset_records([SHOT])[0].asset_entry
    state.append(entry.last_materialization_record.storage_id)
    state.append(entry.last_event_storage_id)
    logs = instance.all_logs(RUNLESS_RUN_ID)
    state.append([(e.dagster_event_type, e.timestamp) for e in logs])
    return state


@pytest.mark.slow
def test_a_stored_batch_leaves_the_log_as_storing_one_by_one(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        dg.instance_for_test(temp_dir=str(tmp_path / "a")) as ours,
        dg.instance_for_test(temp_dir=str(tmp_path / "b")) as dagsters,
    ):
        store_asset_events(ours, _batch())
        for entry in _batch():
            dagsters.event_log_storage.store_event(entry)
        assert len(ours.all_logs(RUNLESS_RUN_ID)) == len(_batch())
        assert _log_state(ours) == _log_state(dagsters)
        # and what the studio reads from it
        latest = LatestRecords(ours, PARTS)
        assert latest.data_version(WORDS, True, "s2") == "w5"
        assert latest.data_version(SHOT, False, "s4") == "w7"

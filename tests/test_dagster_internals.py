"""Each use of Dagster's private API (``videogen_assets.dagster_internals``) does what the studio
relies on: one test per use, named after it, so that a Dagster release that changes one fails
here first (``nox -s dagster-latest`` runs this module on the newest Dagster)."""

import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from videogen_assets import dagster_internals as di

PARTS = dg.DynamicPartitionsDefinition(name="sentences")
UP = dg.AssetKey(["proj", "narration"])
DOWN = dg.AssetKey(["proj", "clip"])


@dg.asset(key=UP, partitions_def=PARTS, code_version="1")
def _up(context: dg.AssetExecutionContext) -> dg.Output[None]:
    return dg.Output(None, data_version=dg.DataVersion(context.run.tags.get("v", "a")))


@dg.asset(key=DOWN, partitions_def=PARTS, deps=[UP], code_version="1")
def _down() -> None:
    return None


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    instance.add_dynamic_partitions("sentences", ["s1", "s2"])
    return instance


def _make(
    instance: dg.DagsterInstance, assets: list[dg.AssetsDefinition], partition: str, v: str = "a"
) -> None:
    result = dg.materialize(assets, instance=instance, partition_key=partition, tags={"v": v})
    assert result.success


# -- data versions and provenance -------------------------------------------------------------


@pytest.mark.slow
def test_provenance_tags_written_by_hand_are_read_by_dagster(tmp_path: Path) -> None:
    """A batch step writes a partition's provenance as tags; Dagster reads them back."""
    instance = _instance(tmp_path)
    tags = {
        di.CODE_VERSION_TAG: "7",
        di.DATA_VERSION_TAG: "out",
        di.DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
        di.get_input_data_version_tag(UP): "in",
        di.get_input_event_pointer_tag(UP): "42",
    }
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=DOWN, partition="s1", tags=tags)
    )
    entry = instance.get_latest_materialization_event(DOWN)
    assert entry is not None
    assert di.extract_data_version_from_entry(entry) == dg.DataVersion("out")
    provenance = di.extract_data_provenance_from_entry(entry)
    assert provenance is not None
    assert provenance.code_version == "7"
    assert provenance.input_data_versions == {UP: dg.DataVersion("in")}
    assert provenance.input_storage_ids == {UP: 42}
    assert provenance.is_user_provided


def test_input_tags_name_the_input_and_parse_back() -> None:
    """``records`` parses each input's key out of its tag (with Dagster's own parser)."""
    data_tag = di.get_input_data_version_tag(UP)
    pointer_tag = di.get_input_event_pointer_tag(UP)
    assert data_tag.startswith(di.INPUT_DATA_VERSION_TAG_PREFIX + "/")
    assert pointer_tag.startswith(di.INPUT_EVENT_POINTER_TAG_PREFIX + "/")
    assert di.asset_key_from_input_tag(data_tag) == UP
    assert di.asset_key_from_input_tag(pointer_tag) == UP


@pytest.mark.slow
def test_old_tag_names_are_still_read_as_the_data_version(tmp_path: Path) -> None:
    """Records written under the old tag names (logical version) still count."""
    instance = _instance(tmp_path)
    tags = {
        di.OLD_DATA_VERSION_TAG: "old",
        f"{di.OLD_INPUT_DATA_VERSION_TAG_PREFIX}/{UP.to_user_string()}": "in",
    }
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=DOWN, partition="s1", tags=tags)
    )
    entry = instance.get_latest_materialization_event(DOWN)
    assert entry is not None
    assert di.extract_data_version_from_entry(entry) == dg.DataVersion("old")


def test_null_event_pointer_and_special_data_versions() -> None:
    """The values ``records``/``status`` compare against: no input record, assumed present."""
    assert di.NULL_EVENT_POINTER == "NULL"
    assert di.DEFAULT_DATA_VERSION == dg.DataVersion("INITIAL")
    assert di.NULL_DATA_VERSION == dg.DataVersion("NULL")


# -- asset graph and staleness ----------------------------------------------------------------


def test_asset_graph_from_assets_knows_parents_and_code_versions() -> None:
    graph = di.asset_graph_from_assets([_up, _down])
    assert graph.get(DOWN).parent_keys == {UP}
    assert graph.get(DOWN).code_version == "1"


@pytest.mark.slow
def test_stale_status_resolver_follows_a_changed_input(tmp_path: Path) -> None:
    """Missing, fresh, then stale once the input comes out different."""
    instance = _instance(tmp_path)
    resolver = lambda: di.stale_status_resolver(  # noqa: E731
        instance, di.asset_graph_from_assets([_up, _down])
    )
    assert resolver().get_status(DOWN, "s1") == di.StaleStatus.MISSING
    _make(instance, [_up, _down], "s1")
    assert resolver().get_status(DOWN, "s1") == di.StaleStatus.FRESH
    _make(instance, [_up], "s1", v="b")
    assert resolver().get_status(DOWN, "s1") == di.StaleStatus.STALE
    assert resolver().get_status(DOWN, "s2") == di.StaleStatus.MISSING


# -- runs -------------------------------------------------------------------------------------


def test_in_progress_run_statuses_are_the_ones_past_the_queue() -> None:
    """Starting .. suspended: a queued or not started run is not in the set."""
    status = dg.DagsterRunStatus
    assert set(di.IN_PROGRESS_RUN_STATUSES) == {
        status.STARTING,
        status.STARTED,
        status.CANCELING,
        status.SUSPENDED,
    }


@pytest.mark.slow
def test_partition_run_tags(tmp_path: Path) -> None:
    """A run over one partition carries the partition tag; range tags have these names."""
    instance = _instance(tmp_path)
    result = dg.materialize([_up], instance=instance, partition_key="s2")
    assert result.dagster_run.tags[di.PARTITION_NAME_TAG] == "s2"
    assert di.ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert di.ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"


def test_project_has_requested_backfill(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    assert not di.project_has_requested_backfill(instance, "proj")
    backfill = di.PartitionBackfill.from_asset_partitions(
        backfill_id="b1",
        asset_graph=di.asset_graph_from_assets([_up, _down]),
        partition_names=["s1"],
        asset_selection=[UP],
        backfill_timestamp=0.0,
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    assert di.project_has_requested_backfill(instance, "proj")
    assert not di.project_has_requested_backfill(instance, "other")


@pytest.mark.slow
def test_no_compute_log_capture_swaps_the_manager_back(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    before = instance.compute_log_manager
    with di.no_compute_log_capture(instance):
        assert type(instance.compute_log_manager).__name__ == "NoOpComputeLogManager"
        _make(instance, [_up], "s1")  # a run goes through without capturing
    assert instance.compute_log_manager is before


# -- the event log ----------------------------------------------------------------------------


@pytest.mark.slow
def test_runless_event_entries_are_what_report_runless_asset_event_stores(
    tmp_path: Path,
) -> None:
    instance = _instance(tmp_path)
    observation = dg.AssetObservation(asset_key=UP, partition="s1", tags={"t": "1"})
    instance.report_runless_asset_event(observation)
    stored = instance.fetch_observations(UP, limit=1).records[0].event_log_entry
    [built] = di.runless_event_entries([observation], timestamp=stored.timestamp)
    assert built.run_id == stored.run_id == di.RUNLESS_RUN_ID
    assert built.job_name == stored.job_name == di.RUNLESS_JOB_NAME
    assert built.dagster_event_type == stored.dagster_event_type
    assert built.asset_observation == stored.asset_observation
    [mat] = di.runless_event_entries([dg.AssetMaterialization(asset_key=DOWN)])
    assert mat.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    assert mat.asset_materialization is not None and mat.asset_materialization.asset_key == DOWN


@pytest.mark.slow
def test_event_log_kinds(tmp_path: Path) -> None:
    """A local instance's event log is the SQLite one; an in-memory one is SQL, not SQLite."""
    instance = _instance(tmp_path)
    assert di.is_sql_event_log(instance.event_log_storage)
    assert di.is_sqlite_event_log(instance.event_log_storage)
    ephemeral = dg.DagsterInstance.ephemeral()
    assert di.is_sql_event_log(ephemeral.event_log_storage)
    assert not di.is_sqlite_event_log(ephemeral.event_log_storage)


def test_event_log_table_has_the_columns_records_reads() -> None:
    columns = set(di.event_log_table().c.keys())
    assert {"id", "run_id", "event", "dagster_event_type", "asset_key", "partition"} <= columns
    assert "timestamp" in columns


@pytest.mark.slow
def test_last_wipe_timestamp(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    _make(instance, [_up], "s1")
    assert di.last_wipe_timestamp(instance.event_log_storage, UP) is None
    instance.wipe_assets([UP])
    assert di.last_wipe_timestamp(instance.event_log_storage, UP) is not None


@pytest.mark.slow
def test_latest_event_ids_subquery_gives_each_partitions_latest(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    for partition in ("s1", "s1", "s2"):
        _make(instance, [_up], partition)
    storage = instance.event_log_storage
    kind = dg.DagsterEventType.ASSET_MATERIALIZATION
    expected = storage.get_latest_storage_id_by_partition(UP, kind)
    for partitions in (["s1", "s2"], None):
        subquery = di.latest_event_ids_subquery(storage, UP, [kind], partitions)
        with storage.index_connection() as conn:
            ids = {row[0] for row in conn.execute(select(subquery.c.id))}
        assert ids == set(expected.values())


@pytest.mark.slow
def test_store_sqlite_asset_events_is_read_back_by_dagster(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    events = [
        dg.AssetObservation(asset_key=UP, partition=p, tags={di.DATA_VERSION_TAG: p})
        for p in ("s1", "s2")
    ]
    di.store_sqlite_asset_events(instance.event_log_storage, di.runless_event_entries(events))
    records = instance.fetch_observations(UP, limit=10).records
    assert sorted(r.partition_key for r in records) == ["s1", "s2"]
    tagged = instance.event_log_storage.get_event_tags_for_asset(UP)
    assert sorted(t[di.DATA_VERSION_TAG] for t in tagged) == ["s1", "s2"]


# -- run launcher and executors ---------------------------------------------------------------


def test_run_launcher_health_types() -> None:
    result = di.CheckRunHealthResult(di.WorkerStatus.FAILED, "gone")
    assert (result.status, result.msg) == (di.WorkerStatus.FAILED, "gone")
    assert {s.name for s in di.WorkerStatus} >= {"RUNNING", "FAILED"}
    run = dg.DagsterRun(job_name="j", run_id=di.make_new_run_id())
    assert di.LaunchRunContext(dagster_run=run, workspace=None).dagster_run is run


def test_executors_the_sentence_executor_delegates_to() -> None:
    in_process = di.in_process_executor(di.RetryMode.ENABLED)
    multiprocess = di.multiprocess_executor(di.RetryMode.DISABLED, max_concurrent=None)
    assert isinstance(in_process, dg.Executor) and isinstance(multiprocess, dg.Executor)
    assert in_process.retries == di.RetryMode.ENABLED
    assert multiprocess.retries == di.RetryMode.DISABLED


# -- tests and benchmarks only ----------------------------------------------------------------


def test_names_the_tests_use() -> None:
    """Run ids, the automation cursor, sensor and tick states (the last imported lazily)."""
    uuid.UUID(di.make_new_run_id())
    assert di.AssetDaemonCursor.empty().evaluation_id == 0
    assert di.InstigatorStatus.RUNNING != di.InstigatorStatus.STOPPED
    assert di.InstigatorType.SENSOR.value == "SENSOR"
    assert {"SKIPPED", "SUCCESS", "FAILURE"} <= {s.name for s in di.TickStatus}
    assert callable(di.snapshot_from_execution_plan)
    engine = di.EngineEventData(metadata={"pid": dg.MetadataValue.int(1)})
    assert engine.metadata["pid"] == dg.MetadataValue.int(1)
    assert di.StepMaterializationData(dg.AssetMaterialization(asset_key=UP)).materialization
    assert callable(di.execute_run) and callable(di.create_execution_plan)
    assert hasattr(di.ReconstructableJob, "for_file")
    assert hasattr(di.ReconstructableRepository, "for_module")
    assert hasattr(di.AutomationConditionEvaluator, "evaluate")
    with pytest.raises(AttributeError):
        di.NoSuchName  # noqa: B018

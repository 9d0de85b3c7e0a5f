"""Every use of Dagster's private modules (``dagster._*``), in one place.

The studio relies on a few things Dagster does not offer publicly: writing and reading a
partition's data provenance by hand (a batch step records one materialization per sentence),
Dagster's own stale-status resolver (the reference ``status`` is checked against), reading and
writing the event log in bulk (per-partition lookups cost a query each), the run launcher's
health check, the executors the sentence executor chooses between, and a few constants.
Everything here is pinned against Dagster 1.13.27; each use has a test of its own in
``tests/test_dagster_internals.py``, so a Dagster release that changes one fails there first,
under the name of what changed. ``nox -s dagster-latest`` runs those tests on the newest Dagster.

Anything Dagster exports publicly (``dg.RunsFilter``, ``dg.DagsterRunStatus``,
``dg.DagsterEventType``, ``dg.AutomationResult``, ...) is used from ``dagster`` directly, not
from here. Modules that are slow to import (the SQL event log, backfills, the executors) are
imported inside the functions that need them, so importing this module costs no more than
``import dagster``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import dagster as dg

# What each import is for (why no public API does it is at each use below):
# - data_version: the tags a materialization's provenance is read from. A batch step logs one
#   materialization per partition and writes them itself (the public
#   `MaterializeResult(data_version=...)` records provenance for a single-partition step only).
# - launcher: the types the run launcher's health check (`check_run_worker_health`) answers in.
# - storage.tags: the run tags Dagster gives a partitioned run (one partition, or a range).
# - dagster_run: IN_PROGRESS_RUN_STATUSES (starting, started, canceling, suspended; not queued);
#   public Dagster has the statuses but not this set.
# - context.system, plan.plan, retries: the sentence executor subclasses Dagster's executor
#   interface (`dg.Executor`); these are its arguments.
# - asset_daemon_cursor, automation_condition_evaluator: the daemon's automation evaluator,
#   driven tick by tick by the tests (tests only).
# - instance.utils: the run id and job name of events reported outside a run.
# - reconstruct, execution.api, events, utils: tests and benchmarks only (a run launched by
#   hand, engine and materialization event data, new run ids).
from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
from dagster._core.definitions.data_version import (
    _OLD_DATA_VERSION_TAG as OLD_DATA_VERSION_TAG,
)
from dagster._core.definitions.data_version import (
    _OLD_INPUT_DATA_VERSION_TAG_PREFIX as OLD_INPUT_DATA_VERSION_TAG_PREFIX,
)
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    INPUT_DATA_VERSION_TAG_PREFIX,
    INPUT_EVENT_POINTER_TAG_PREFIX,
    NULL_DATA_VERSION,
    NULL_EVENT_POINTER,
    StaleStatus,
    _asset_key_from_tag,
    extract_data_provenance_from_entry,
    extract_data_version_from_entry,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.definitions.declarative_automation.automation_condition_evaluator import (
    AutomationConditionEvaluator,
)
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.events import EngineEventData, StepMaterializationData
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.utils import make_new_run_id

if TYPE_CHECKING:
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import Subquery

# Tests and benchmarks only, imported when first asked for (modules slow to import): the
# states of sensors and their ticks as the instance stores them (`InstigatorStatus`,
# `InstigatorType`, `TickStatus`), the stored snapshot of an execution plan (a test launches a
# run by hand with it) and a backfill (a test requests one without a webserver).
_LAZY = {
    "PartitionBackfill": "dagster._core.execution.backfill",
    "InstigatorStatus": "dagster._core.scheduler.instigation",
    "InstigatorType": "dagster._core.scheduler.instigation",
    "TickStatus": "dagster._core.scheduler.instigation",
    "snapshot_from_execution_plan": "dagster._core.snap",
}


def __getattr__(name: str) -> Any:
    """The names of ``_LAZY``, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "CODE_VERSION_TAG",
    "DATA_VERSION_IS_USER_PROVIDED_TAG",
    "DATA_VERSION_TAG",
    "DEFAULT_DATA_VERSION",
    "INPUT_DATA_VERSION_TAG_PREFIX",
    "INPUT_EVENT_POINTER_TAG_PREFIX",
    "IN_PROGRESS_RUN_STATUSES",
    "NULL_DATA_VERSION",
    "NULL_EVENT_POINTER",
    "OLD_DATA_VERSION_TAG",
    "OLD_INPUT_DATA_VERSION_TAG_PREFIX",
    "PARTITION_NAME_TAG",
    "RUNLESS_JOB_NAME",
    "RUNLESS_RUN_ID",
    "AssetDaemonCursor",
    "AutomationConditionEvaluator",
    "CheckRunHealthResult",
    "EngineEventData",
    "ExecutionPlan",
    "LaunchRunContext",
    "PlanOrchestrationContext",
    "ReconstructableJob",
    "ReconstructableRepository",
    "RetryMode",
    "StaleStatus",
    "StepMaterializationData",
    "WorkerStatus",
    "asset_graph_from_assets",
    "asset_key_from_input_tag",
    "create_execution_plan",
    "event_log_table",
    "execute_run",
    "extract_data_provenance_from_entry",
    "extract_data_version_from_entry",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
    "in_process_executor",
    "is_sql_event_log",
    "is_sqlite_event_log",
    "last_wipe_timestamp",
    "latest_event_ids_subquery",
    "make_new_run_id",
    "multiprocess_executor",
    "no_compute_log_capture",
    "project_has_requested_backfill",
    "runless_event_entries",
    "stale_status_resolver",
    "store_sqlite_asset_events",
]


def asset_key_from_input_tag(tag: str) -> dg.AssetKey:
    """The input asset key a provenance tag (``dagster/input_data_version/<key>``, or the
    event-pointer one) names. Dagster parses its own tags with this when it reads a
    provenance; there is no public parser."""
    return _asset_key_from_tag(tag)


# -- runs ------------------------------------------------------------------------------------


def project_has_requested_backfill(instance: dg.DagsterInstance, project: str) -> bool:
    """Whether a requested (not yet finished) backfill selects an asset of ``project``.

    ``DagsterInstance.get_backfills`` is public but its status filter type
    (``BulkActionStatus``) is not; the module is imported here only when asked (slow to import).
    """
    from dagster._core.execution.backfill import BulkActionStatus

    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED):
        if any(k.path[0] == project for k in backfill.asset_selection or ()):
            return True
    return False


@contextlib.contextmanager
def no_compute_log_capture(instance: dg.DagsterInstance) -> Iterator[None]:
    """Run this process's in-process runs without capturing their stdout/stderr.

    The instance's compute log manager is chosen in ``dagster.yaml`` for the whole instance;
    there is no public way to turn it off for one process, so the instance's private attribute
    is swapped for Dagster's no-op manager while the block runs (an instance without that
    attribute is left as it is)."""
    from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

    had = getattr(instance, "_compute_log_manager", None)
    try:
        instance._compute_log_manager = NoOpComputeLogManager()  # type: ignore[attr-defined]
    except AttributeError:
        yield
        return
    try:
        yield
    finally:
        instance._compute_log_manager = had  # type: ignore[attr-defined,assignment]


# -- asset graph and staleness ------------------------------------------------------------------


def asset_graph_from_assets(assets: Iterable[dg.AssetsDefinition | dg.SourceAsset]) -> Any:
    """Dagster's asset graph of some asset definitions, without building Definitions (a check
    asks the staleness resolver about its own project only)."""
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    return AssetGraph.from_assets(list(assets))


def stale_status_resolver(instance: dg.DagsterInstance, asset_graph: Any) -> Any:
    """Dagster's own resolver of data-version staleness (``CachingStaleStatusResolver``) over
    an asset graph, at the current time.

    Public Dagster answers staleness only through the webserver's GraphQL; the studio's bulk
    rule (``status.stale_partitions``) is pinned to this resolver by the tests.
    """
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._time import get_current_datetime

    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(
        instance=instance, asset_graph=asset_graph, loading_context=view
    )


# -- the event log ------------------------------------------------------------------------------


def runless_event_entries(
    events: Sequence[dg.AssetObservation | dg.AssetMaterialization],
    *,
    timestamp: float | None = None,
) -> list[dg.EventLogEntry]:
    """The event log entries ``DagsterInstance.report_runless_asset_event`` would store for
    these events (runless run id and job name; the current time unless ``timestamp``), to
    store them as one batch: the public method stores one event at a time."""
    from dagster._core.events import AssetObservationData
    from dagster._time import get_current_timestamp

    now = get_current_timestamp() if timestamp is None else timestamp
    entries = []
    data: Any
    for event in events:
        if isinstance(event, dg.AssetObservation):
            kind, data = dg.DagsterEventType.ASSET_OBSERVATION, AssetObservationData(event)
        else:
            kind, data = dg.DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(event)
        entries.append(
            dg.EventLogEntry(
                user_message="",
                level=20,
                job_name=RUNLESS_JOB_NAME,
                run_id=RUNLESS_RUN_ID,
                error_info=None,
                timestamp=now,
                step_key=None,
                dagster_event=dg.DagsterEvent(
                    event_type_value=kind.value,
                    event_specific_data=data,
                    job_name=RUNLESS_JOB_NAME,
                ),
            )
        )
    return entries


def event_log_table() -> Table:
    """The SQL table of stored events (id, run, event type, asset key, partition, timestamp,
    the event's JSON), read by ``records`` to fetch only the tags of many events at once."""
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

    return SqlEventLogStorageTable


def is_sql_event_log(storage: Any) -> TypeGuard[SqlEventLogStorage]:
    """Whether an event log is one of Dagster's SQL ones (SQLite, Postgres, MySQL)."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    return isinstance(storage, SqlEventLogStorage)


def is_sqlite_event_log(storage: Any) -> TypeGuard[SqliteEventLogStorage]:
    """Whether an event log is Dagster's SQLite one (one database per run plus an index)."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    return isinstance(storage, SqliteEventLogStorage)


def last_wipe_timestamp(storage: Any, asset: dg.AssetKey) -> float | None:
    """When an asset's history was last wiped (its events before then do not count), from an
    SQL event log; None if never."""
    details = storage._get_assets_details([asset])[0]
    return details.last_wipe_timestamp if details else None


def latest_event_ids_subquery(
    storage: Any,
    asset: dg.AssetKey,
    kinds: Sequence[dg.DagsterEventType],
    partitions: Sequence[str] | None,
) -> Subquery:
    """Dagster's own SQL subquery (column ``id``) of the latest event of each partition of an
    asset, of the given kinds, wipes heeded; ``partitions=None``: of every partition. Joined
    to the events' tags by ``records`` (one query instead of one per partition)."""
    return storage._latest_event_ids_by_partition_subquery(
        asset, list(kinds), asset_partitions=partitions
    )


def store_sqlite_asset_events(storage: Any, entries: Sequence[dg.EventLogEntry]) -> None:
    """Store asset events (materializations, observations; each with an asset key) in a SQLite
    event log in one transaction per file, writing the rows Dagster writes for each event (the
    event, its asset tags and the asset's entry).

    Dagster's SQLite ``store_event_batch`` stores one event at a time, each in two transactions,
    about 12 ms an event: the observations of a first sync of 5,000 sentences took minutes.
    """
    table = event_log_table()
    rows = [storage._event_to_row(e) for e in entries]
    runs: dict[str, list[dict[str, Any]]] = {}
    for entry, row in zip(entries, rows, strict=True):
        runs.setdefault(entry.run_id, []).append(row)
    for run_id, run_rows in runs.items():
        with storage.run_connection(run_id) as conn:
            conn.execute(table.insert(), run_rows)
    conn_: Connection
    with storage.index_transaction() as conn_:
        ids: list[int] = []
        for row in rows:
            inserted = conn_.execute(table.insert(), row).inserted_primary_key
            if inserted is None or inserted[0] is None:
                raise RuntimeError("the event log stored an asset event without an id")
            ids.append(int(inserted[0]))
        storage._store_asset_event_tags(conn_, entries, ids)
        # each event overwrites its asset's entry: the last one of each asset leaves the same
        last: dict[Any, tuple[dg.EventLogEntry, int]] = {}
        for entry, event_id in zip(entries, ids, strict=True):
            assert entry.dagster_event is not None
            last[entry.dagster_event.asset_key] = (entry, event_id)
        for entry, event_id in last.values():
            storage._store_asset_event(conn_, entry, event_id)


# -- executors ----------------------------------------------------------------------------------


def in_process_executor(retries: RetryMode) -> dg.Executor:
    """Dagster's in-process executor object (the public ``dg.in_process_executor`` is an
    executor *definition*; the sentence executor delegates to the executor itself)."""
    from dagster._core.execution.step_dependency_config import StepDependencyConfig
    from dagster._core.executor.in_process import InProcessExecutor

    return InProcessExecutor(retries=retries, step_dependency_config=StepDependencyConfig.default())


def multiprocess_executor(retries: RetryMode, max_concurrent: int | None = None) -> dg.Executor:
    """Dagster's multiprocess executor object (``max_concurrent=None``: the core count)."""
    from dagster._core.execution.step_dependency_config import StepDependencyConfig
    from dagster._core.executor.multiprocess import MultiprocessExecutor

    return MultiprocessExecutor(
        retries=retries,
        max_concurrent=max_concurrent,
        step_dependency_config=StepDependencyConfig.default(),
    )

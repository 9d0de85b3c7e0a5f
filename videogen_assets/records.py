"""The latest data version record of each partition of an asset, read in bulk.

Dagster's own lookups (``get_latest_data_version_record``, the stale-status resolver) ask the
event log once per partition, and on SQLite each ask is a new connection: over a few hundred
sentences that is most of the time a batch or a status report takes. Here the latest record of
every partition of an asset is read at once (on SQLite in one query; elsewhere one query finds
the latest storage ids and one more per 500 reads those records).

Only the records' tags are needed (data version, code version, input provenance). On an SQL
event log (SQLite, Postgres, MySQL) only the tags are taken from the stored events' JSON (by
SQLite itself, elsewhere with Python's json), instead of turning the events back into
Dagster's event objects: that was most of a status report's time on a large project (about
0.7 s per 1,000 sentences). The tags are read as Dagster reads them
(``DataProvenance.from_tags``, the data version tag and its old name; each input's key parsed
once, not once per record), and the same wipe filter applies as in Dagster's record queries.
Any other event log is read through Dagster's records. ``tests/test_records.py`` pins that
both ways read the same.

It also stores a batch of asset events (``store_asset_events``). This is the one module that
reads or writes Dagster's event log below its public API (through ``dagster_internals``).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster import DagsterEventType, DataProvenance, DataVersion

from videogen_assets.dagster_internals import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    INPUT_DATA_VERSION_TAG_PREFIX,
    INPUT_EVENT_POINTER_TAG_PREFIX,
    NULL_EVENT_POINTER,
    OLD_DATA_VERSION_TAG,
    OLD_INPUT_DATA_VERSION_TAG_PREFIX,
    asset_key_from_input_tag,
    event_log_table,
    is_sql_event_log,
    is_sqlite_event_log,
    last_wipe_timestamp,
    latest_event_ids_subquery,
    store_sqlite_asset_events,
)

_CHUNK = 500  # storage ids per query (well under SQLite's bound-variable limit)

# an input's asset key from its provenance tag, parsed once per input (Dagster parses it again
# for every record: most of the time of reading thousands of provenances)
_key_from_tag = functools.lru_cache(maxsize=4096)(asset_key_from_input_tag)

# where an asset event keeps its tags in its stored JSON, by event type
_TAGS_AT = {
    DagsterEventType.ASSET_MATERIALIZATION.value: "materialization",
    DagsterEventType.ASSET_OBSERVATION.value: "asset_observation",
}


@dataclass(frozen=True)
class MadeFrom:
    """What a status needs of a record's provenance: the code version it was made with, its
    inputs, and the storage id of each input's record it was made from (None: none). The
    same reading of the tags as ``DataProvenance.from_tags``, in plain values: building
    Dagster's checked provenance objects was most of a status report's time."""

    code_version: str
    inputs: frozenset[dg.AssetKey]
    input_storage_ids: Mapping[dg.AssetKey, int | None]


_INPUT_VERSION_PREFIXES = (INPUT_DATA_VERSION_TAG_PREFIX, OLD_INPUT_DATA_VERSION_TAG_PREFIX)


def made_from(tags: Mapping[str, str]) -> MadeFrom | None:
    """The provenance a record's tags give (None without a code version, as Dagster reads
    it: then nothing was recorded)."""
    code_version = tags.get(CODE_VERSION_TAG)
    if code_version is None:
        return None
    inputs: set[dg.AssetKey] = set()
    storage_ids: dict[dg.AssetKey, int | None] = {}
    for k, v in tags.items():
        if k.startswith(_INPUT_VERSION_PREFIXES):
            inputs.add(_key_from_tag(k))
        elif k.startswith(INPUT_EVENT_POINTER_TAG_PREFIX):
            storage_ids[_key_from_tag(k)] = int(v) if v != NULL_EVENT_POINTER else None
    return MadeFrom(code_version, frozenset(inputs), storage_ids)


@dataclass(frozen=True)
class Latest:
    """One partition's latest materialization (or observation, for a source asset)."""

    storage_id: int
    data_version: str | None
    tags: Mapping[str, str]

    @functools.cached_property
    def provenance(self) -> DataProvenance | None:
        """The recorded provenance (as ``DataProvenance.from_tags`` reads it)."""
        return Row(self.storage_id, None, self.tags).provenance

    @functools.cached_property
    def made_from(self) -> MadeFrom | None:
        """The recorded provenance, in the plain values a status compares (`made_from`)."""
        return made_from(self.tags)


@dataclass(frozen=True)
class Row:
    """A stored asset event: its storage id, partition and tags."""

    storage_id: int
    partition: str | None
    tags: Mapping[str, str]

    @property
    def data_version(self) -> str | None:
        """The recorded data version (as ``extract_data_version_from_entry`` reads it)."""
        return self.tags.get(DATA_VERSION_TAG) or self.tags.get(OLD_DATA_VERSION_TAG)

    @property
    def provenance(self) -> DataProvenance | None:
        """The recorded provenance (as ``DataProvenance.from_tags`` reads it)."""
        tags = self.tags
        code_version = tags.get(CODE_VERSION_TAG)
        if code_version is None:
            return None
        versions = {
            _key_from_tag(k): DataVersion(v)
            for k, v in tags.items()
            if k.startswith((INPUT_DATA_VERSION_TAG_PREFIX, OLD_INPUT_DATA_VERSION_TAG_PREFIX))
        }
        storage_ids = {
            _key_from_tag(k): int(v) if v != NULL_EVENT_POINTER else None
            for k, v in tags.items()
            if k.startswith(INPUT_EVENT_POINTER_TAG_PREFIX)
        }
        user_provided = tags.get(DATA_VERSION_IS_USER_PROVIDED_TAG) == "true"
        return DataProvenance(code_version, versions, storage_ids, user_provided)


def _tags_of(stored: str) -> Mapping[str, str]:
    """The tags of a stored asset event (materialization or observation), from its JSON."""
    event = json.loads(stored).get("dagster_event") or {}
    data = event.get("event_specific_data") or {}
    holder = data.get(_TAGS_AT.get(event.get("event_type_value") or "", "")) or {}
    tags = holder.get("tags") if isinstance(holder, dict) else None
    return tags if isinstance(tags, dict) else {}


def read_rows(
    instance: dg.DagsterInstance, asset: dg.AssetKey, is_source: bool, storage_ids: Sequence[int]
) -> Iterator[Row]:
    """The given materializations (observations, for a source asset) of one asset; ids that
    are not such a record of it are left out."""
    from sqlalchemy import func, literal_column, select

    wanted = sorted(set(storage_ids))
    storage = instance.event_log_storage
    events = DagsterEventType
    kind = events.ASSET_OBSERVATION if is_source else events.ASSET_MATERIALIZATION
    if not is_sql_event_log(storage):
        yield from _read_records(instance, asset, is_source, wanted)
        return
    table = event_log_table()
    wiped = last_wipe_timestamp(storage, asset)
    with storage.index_connection() as conn:
        # SQLite takes the tags out of the JSON itself (its JSON functions, built in since
        # 3.38): only they reach Python; elsewhere the whole event is read
        in_sqlite = conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 38)
        path = f"$.dagster_event.event_specific_data.{_TAGS_AT[kind.value]}.tags"
        column = func.json_extract(table.c.event, path) if in_sqlite else table.c.event
        # on SQLite all the ids go in one parameter, a JSON array (binding thousands of
        # parameters one by one cost more than the query)
        step = max(len(wanted), 1) if in_sqlite else _CHUNK
        for i in range(0, len(wanted), step):
            chunk = wanted[i : i + step]
            ids: Any = (
                select(literal_column("value")).select_from(func.json_each(json.dumps(chunk)))
                if in_sqlite
                else chunk
            )
            query: Any = (
                select(table.c.id, table.c.partition, column)
                .where(table.c.id.in_(ids))
                .where(table.c.asset_key == asset.to_string())
                .where(table.c.dagster_event_type == kind.value)
            )
            if wiped:
                after = datetime.fromtimestamp(wiped, UTC).replace(tzinfo=None)
                query = query.where(table.c.timestamp > after)
            for storage_id, partition, stored in conn.execute(query):
                if not in_sqlite:
                    yield Row(storage_id, partition, _tags_of(stored))
                    continue
                tags = json.loads(stored) if stored else {}
                yield Row(storage_id, partition, tags if isinstance(tags, dict) else {})


def _read_records(
    instance: dg.DagsterInstance, asset: dg.AssetKey, is_source: bool, wanted: Sequence[int]
) -> Iterator[Row]:
    """As `read_rows`, through Dagster's records (any event log)."""
    fetch = instance.fetch_observations if is_source else instance.fetch_materializations
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        records = fetch(
            dg.AssetRecordsFilter(asset_key=asset, storage_ids=chunk), limit=len(chunk)
        ).records
        for record in records:
            tags = record.event_log_entry.tags or {}
            yield Row(record.storage_id, record.partition_key, tags)


class LatestRecords:
    """The latest record of each partition of some assets, one asset at a time, each read in
    one query for all the partitions asked about."""

    def __init__(self, instance: dg.DagsterInstance, partitions: Sequence[str]) -> None:
        self._instance = instance
        self._partitions = set(partitions)
        self._by_asset: dict[dg.AssetKey, dict[str, Latest]] = {}
        self._ids: dict[dg.AssetKey, dict[str, int]] = {}

    def get(self, asset: dg.AssetKey, is_source: bool, partition: str) -> Latest | None:
        """The latest record of one partition, or None if it has none."""
        if asset not in self._by_asset:
            self._by_asset[asset] = self._read(asset, is_source)
        return self._by_asset[asset].get(partition)

    def data_version(self, asset: dg.AssetKey, is_source: bool, partition: str) -> str | None:
        """The data version of one partition's latest record (None: no record or no version)."""
        latest = self.get(asset, is_source, partition)
        return latest.data_version if latest else None

    def storage_id(self, asset: dg.AssetKey, is_source: bool, partition: str) -> int | None:
        """The storage id of one partition's latest record (None: it has none): from the
        records when they were read whole, else from a lighter query of the ids alone."""
        if asset in self._by_asset:
            latest = self._by_asset[asset].get(partition)
            return latest.storage_id if latest else None
        if asset not in self._ids:
            self._ids[asset] = self._read_ids(asset, is_source)
        return self._ids[asset].get(partition)

    def data_versions(
        self, asset: dg.AssetKey, is_source: bool, partitions: Collection[str]
    ) -> dict[str, str | None]:
        """The data version of the latest record of each of these partitions (None: no record
        or no version); when the records were not read whole, those records alone are read."""
        if asset in self._by_asset:
            return {pk: self.data_version(asset, is_source, pk) for pk in partitions}
        ids = {pk: self.storage_id(asset, is_source, pk) for pk in partitions}
        found = self.records_at(asset, is_source, [i for i in ids.values() if i is not None])
        return {pk: found[i][1] if i in found else None for pk, i in ids.items()}

    def records_at(
        self, asset: dg.AssetKey, is_source: bool, storage_ids: Sequence[int]
    ) -> dict[int, tuple[str | None, str | None]]:
        """(partition, data version) of the given records of one asset, by storage id."""
        rows = read_rows(self._instance, asset, is_source, storage_ids)
        return {row.storage_id: (row.partition, row.data_version) for row in rows}

    def _read_ids(self, asset: dg.AssetKey, is_source: bool) -> dict[str, int]:
        events = DagsterEventType
        kind = events.ASSET_OBSERVATION if is_source else events.ASSET_MATERIALIZATION
        wanted = self._partitions
        ids = self._instance.event_log_storage.get_latest_storage_id_by_partition(
            asset, kind, partitions=wanted if len(wanted) <= _CHUNK else None
        )
        return {pk: i for pk, i in ids.items() if pk in wanted}

    def _read(self, asset: dg.AssetKey, is_source: bool) -> dict[str, Latest]:
        out: dict[str, Latest] = {}
        for row in latest_rows(self._instance, asset, is_source, self._partitions):
            if row.partition is None or row.partition not in self._partitions:
                continue
            out[row.partition] = Latest(row.storage_id, row.data_version, row.tags)
        return out


def latest_rows(
    instance: dg.DagsterInstance, asset: dg.AssetKey, is_source: bool, partitions: Collection[str]
) -> Iterator[Row]:
    """The latest materialization (observation, for a source asset) of each of the partitions
    (and, for many partitions, maybe of others too: the caller picks)."""
    from sqlalchemy import func, select

    events = DagsterEventType
    kind = events.ASSET_OBSERVATION if is_source else events.ASSET_MATERIALIZATION
    storage = instance.event_log_storage
    if is_sqlite_event_log(storage) and _json_in_sqlite(storage):
        # one query: Dagster's own "latest id of each partition" (wipes heeded), joined to the
        # events' tags; for many partitions, of all partitions (a long IN list costs more)
        table = event_log_table()
        subquery = latest_event_ids_subquery(
            storage, asset, [kind], list(partitions) if len(partitions) <= _CHUNK else None
        )
        path = f"$.dagster_event.event_specific_data.{_TAGS_AT[kind.value]}.tags"
        query = select(table.c.id, table.c.partition, func.json_extract(table.c.event, path)).where(
            table.c.id.in_(select(subquery.c.id))
        )
        with storage.index_connection() as conn:
            for storage_id, partition, stored in conn.execute(query):
                tags = json.loads(stored) if stored else {}
                yield Row(storage_id, partition, tags if isinstance(tags, dict) else {})
        return
    ids = storage.get_latest_storage_id_by_partition(asset, kind, partitions=set(partitions))
    yield from read_rows(instance, asset, is_source, list(ids.values()))


def _json_in_sqlite(storage: Any) -> bool:
    """Whether the event log is SQLite with its JSON functions (built in since 3.38)."""
    return is_sqlite_event_log(storage) and sqlite3.sqlite_version_info >= (3, 38)


_BATCHED = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION}


def store_asset_events(instance: dg.DagsterInstance, entries: Sequence[Any]) -> None:
    """Store many asset materializations and observations (``EventLogEntry``) at once.

    Dagster's SQLite event log stores a batch one event at a time, each in two transactions
    (its run's file and the cross-run index), about 12 ms an event: the two observations per
    sentence that a first sync of a 5,000-sentence script reports took minutes. On SQLite the
    batch is written as Dagster writes each event (the same rows, asset tags and asset entry)
    in one transaction per file (``dagster_internals.store_sqlite_asset_events``). Other event
    logs (Postgres: one insert) use their own ``store_event_batch``; so do batches with any
    other kind of event.
    """
    if not entries:
        return
    storage = instance.event_log_storage
    if not is_sqlite_event_log(storage) or any(
        e.dagster_event is None
        or e.dagster_event_type not in _BATCHED
        or e.dagster_event.asset_key is None
        for e in entries
    ):
        storage.store_event_batch(entries)
        return
    store_sqlite_asset_events(storage, entries)

"""The latest data version record of each partition of an asset, read in bulk.

Dagster's own lookups (``get_latest_data_version_record``, the stale-status resolver) ask the
event log once per partition, and on SQLite each ask is a new connection: over a few hundred
sentences that is most of the time a batch or a status report takes. Here one query finds the
latest storage id of every partition and one more (per 500) reads those records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.data_version import (
    DataProvenance,
    extract_data_provenance_from_entry,
    extract_data_version_from_entry,
)
from dagster._core.events import DagsterEventType

_CHUNK = 500  # storage ids per query (well under SQLite's bound-variable limit)


@dataclass(frozen=True)
class Latest:
    """One partition's latest materialization (or observation, for a source asset)."""

    storage_id: int
    data_version: str | None
    provenance: DataProvenance | None


class LatestRecords:
    """The latest record of each partition of some assets, one asset at a time, each read in
    one query for all the partitions asked about."""

    def __init__(self, instance: dg.DagsterInstance, partitions: Sequence[str]) -> None:
        self._instance = instance
        self._partitions = set(partitions)
        self._by_asset: dict[dg.AssetKey, dict[str, Latest]] = {}

    def get(self, asset: dg.AssetKey, is_source: bool, partition: str) -> Latest | None:
        """The latest record of one partition, or None if it has none."""
        if asset not in self._by_asset:
            self._by_asset[asset] = self._read(asset, is_source)
        return self._by_asset[asset].get(partition)

    def data_version(self, asset: dg.AssetKey, is_source: bool, partition: str) -> str | None:
        """The data version of one partition's latest record (None: no record or no version)."""
        latest = self.get(asset, is_source, partition)
        return latest.data_version if latest else None

    def records_at(
        self, asset: dg.AssetKey, is_source: bool, storage_ids: Sequence[int]
    ) -> dict[int, tuple[str | None, str | None]]:
        """(partition, data version) of the given records of one asset, by storage id."""
        instance = self._instance
        fetch = instance.fetch_observations if is_source else instance.fetch_materializations
        wanted = sorted(set(storage_ids))
        out: dict[int, tuple[str | None, str | None]] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            records = fetch(
                dg.AssetRecordsFilter(asset_key=asset, storage_ids=chunk), limit=len(chunk)
            ).records
            for record in records:
                dv = extract_data_version_from_entry(record.event_log_entry)
                out[record.storage_id] = (record.partition_key, dv.value if dv else None)
        return out

    def _read(self, asset: dg.AssetKey, is_source: bool) -> dict[str, Latest]:
        instance = self._instance
        events = DagsterEventType
        kind = events.ASSET_OBSERVATION if is_source else events.ASSET_MATERIALIZATION
        ids = instance.event_log_storage.get_latest_storage_id_by_partition(
            asset, kind, partitions=self._partitions
        )
        fetch = instance.fetch_observations if is_source else instance.fetch_materializations
        wanted = sorted(ids.values())
        out: dict[str, Latest] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            records = fetch(
                dg.AssetRecordsFilter(asset_key=asset, storage_ids=chunk), limit=len(chunk)
            ).records
            for record in records:
                if record.partition_key is None:
                    continue
                entry = record.event_log_entry
                dv = extract_data_version_from_entry(entry)
                out[record.partition_key] = Latest(
                    storage_id=record.storage_id,
                    data_version=dv.value if dv else None,
                    provenance=extract_data_provenance_from_entry(entry),
                )
        return out

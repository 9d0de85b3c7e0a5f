"""Per-partition results from runs that handle one sentence or many.

A run over one partition returns a normal ``MaterializeResult``. A run over many partitions
(a single-run backfill batching many sentences) records one ``AssetMaterialization`` per
partition itself, with that partition's own data version, code version and input provenance,
so staleness and the UI stay per sentence (Dagster would otherwise stamp one data version and a
range-wide input provenance on every partition of the range).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    NULL_EVENT_POINTER,
    extract_data_provenance_from_entry,
    extract_data_version_from_entry,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.events import DagsterEventType

_CHUNK = 500  # storage ids per query (well under SQLite's bound-variable limit)


class _Latest:
    """The latest data version record of each partition of some assets, read in one query per
    asset for the whole batch instead of one per partition (each is a round trip to the event
    log, a new SQLite connection)."""

    def __init__(self, instance: dg.DagsterInstance, partitions: Sequence[str]) -> None:
        self._instance = instance
        self._partitions = set(partitions)
        self._by_asset: dict[dg.AssetKey, dict[str, tuple[int, str | None]]] = {}

    def get(self, asset: dg.AssetKey, is_source: bool, partition: str) -> tuple[int, str | None]:
        """(storage id, data version) of the latest record, or (-1, None) if there is none."""
        if asset not in self._by_asset:
            self._by_asset[asset] = self._read(asset, is_source)
        return self._by_asset[asset].get(partition, (-1, None))

    def _read(self, asset: dg.AssetKey, is_source: bool) -> dict[str, tuple[int, str | None]]:
        instance = self._instance
        events = DagsterEventType
        kind = events.ASSET_OBSERVATION if is_source else events.ASSET_MATERIALIZATION
        ids = instance.event_log_storage.get_latest_storage_id_by_partition(
            asset, kind, partitions=self._partitions
        )
        fetch = instance.fetch_observations if is_source else instance.fetch_materializations
        wanted = sorted(ids.values())
        out: dict[str, tuple[int, str | None]] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            records = fetch(
                dg.AssetRecordsFilter(asset_key=asset, storage_ids=chunk), limit=len(chunk)
            ).records
            for record in records:
                if record.partition_key is None:
                    continue
                dv = extract_data_version_from_entry(record.event_log_entry)
                out[record.partition_key] = (record.storage_id, dv.value if dv else None)
        return out


def _provenance_tags(
    latest: _Latest, partition: str, parents: Sequence[tuple[dg.AssetKey, bool]]
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for parent, is_source in parents:
        storage_id, version = latest.get(parent, is_source, partition)
        tags[get_input_data_version_tag(parent)] = version or "INITIAL"
        tags[get_input_event_pointer_tag(parent)] = (
            str(storage_id) if storage_id >= 0 else NULL_EVENT_POINTER
        )
    return tags


class PartitionResults:
    """Collects one result per partition and hands them to Dagster the right way."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        *,
        parents: Sequence[tuple[dg.AssetKey, bool]],
    ) -> None:
        self._context = context
        self._parents = parents
        self._single = len(context.partition_keys) == 1
        self._latest = _Latest(context.instance, context.partition_keys)
        self._result: dg.MaterializeResult | None = None
        self._kept: list[dg.AssetCheckResult] = []
        in_run = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
        self._chained = any(p in in_run for p, is_source in parents if not is_source)
        self._checks: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}

    def unchanged(self, partition: str, output: Path) -> bool:
        """True when this run also made an input of this asset, and that input came out with
        the data version this partition was last made from: nothing to regenerate.

        Declarative automation requests a sentence's whole chain in one run; this check keeps
        the rule that an unchanged output (a shot.json that came out identical) stops the
        cascade. The partition then records no materialization (Dagster logs it as skipped),
        and a step downstream of it in this run is skipped. Outside such a chain (a creator
        materializing this asset alone) nothing is skipped.
        """
        if not self._chained or not output.exists():
            return False
        ctx = self._context
        record = ctx.instance.get_latest_data_version_record(ctx.asset_key, partition_key=partition)
        if record is None or record.event_log_entry is None:
            return False
        made_from = extract_data_provenance_from_entry(record.event_log_entry)
        code_version = ctx.assets_def.code_versions_by_key.get(ctx.asset_key)
        if made_from is None or made_from.code_version != code_version:
            return False
        for parent, is_source in self._parents:
            now = self._latest.get(parent, is_source, partition)[1]
            then = made_from.input_data_versions.get(parent)
            if now is None or then is None or then.value != now:
                return False
        ctx.log.info(
            f"{ctx.asset_key.to_user_string()} [{partition}] is up to date: its inputs came out"
            " unchanged in this run, nothing to regenerate"
        )
        return True

    def keep(self, partition: str, check_results: Sequence[dg.AssetCheckResult] = ()) -> None:
        """Record a partition left as it was (see `unchanged`): no materialization, only its
        checks evaluated again on the file that stays."""
        if self._single:
            self._kept = list(check_results)
            return
        for check in check_results:
            self._checks.setdefault(check.check_name or "", []).append((partition, check))

    def add(
        self,
        partition: str,
        *,
        data_version: str,
        metadata: Mapping[str, Any],
        check_results: Sequence[dg.AssetCheckResult] = (),
    ) -> None:
        """Record the outcome of one partition."""
        ctx = self._context
        if self._single:
            self._result = dg.MaterializeResult(
                metadata=dict(metadata),
                data_version=dg.DataVersion(data_version),
                check_results=list(check_results),
            )
            return
        key = ctx.asset_key
        code_version = ctx.assets_def.code_versions_by_key.get(key) or ctx.run_id
        tags = {
            CODE_VERSION_TAG: code_version,
            DATA_VERSION_TAG: data_version,
            DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
            **_provenance_tags(self._latest, partition, self._parents),
        }
        ctx.log_event(
            dg.AssetMaterialization(
                asset_key=key, partition=partition, metadata=dict(metadata), tags=tags
            )
        )
        for check in check_results:
            self._checks.setdefault(check.check_name or "", []).append((partition, check))

    def outputs(self) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """What the asset function yields.

        One partition: its MaterializeResult (with its check results). Many partitions: the
        materializations were logged one by one; each check yields one result for the batch,
        failing when any sentence failed and naming those sentences.
        """
        if self._result is not None:
            yield self._result
            return
        if self._single:
            yield from self._kept
            return
        for name, pairs in self._checks.items():
            failed = [p for p, c in pairs if not c.passed]
            yield dg.AssetCheckResult(
                check_name=name,
                passed=not failed,
                metadata={
                    "sentences_checked": len(pairs),
                    "sentences_failed": len(failed),
                    "failed": ", ".join(failed[:50]) or "-",
                },
                description=f"{len(pairs) - len(failed)}/{len(pairs)} sentences passed",
            )

"""Per-partition results from runs that handle one sentence or many.

A run over one partition returns a normal ``MaterializeResult``. A run over many partitions
(a single-run backfill batching many sentences) records one ``AssetMaterialization`` per
partition itself, with that partition's own data version, code version and input provenance,
so staleness and the UI stay per sentence (Dagster would otherwise stamp one data version and a
range-wide input provenance on every partition of the range).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    NULL_EVENT_POINTER,
    extract_data_version_from_entry,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)


def _provenance_tags(
    context: dg.AssetExecutionContext,
    partition: str,
    parents: Sequence[tuple[dg.AssetKey, bool]],
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for parent, is_source in parents:
        record = context.instance.get_latest_data_version_record(
            parent, is_source=is_source, partition_key=partition
        )
        version = None
        if record is not None and record.event_log_entry is not None:
            dv = extract_data_version_from_entry(record.event_log_entry)
            version = dv.value if dv is not None else None
        tags[get_input_data_version_tag(parent)] = version or "INITIAL"
        tags[get_input_event_pointer_tag(parent)] = (
            str(record.storage_id) if record is not None else NULL_EVENT_POINTER
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
        self._result: dg.MaterializeResult | None = None
        self._checks: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}

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
            **_provenance_tags(ctx, partition, self._parents),
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

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

from videogen_assets.dagster_internals import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    NULL_EVENT_POINTER,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from videogen_assets.publish import publish_pending
from videogen_assets.records import LatestRecords

AUTOMATION_RUN_TAG = "dagster/from_automation_condition"
"""The tag (value "true") Dagster puts on the runs declarative automation requests."""

WATCHER_REASON_TAG = "videogen/reason"
"""The tag on the runs the `script_watcher` requests itself (an edit's chain, the outputs after a
deletion): automatic runs like automation's, so the cascade rule applies to them too."""


def _provenance_tags(
    latest: LatestRecords, partition: str, parents: Sequence[tuple[dg.AssetKey, bool]]
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for parent, is_source in parents:
        record = latest.get(parent, is_source, partition)
        tags[get_input_data_version_tag(parent)] = (record and record.data_version) or "INITIAL"
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
        self._latest = LatestRecords(context.instance, context.partition_keys)
        self._result: dg.MaterializeResult | None = None
        self._kept: list[dg.AssetCheckResult] = []
        in_run = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
        # The cascade rule is automation's and the script watcher's: a run a creator launched
        # (the UI, `dg launch`, `dagster asset materialize`) regenerates everything it selects.
        by_automation = (
            context.run.tags.get(AUTOMATION_RUN_TAG) == "true"
            or WATCHER_REASON_TAG in context.run.tags
        )
        self._chained = by_automation and any(
            p in in_run for p, is_source in parents if not is_source
        )
        self._checks: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
        if any(is_source for _, is_source in parents):
            self._report_script_versions()

    def _report_script_versions(self) -> None:
        """Report the observed versions of these sentences that the script sync left to this
        run (``publish(defer=...)``: the watcher's one-run edit), before anything is recorded,
        so the provenance names the words and directives this step reads."""
        db = getattr(self._context.resources, "db", None)
        if db is None:
            return
        project = self._context.asset_key.path[0]
        reported = publish_pending(
            self._context.instance, db, project, self._context.partition_keys
        )
        if reported:
            self._context.log.info(f"reported the script's new versions of {', '.join(reported)}")

    def unchanged(self, partition: str, output: Path) -> bool:
        """True when this run also made an input of this asset, and that input came out with
        the data version this partition was last made from: nothing to regenerate.

        Declarative automation requests a sentence's whole chain in one run; this check keeps
        the rule that an unchanged output (a shot.json that came out identical) stops the
        cascade. The partition then records no materialization (Dagster logs it as skipped),
        and a step downstream of it in this run is skipped. Outside such a chain (a creator
        materializing this asset alone, or launching a chain: the narration comes out
        different every time, so a skipped keyframe would leave the clip stale) nothing is
        skipped.
        """
        if not self._chained or not output.exists():
            return False

        # lazy: status reads the spec list, and the specs are built on this module (import cycle)
        from videogen_assets.status import stale_partitions

        ctx = self._context
        mine = self._latest.get(ctx.asset_key, False, partition)
        if mine is None or mine.provenance is None:
            return False
        code_version = ctx.assets_def.code_versions_by_key.get(ctx.asset_key)
        if code_version is None or partition in stale_partitions(
            ctx.instance, self._latest, ctx.asset_key, code_version, self._parents, [partition]
        ):
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
            # The input provenance is the studio's own, as for a batch: in a run that also
            # made an input (a sentence's chain), Dagster records that input's data version as
            # a hash over the run's partition range instead of the version it recorded for the
            # input, so a later identical re-make of the input would look like a change.
            # Output tags take precedence over the ones Dagster derives.
            self._result = dg.MaterializeResult(
                metadata=dict(metadata),
                data_version=dg.DataVersion(data_version),
                check_results=list(check_results),
                tags=_provenance_tags(self._latest, partition, self._parents),
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
            warn_only = all(c.severity == dg.AssetCheckSeverity.WARN for _, c in pairs)
            yield dg.AssetCheckResult(
                check_name=name,
                passed=not failed,
                severity=dg.AssetCheckSeverity.WARN if warn_only else dg.AssetCheckSeverity.ERROR,
                metadata={
                    "sentences_checked": len(pairs),
                    "sentences_failed": len(failed),
                    "failed": ", ".join(failed[:50]) or "-",
                },
                description=f"{len(pairs) - len(failed)}/{len(pairs)} sentences passed",
            )

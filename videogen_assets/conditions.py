"""State checks that make the studio's automation request each asset partition once per change.

Dagster's triggers (``any_deps_match(data_version_changed())``, ``any_deps_updated()``) are
events latched by ``since_last_handled()`` until the asset is requested or updated. An event
seen while the asset's own run is still in progress stays latched behind ``~in_progress()``;
if the tick that sees the asset's materialization is not the one that clears the latch (the
event log moves on while a tick is evaluated: a query cached early in the tick, the run ending
after the tick read its events), the latch fires when the run ends and the asset is made a
second time from the inputs it was just made from. So the studio's conditions also ask for
the *state*: a partition is requested only when it is out of date now.

- `OutOfDate` (per-sentence assets): missing, or stale by Dagster's data-version rule (its
  code version changed, or an input has a newer record with another data version than the one
  it was made from; ``status.stale_partitions``, pinned equal to Dagster's resolver).
- `OlderThanInputs` (project outputs, which depend on every sentence): missing, or some input
  has a materialization newer than the output's latest one. An output also waits for a
  project-level input of its own that is out of date and not requested with it (the export
  is not built beside the previous rough cut while the rough cut is about to be rebuilt).

Both are evaluated only on the partitions every other part of the condition already passed
(they come last in an ``&``), so a quiet tick reads nothing. Custom conditions are evaluated
in the code location's process: the automation sensor has ``use_user_code_server=True``.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster import AutomationContext, AutomationResult

from videogen_assets.records import LatestRecords
from videogen_assets.status import stale_partitions


class OutOfDate(dg.AutomationCondition[dg.AssetKey]):
    """True for the partitions that are missing or stale now (by their latest records)."""

    @property
    def name(self) -> str:
        return "out_of_date"

    @property
    def description(self) -> str:
        return "missing, or stale by its code version or its inputs' data versions"

    def evaluate(self, context: AutomationContext[Any]) -> AutomationResult[Any]:
        candidates = context.candidate_subset
        if candidates.is_empty:
            return AutomationResult(context, candidates)
        node = context.asset_graph.get(context.key)
        instance = context.asset_graph_view.instance
        keys = sorted(candidates.expensively_compute_partition_keys())
        latest = LatestRecords(instance, keys)
        parents = [(p, context.asset_graph.get(p).is_external) for p in sorted(node.parent_keys)]
        stale = stale_partitions(instance, latest, context.key, node.code_version, parents, keys)
        missing = {pk for pk in keys if latest.get(context.key, False, pk) is None}
        true = candidates.compute_intersection_with_partition_keys(stale | missing)
        return AutomationResult(context, true)


class OlderThanInputs(dg.AutomationCondition[dg.AssetKey]):
    """True for an unpartitioned output that is missing or older than an input's latest
    materialization (of any partition)."""

    @property
    def name(self) -> str:
        return "older_than_inputs"

    @property
    def description(self) -> str:
        return "missing, or an input was materialized after it"

    def evaluate(self, context: AutomationContext[Any]) -> AutomationResult[Any]:
        candidates = context.candidate_subset
        if candidates.is_empty or context.partitions_def is not None:
            # a per-sentence input of an output: its own condition covers it
            return AutomationResult(context, context.get_empty_subset())
        instance = context.asset_graph_view.instance
        node = context.asset_graph.get(context.key)

        def latest_id(asset: dg.AssetKey) -> int | None:
            records = instance.fetch_materializations(asset, limit=1).records
            return records[0].storage_id if records else None

        mine = latest_id(context.key)
        if mine is not None:
            inputs = [
                latest_id(p) for p in node.parent_keys if not context.asset_graph.get(p).is_external
            ]
            if not any(i is not None and i > mine for i in inputs):
                return AutomationResult(context, context.get_empty_subset())
        return AutomationResult(context, candidates)

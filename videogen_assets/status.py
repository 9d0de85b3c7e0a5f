"""Per-sentence status of every asset: missing, stale, done or failed (Dagster's staleness API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from videogen.models import AssetStatus
from videogen_assets.context import PER_SENTENCE, key


def stale_status_resolver(instance: dg.DagsterInstance, defs: dg.Definitions | Any):  # type: ignore[no-untyped-def]
    """Dagster's own resolver of data-version staleness over the studio's asset graph
    (``defs``: the Definitions, or an asset graph already resolved)."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._time import get_current_datetime

    asset_graph = defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(
        instance=instance, asset_graph=asset_graph, loading_context=view
    )


def sentence_statuses(
    instance: dg.DagsterInstance,
    defs: dg.Definitions | Any,
    project: str,
    partition_keys: Sequence[str],
    kinds: Sequence[str] = PER_SENTENCE,
) -> dict[str, dict[str, AssetStatus]]:
    """For each sentence partition, each asset kind's status."""
    from dagster._core.definitions.data_version import StaleStatus

    resolver = stale_status_resolver(instance, defs)
    out: dict[str, dict[str, AssetStatus]] = {}
    for pk in partition_keys:
        row: dict[str, AssetStatus] = {}
        for kind in kinds:
            status = resolver.get_status(key(project, kind), pk)
            if status == StaleStatus.MISSING:
                row[kind] = "missing"
            elif status == StaleStatus.STALE:
                row[kind] = "stale"
            else:
                row[kind] = "done"
        out[pk] = row
    return out

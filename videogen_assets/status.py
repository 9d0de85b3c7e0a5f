"""Per-sentence status of every asset: missing, stale or done, by Dagster's data-version rule.

An asset partition is missing without a materialization; stale when its code version changed
since it was made, or when an input has a newer record than the one it was made from (its
recorded data provenance) with another data version, or when it gained or lost an input; done
otherwise. That
is the rule of Dagster's stale-status resolver (``CachingStaleStatusResolver``) for this graph,
whose per-sentence inputs map partition to partition; the resolver asks the event log several
times per partition, so here each asset's latest records are read in bulk (``LatestRecords``)
and the rule is applied to them. ``tests/test_status.py`` pins that both agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from videogen_assets import dagster_internals
from videogen_assets.context import key
from videogen_assets.dagster_internals import (
    DEFAULT_DATA_VERSION,
    NULL_DATA_VERSION,
    extract_data_version_from_entry,
)
from videogen_assets.records import LatestRecords
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_domain.models import AssetStatus


def stale_status_resolver(instance: dg.DagsterInstance, defs: dg.Definitions | Any):  # type: ignore[no-untyped-def]
    """Dagster's own resolver of data-version staleness over the studio's asset graph
    (``defs``: the Definitions, or an asset graph already resolved)."""
    asset_graph = defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs
    return dagster_internals.stale_status_resolver(instance, asset_graph)


def _differ(before: str | None, now: str | None) -> bool:
    # Dagster's special case: an input assumed present (INITIAL) that was never recorded (NULL)
    if before == DEFAULT_DATA_VERSION.value and now == NULL_DATA_VERSION.value:
        return False
    return before != now


def stale_partitions(
    instance: dg.DagsterInstance,
    latest: LatestRecords,
    asset: dg.AssetKey,
    code_version: str | None,
    parents: Sequence[tuple[dg.AssetKey, bool]],
    partitions: Sequence[str],
) -> set[str]:
    """The materialized partitions of one asset that Dagster's resolver calls stale.

    As in the resolver, a partitioned input counts as updated when it has a record after the
    one this partition was made from (the input's storage id in the provenance) and that
    newer record's data version differs from the older one's.
    """
    stale: set[str] = set()
    pointers: dict[dg.AssetKey, dict[str, int]] = {p: {} for p, _ in parents}
    for pk in partitions:
        mine = latest.get(asset, False, pk)
        made_from = mine.provenance if mine else None
        if made_from is None:
            continue  # missing, or made before provenance was recorded: nothing to compare
        if code_version and made_from.code_version != code_version:
            stale.add(pk)
            continue
        inputs = set(made_from.input_data_versions)
        if inputs - {p for p, _ in parents} or any(p not in inputs for p, _ in parents):
            stale.add(pk)  # an input was removed or added
            continue
        for parent, is_source in parents:
            cursor = made_from.input_storage_ids.get(parent)
            now = latest.get(parent, is_source, pk)
            if cursor is not None and now is not None and now.storage_id > cursor:
                pointers[parent][pk] = cursor
    for parent, is_source in parents:
        wanted = pointers[parent]
        if not wanted:
            continue
        before = latest.records_at(parent, is_source, list(wanted.values()))
        for pk, cursor in wanted.items():
            if pk in stale:
                continue
            part, version = before.get(cursor, (None, None))
            if part != pk:  # the pointer is not this partition's record: ask Dagster
                record = instance.get_latest_data_version_record(
                    parent, is_source, pk, before_cursor=cursor + 1
                )
                dv = extract_data_version_from_entry(record.event_log_entry) if record else None
                version = dv.value if dv else None
            if _differ(version, latest.data_version(parent, is_source, pk)):
                stale.add(pk)
    return stale


def sentence_statuses(
    instance: dg.DagsterInstance,
    defs: dg.Definitions | Any,
    project: str,
    partition_keys: Sequence[str],
    kinds: Sequence[str] = PER_SENTENCE,
) -> dict[str, dict[str, AssetStatus]]:
    """For each sentence partition, each asset kind's status."""
    graph = defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs
    latest = LatestRecords(instance, partition_keys)
    shapes = []
    for kind in kinds:
        node = graph.get(key(project, kind))
        parents = [(p, graph.get(p).is_external) for p in sorted(node.parent_keys)]
        shapes.append((kind, node.key, node.code_version, parents))
    stale = {
        kind: stale_partitions(instance, latest, asset, code_version, parents, partition_keys)
        for kind, asset, code_version, parents in shapes
    }
    out: dict[str, dict[str, AssetStatus]] = {}
    for pk in partition_keys:
        row: dict[str, AssetStatus] = {}
        for kind, asset, _, _ in shapes:
            if latest.get(asset, False, pk) is None:
                row[kind] = "missing"
            else:
                row[kind] = "stale" if pk in stale[kind] else "done"
        out[pk] = row
    return out

"""Per-sentence status of every asset: missing, stale or done, by Dagster's data-version rule.

An asset partition is missing without a materialization; stale when its code version changed
since it was made, or when an input has a newer record than the one it was made from (its
recorded data provenance) with another data version, or when it gained or lost an input; done
otherwise. That
is the rule of Dagster's stale-status resolver (``CachingStaleStatusResolver``) for this graph,
whose per-sentence inputs map partition to partition; the resolver asks the event log several
times per partition, so here each asset's latest records are read in bulk (``LatestRecords``)
and the rule is applied to them. ``tests/test_status.py`` pins that both agree.

What the rule needs of the graph is, per asset, its code version and its inputs (`AssetShape`).
`sentence_statuses` reads them from the Definitions' asset graph; `videogen status` reads them
from the per-sentence specs of the one project (`project_shapes`) and does not build the
Definitions of every project of the studio (a third of its time on a large project). Both give
the same shapes (``tests/test_status.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
from videogen_assets.sentence_assets import PER_SENTENCE, SENTENCE_SPECS
from videogen_assets.specs import ProjectSetup, SentenceAssetSpec
from videogen_domain import paths
from videogen_domain.models import AssetStatus
from videogen_domain.project import load_brief
from videogen_resources.settings import BackendSettings, build_resources


@dataclass(frozen=True)
class AssetShape:
    """What the status rule needs of one per-sentence asset: its kind (the last part of its
    key), key, code version and inputs (each input's key and whether it is observed)."""

    kind: str
    key: dg.AssetKey
    code_version: str | None
    parents: tuple[tuple[dg.AssetKey, bool], ...]


def graph_shapes(
    defs: dg.Definitions | Any, project: str, kinds: Sequence[str] = PER_SENTENCE
) -> list[AssetShape]:
    """The shapes of a project's per-sentence assets in the Definitions (or an asset graph
    already resolved)."""
    graph = defs.resolve_asset_graph() if isinstance(defs, dg.Definitions) else defs
    shapes = []
    for kind in kinds:
        node = graph.get(key(project, kind))
        parents = tuple((p, graph.get(p).is_external) for p in sorted(node.parent_keys))
        shapes.append(AssetShape(kind, node.key, node.code_version, parents))
    return shapes


def project_shapes(
    root: Path,
    project: str,
    settings: BackendSettings | None = None,
    specs: Sequence[SentenceAssetSpec] = SENTENCE_SPECS,
    kinds: Sequence[str] = PER_SENTENCE,
) -> list[AssetShape]:
    """The shapes of a project's per-sentence assets, from its specs, its brief and the
    studio's settings, as `definitions.build_definitions` gives them to the assets (a brief
    that cannot be read, or an engine that cannot be set up, raises its own error)."""
    settings = settings or BackendSettings.from_env()
    brief = load_brief(paths.project_dir(root, project))
    resources = build_resources(settings, root, [brief])
    setup = ProjectSetup(brief=brief, resources=resources, settings=settings)
    by_name = {s.name: s for s in specs}
    shapes = []
    for kind in kinds:
        spec = by_name[kind]
        parents = tuple(sorted(spec.parent_keys(project)))
        shapes.append(AssetShape(kind, spec.key(project), spec.code_version(setup), parents))
    return shapes


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
    newer record's data version differs from the older one's. Of an input that is not one of
    the assets whose records are read whole (the observed `sentence` and `direction`), only the
    latest storage ids are read, and the data versions of the few records newer than a pointer.
    """
    stale: set[str] = set()
    pointers: dict[dg.AssetKey, dict[str, int]] = {p: {} for p, _ in parents}
    wanted_inputs = frozenset(p for p, _ in parents)
    for pk in partitions:
        mine = latest.get(asset, False, pk)
        made_from = mine.made_from if mine else None
        if made_from is None:
            continue  # missing, or made before provenance was recorded: nothing to compare
        if code_version and made_from.code_version != code_version:
            stale.add(pk)
            continue
        if made_from.inputs != wanted_inputs:
            stale.add(pk)  # an input was removed or added
            continue
        for parent, is_source in parents:
            cursor = made_from.input_storage_ids.get(parent)
            now = latest.storage_id(parent, is_source, pk)
            if cursor is not None and now is not None and now > cursor:
                pointers[parent][pk] = cursor
    for parent, is_source in parents:
        wanted = pointers[parent]
        if not wanted:
            continue
        before = latest.records_at(parent, is_source, list(wanted.values()))
        current = latest.data_versions(parent, is_source, list(wanted))
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
            if _differ(version, current[pk]):
                stale.add(pk)
    return stale


def sentence_statuses(
    instance: dg.DagsterInstance,
    defs: dg.Definitions | Any,
    project: str,
    partition_keys: Sequence[str],
    kinds: Sequence[str] = PER_SENTENCE,
) -> dict[str, dict[str, AssetStatus]]:
    """For each sentence partition, each asset kind's status (the shapes of the assets read
    from ``defs``: the Definitions, or an asset graph already resolved)."""
    return shape_statuses(instance, graph_shapes(defs, project, kinds), partition_keys)


def shape_statuses(
    instance: dg.DagsterInstance, shapes: Sequence[AssetShape], partition_keys: Sequence[str]
) -> dict[str, dict[str, AssetStatus]]:
    """For each sentence partition, the status of each asset of ``shapes``, by kind."""
    latest = LatestRecords(instance, partition_keys)
    stale = {
        s.kind: stale_partitions(instance, latest, s.key, s.code_version, s.parents, partition_keys)
        for s in shapes
    }
    out: dict[str, dict[str, AssetStatus]] = {}
    for pk in partition_keys:
        row: dict[str, AssetStatus] = {}
        for s in shapes:
            if latest.get(s.key, False, pk) is None:
                row[s.kind] = "missing"
            else:
                row[s.kind] = "stale" if pk in stale[s.kind] else "done"
        out[pk] = row
    return out

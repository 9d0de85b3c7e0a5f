"""Per-sentence assets as declarative specs, and the one factory that turns them into assets.

A `SentenceAssetSpec` says everything about one per-sentence asset: its name, its parents
(listed once: Dagster's ``deps`` and the provenance `PartitionResults` records both come from
them), the pool, kinds and code version of each project's asset, the file it writes in the
sentence's folder, its checks and the function that makes it. `build_sentence_assets` turns a
project's specs into Dagster assets; `render_order` sorts specs so that every parent comes
before its children (`videogen render` runs them in that order).
"""

import contextlib
import functools
import graphlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from videogen_assets.batching import PartitionResults
from videogen_assets.cancel import stops_on_cancel
from videogen_assets.context import cast_of, key, load_sentence
from videogen_assets.partitions import sentence_partitions
from videogen_assets.previews import MediaLinks, run_sentence_tags, tag_single_sentence_run
from videogen_domain.project import ProjectBrief
from videogen_resources.base import CharacterRef
from videogen_resources.settings import BackendSettings
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase

RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


@dataclass(frozen=True)
class Parent:
    """An input of a per-sentence asset, in the same partition (the same sentence)."""

    name: str
    observed: bool = False  # an observable source asset (``sentence``, ``direction``)


@dataclass(frozen=True)
class Check:
    """An asset check a spec declares; its make function reports the results."""

    name: str
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class ProjectSetup:
    """What the engine-dependent facts of a project's assets (pool, kinds, code version) are
    read from: its brief and the studio's resources and settings."""

    brief: ProjectBrief
    resources: Mapping[str, Any]
    settings: BackendSettings


def _no_pool(_: ProjectSetup) -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class SentenceAssetSpec:
    """One per-sentence asset."""

    name: str  # the last part of the asset key: ``<project>/<name>``
    description: str
    parents: tuple[Parent, ...]
    output: str  # the file written in the sentence's folder
    make: Callable[["SentenceStep"], None]
    resource: str | None = None  # the resource the make function uses (`SentenceStep.maker`)
    kinds: Callable[[ProjectSetup], set[str]]
    code_version: Callable[[ProjectSetup], str]
    pool: Callable[[ProjectSetup], str | None] = _no_pool
    checks: tuple[Check, ...] = ()
    export: str | None = None  # the export package's folder for the file (None: not exported)

    def key(self, project: str) -> dg.AssetKey:
        return key(project, self.name)

    def parent_keys(self, project: str) -> list[tuple[dg.AssetKey, bool]]:
        """Each parent's key and whether it is observed (the provenance `PartitionResults`
        records, in the order of ``deps``)."""
        return [(key(project, p.name), p.observed) for p in self.parents]


@dataclass
class SentenceStep:
    """One step of a per-sentence asset over the partitions of its run: what a spec's make
    function works with. It records each partition's outcome in ``results``."""

    spec: SentenceAssetSpec
    project: str
    context: dg.AssetExecutionContext
    studio: StudioResource
    db: StudioDatabase
    maker: Any  # the spec's resource (None without one)
    results: PartitionResults
    outputs: Mapping[str, str]  # each per-sentence asset's file, by asset name
    links: MediaLinks = field(init=False)

    def __post_init__(self) -> None:
        self.links = MediaLinks(self.studio.media_base_url, self.studio.root_path)

    @functools.cached_property
    def brief(self) -> ProjectBrief:
        return self.studio.brief(self.project)

    @functools.cached_property
    def cast(self) -> dict[str, CharacterRef]:
        """The project's cast by name, read once per step."""
        return cast_of(self.db, self.studio, self.project)

    @property
    def partitions(self) -> Sequence[str]:
        return self.context.partition_keys

    def folder(self, partition: str) -> Path:
        """The sentence's folder."""
        return self.studio.sentence_dir(self.project, partition)

    def out(self, partition: str) -> Path:
        """The file this asset writes for the sentence."""
        return self.folder(partition) / self.spec.output

    def file_of(self, partition: str, name: str) -> Path:
        """The file the per-sentence asset ``name`` writes for the sentence."""
        return self.folder(partition) / self.outputs[name]

    def parent_file(self, partition: str, index: int = 0) -> Path:
        """The file the ``index``-th parent (a per-sentence asset) wrote for the sentence."""
        return self.file_of(partition, self.spec.parents[index].name)


def render_order(specs: Sequence[SentenceAssetSpec]) -> tuple[SentenceAssetSpec, ...]:
    """``specs`` with every parent before its children (a topological sort); specs ready at
    the same time keep the order they are listed in. A cycle or a parent that is neither a
    spec nor observed raises ``ValueError``."""
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise ValueError("two per-sentence specs have the same name")
    for s in specs:
        for p in s.parents:
            if not p.observed and p.name not in by_name:
                raise ValueError(f"{s.name}: parent {p.name!r} is not a per-sentence spec")
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(
        {s.name: {p.name for p in s.parents if not p.observed} for s in specs}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise ValueError(f"the per-sentence specs form a cycle: {exc.args[1]}") from exc
    index = {s.name: i for i, s in enumerate(specs)}
    out: list[SentenceAssetSpec] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=index.__getitem__)
        out += [by_name[n] for n in ready]
        sorter.done(*ready)
    return tuple(out)


def lineage(specs: Sequence[SentenceAssetSpec], name: str) -> tuple[str, ...]:
    """``name`` and the per-sentence assets it is made from, in render order."""
    by_name = {s.name: s for s in specs}
    wanted = {name}
    todo = [name]
    while todo:
        for p in by_name[todo.pop()].parents:
            if not p.observed and p.name not in wanted:
                wanted.add(p.name)
                todo.append(p.name)
    return tuple(s.name for s in render_order(specs) if s.name in wanted)


def downstream(specs: Sequence[SentenceAssetSpec], observed: str) -> tuple[str, ...]:
    """The per-sentence assets made (directly or not) from the observed asset ``observed``,
    in render order."""
    hit: set[str] = {observed}
    names: list[str] = []
    for s in render_order(specs):
        if any(p.name in hit for p in s.parents):
            hit.add(s.name)
            names.append(s.name)
    return tuple(names)


def _name_run(context: dg.AssetExecutionContext, db: StudioDatabase) -> None:
    """Tag a run over one sentence with that sentence's words and section (the Runs page)."""
    if len(context.partition_keys) == 1:
        with contextlib.suppress(dg.Failure):  # deleted meanwhile: the step says so itself
            s = load_sentence(db, context.partition_keys[0])
            tag_single_sentence_run(context, run_sentence_tags(s.id, s.text, s.section))


def build_sentence_assets(
    project: str,
    specs: Sequence[SentenceAssetSpec],
    setup: ProjectSetup,
    *,
    automation: dg.AutomationCondition | None,
) -> list[dg.AssetsDefinition]:
    """The per-sentence assets of one project, one per spec, in render order."""
    parts = sentence_partitions(project)
    ordered = render_order(specs)
    outputs = {s.name: s.output for s in ordered}
    return [_build_one(project, spec, setup, parts, automation, outputs) for spec in ordered]


def _build_one(
    project: str,
    spec: SentenceAssetSpec,
    setup: ProjectSetup,
    parts: dg.PartitionsDefinition,
    automation: dg.AutomationCondition | None,
    outputs: Mapping[str, str],
) -> dg.AssetsDefinition:
    k = spec.key(project)
    parents = spec.parent_keys(project)

    @dg.asset(
        key=k,
        description=spec.description,
        partitions_def=parts,
        group_name=project,
        kinds=spec.kinds(setup),
        code_version=spec.code_version(setup),
        automation_condition=automation,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=RETRY,
        output_required=False,  # a batch logs each sentence's materialization itself
        deps=[p for p, _ in parents],
        pool=spec.pool(setup),
        check_specs=[
            dg.AssetCheckSpec(c.name, asset=k, description=c.description) for c in spec.checks
        ],
        required_resource_keys={"studio", "db", *([spec.resource] if spec.resource else [])},
    )
    @stops_on_cancel
    def _asset(context: dg.AssetExecutionContext) -> Iterator[Any]:
        # yields a MaterializeResult for one partition, check results for a batch
        # (no `from __future__ import annotations` here: Dagster reads this annotation)
        db: StudioDatabase = context.resources.db
        step = SentenceStep(
            spec=spec,
            project=project,
            context=context,
            studio=context.resources.studio,
            db=db,
            maker=getattr(context.resources, spec.resource) if spec.resource else None,
            results=PartitionResults(context, parents=parents),
            outputs=outputs,
        )
        _name_run(context, db)
        spec.make(step)
        yield from step.results.outputs()

    return _asset

"""Helpers for tests of declarative automation: a studio copy with its instance, evaluation
ticks that carry the cursor like the daemon (one of them can be paused between reading the
event log and evaluating, as a daemon tick is while runs move on), runs of what was requested,
and materializations counted per asset partition."""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from videogen.operations import sync
from videogen_assets.context import key
from videogen_resources.base import ClipJob, ClipResult
from videogen_resources.embedded.kenburns import KenBurnsClips

Requests = dict[str, set[str | None]]


class SlowClips(KenBurnsClips):
    """The embedded clip maker, made slow on purpose: each clip waits `delay_s` first, or,
    with `gate`, until that file exists, so a test can act while the clip's run is in
    progress and decide when it goes on."""

    delay_s: float = 3.0
    gate: str = ""

    def make_clip(self, job: ClipJob) -> ClipResult:
        if self.gate:
            deadline = time.monotonic() + 300
            while not Path(self.gate).exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.gate} never appeared")
                time.sleep(0.05)
        else:
            time.sleep(self.delay_s)
        return super().make_clip(job)


@dataclass
class World:
    root: Path
    instance: dg.DagsterInstance
    defs: dg.Definitions
    cursor: object

    def script(self, project: str) -> Path:
        return self.root / "projects" / project / "script.md"

    def save(self, project: str, old: str, new: str) -> None:
        """Save an edit of script.md (no sync)."""
        path = self.script(project)
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new), encoding="utf-8")

    def edit(self, project: str, old: str, new: str) -> None:
        """Save an edit and sync it (as `videogen sync` does)."""
        self.save(project, old, new)
        sync(self.root, project, instance=self.instance)

    def _requests(self, result: Any, defs: dg.Definitions) -> Requests:
        out: Requests = {}
        for k in defs.resolve_asset_graph().get_all_asset_keys():
            parts = result.get_requested_partitions(k)
            if parts:
                out[k.to_user_string()] = set(parts)
        return out

    def tick(self, defs: dg.Definitions | None = None) -> Requests:
        """One evaluation of every automation condition, carrying the cursor like the daemon."""
        defs = defs or self.defs
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=self.instance,
            cursor=self.cursor,  # type: ignore[arg-type]
        )
        self.cursor = result.cursor
        return self._requests(result, defs)

    def paused_tick(self, meanwhile: Callable[[], None]) -> Requests:
        """One evaluation that reads the event log's position first, then lets `meanwhile`
        happen (a run finishing), then evaluates: a daemon tick during which a run ends.

        Dagster bounds the events a tick considers by the position it read when the daemon's
        settle delay is set (``DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS``); run statuses are read
        when evaluated.
        """
        from dagster import EvaluateAutomationConditionsResult, partition_loading_context
        from dagster_shared.serdes import deserialize_value, serialize_value

        from videogen_assets.dagster_internals import (
            AssetDaemonCursor,
            AutomationConditionEvaluator,
        )

        graph = self.defs.resolve_asset_graph()
        selection = (
            dg.AssetSelection.all(include_sources=True) | dg.AssetSelection.all_asset_checks()
        )
        cursor = (
            deserialize_value(serialize_value(self.cursor), AssetDaemonCursor)
            if self.cursor
            else AssetDaemonCursor.empty()
        )
        with _env("DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS", "1"):
            evaluator = AutomationConditionEvaluator(
                asset_graph=graph,
                instance=self.instance,
                entity_keys={
                    k
                    for k in selection.resolve(graph) | selection.resolve_checks(graph)
                    if graph.get(k).automation_condition is not None
                },
                evaluation_time=None,
                emit_backfills=False,
                logger=logging.getLogger("tests.paused_tick"),
                cursor=cursor,
                evaluation_id=cursor.evaluation_id,
            )
        meanwhile()
        results, requested = evaluator.evaluate()
        now = datetime.datetime.now()
        with partition_loading_context(
            effective_dt=now, dynamic_partitions_store=self.instance
        ) as ctx:
            new_cursor = cursor.with_updates(
                evaluation_timestamp=now.timestamp(),
                newly_observe_requested_asset_keys=[],
                evaluation_id=cursor.evaluation_id + 1,
                condition_cursors=[r.get_new_cursor() for r in results],
                asset_graph=graph,
            )
            result = EvaluateAutomationConditionsResult(
                cursor=new_cursor,
                requested_subsets=requested,
                results=results,
                partition_loading_context=ctx,
            )
            self.cursor = new_cursor
            return self._requests(result, self.defs)

    def materialize(
        self,
        names: list[str],
        partition: str | None,
        resources: Mapping[str, Any] | None = None,
    ) -> None:
        """One run of these assets (for one sentence, or the project outputs)."""
        assets = [
            a
            for a in self.defs.assets or []
            if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))
        ]
        result = dg.materialize(
            assets,
            instance=self.instance,
            resources={**dict(self.defs.resources or {}), **dict(resources or {})},
            selection=[dg.AssetKey.from_user_string(n) for n in sorted(names)],
            partition_key=partition,
        )
        assert result.success, names

    def run(self, requests: Requests, resources: Mapping[str, Any] | None = None) -> None:
        """Materialize what was requested as the automation sensor groups it: one run per
        partition holding every asset requested for it (and one for the project outputs)."""
        by_partition: dict[str | None, list[str]] = {}
        for name, parts in requests.items():
            for part in parts:
                by_partition.setdefault(part, []).append(name)
        for part, names in sorted(by_partition.items(), key=lambda kv: str(kv[0])):
            self.materialize(names, part, resources)

    def latest(self, kind: str, partition: str, project: str = "alpha") -> int | None:
        """The storage id of the latest materialization of one sentence asset."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key(project, kind), asset_partitions=[partition]),
            limit=1,
        ).records
        return records[0].storage_id if records else None

    def settle(self, limit: int = 8, resources: Mapping[str, Any] | None = None) -> list[Requests]:
        """Tick and run until nothing is requested; the requests of each tick."""
        ticks: list[Requests] = []
        for _ in range(limit):
            requests = self.tick()
            if not requests:
                return ticks
            ticks.append(requests)
            self.run(requests, resources)
        raise AssertionError(f"automation did not settle: {ticks}")

    def materializations_after(self, storage_id: int, project: str = "alpha") -> Counter[str]:
        """How many materializations each asset partition of a project got after a point of
        the event log (``asset`` or ``asset[partition]``)."""
        counts: Counter[str] = Counter()
        for kind in (
            "narration",
            "shot",
            "keyframe",
            "clip",
            "rough_cut",
            "subtitles",
            "storyboard",
            "export",
        ):
            for rec in self.instance.fetch_materializations(
                key(project, kind), limit=10000
            ).records:
                if rec.storage_id > storage_id:
                    counts[
                        kind if rec.partition_key is None else f"{kind}[{rec.partition_key}]"
                    ] += 1
        return counts

    def event_position(self) -> int:
        """The event log's latest storage id."""
        return self.instance.event_log_storage.get_maximum_record_id() or 0


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

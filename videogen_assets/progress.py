"""What is stale, what runs now and how far a project is, as asset checks on the lineage page.

Each per-sentence asset (narration, shot, keyframe, clip) has the check ``up_to_date``: it
passes when every sentence's partition is made and not stale (Dagster's data-version rule,
``videogen_assets.status``); otherwise it warns with how many are done, stale and missing and
names the first stale and missing sentences by their words. The rough cut's ``up_to_date``
check sums up the project: how many sentences are fully made, whether the cut holds the newest
clips, and which runs over the project are in progress. The lineage page shows each check's
state on its asset's node, and the check's description and metadata give the figures.

The checks are evaluated by the ``progress`` sensor every few seconds (reported as runless
check evaluations, and only when a figure changed: no run is started for them) and can be run
by hand from the UI. Declarative automation does not request them (they have no automation
condition), so they add no step to the studio's runs.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from videogen_assets.context import CLIP, NARRATION, ROUGH_CUT, key, sentence_order
from videogen_assets.dagster_internals import IN_PROGRESS_RUN_STATUSES, asset_graph_from_assets
from videogen_assets.partitions import partitions_name
from videogen_assets.previews import SENTENCE_TAG, sentence_label
from videogen_assets.sentence_assets import PER_SENTENCE
from videogen_assets.status import sentence_statuses
from videogen_store.database import StudioDatabase

CHECK_NAME = "up_to_date"
LISTED = 8  # sentences named in a check's description and metadata
_DESCRIPTION = (
    "Every sentence made and current; warns with the stale and missing ones (see the README's "
    "'Where to look in the Dagster UI')."
)


@dataclass(frozen=True)
class Verdict:
    """One check's evaluation, before it becomes a Dagster event."""

    asset: dg.AssetKey
    passed: bool
    description: str
    metadata: dict[str, Any]

    def fingerprint(self) -> str:
        """Changes whenever what the UI would show changes."""
        body = json.dumps([self.passed, self.description, self.metadata], sort_keys=True)
        return hashlib.sha1(body.encode()).hexdigest()[:16]

    def evaluation(self) -> dg.AssetCheckEvaluation:
        """A runless check evaluation (reported by the sensor)."""
        return dg.AssetCheckEvaluation(
            asset_key=self.asset,
            check_name=CHECK_NAME,
            passed=self.passed,
            metadata=self.metadata,
            severity=dg.AssetCheckSeverity.WARN,
            description=self.description,
        )

    def result(self) -> dg.AssetCheckResult:
        """The same, as the result of running the check."""
        return dg.AssetCheckResult(
            passed=self.passed,
            metadata=self.metadata,
            severity=dg.AssetCheckSeverity.WARN,
            description=self.description,
        )


def _named(ids: Sequence[str], labels: dict[str, str]) -> str:
    shown = [labels.get(i, i) for i in ids[:LISTED]]
    more = f" … and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
    return "; ".join(shown) + more if shown else "-"


def _latest_storage_id(instance: dg.DagsterInstance, asset: dg.AssetKey) -> int | None:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset), limit=1)
    return records.records[0].storage_id if records.records else None


def _runs_in_progress(instance: dg.DagsterInstance, project: str) -> list[str]:
    """The runs of this project queued or in progress, each named by its sentence when it
    makes one (else by its partition range or its run id)."""
    out: list[str] = []
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES), limit=50)
    for run in runs:
        keys = run.asset_selection or frozenset()
        tags = run.tags
        first = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_start")
        if not any(k.path[0] == project for k in keys) and not (
            not keys and first and first.startswith(f"{project}.")
        ):
            continue
        kinds = ",".join(sorted(k.path[-1] for k in keys)) or "run"
        what = tags.get(SENTENCE_TAG)
        if what is None:
            start = first
            end = tags.get("dagster/asset_partition_range_end")
            what = f"{start}…{end}" if start and end and end != start else (start or run.run_id[:8])
        out.append(f"{kinds} {what} ({run.status.value.lower()})")
    return out


def evaluate_project(
    instance: dg.DagsterInstance, graph: Any, db: StudioDatabase, project: str
) -> list[Verdict]:
    """The ``up_to_date`` verdict of each per-sentence asset and of the rough cut."""
    ids = list(instance.get_dynamic_partitions(partitions_name(project)))
    labels = {s.id: sentence_label(s.id, s.text) for s in sentence_order(db, project)}
    statuses = sentence_statuses(instance, graph, project, ids) if ids else {}
    verdicts: list[Verdict] = []
    for kind in PER_SENTENCE:
        stale = [i for i in ids if statuses.get(i, {}).get(kind) == "stale"]
        missing = [i for i in ids if statuses.get(i, {}).get(kind, "missing") == "missing"]
        done = len(ids) - len(stale) - len(missing)
        parts = [f"{done}/{len(ids)} sentences current"]
        parts += [f"{len(stale)} stale"] if stale else []
        parts += [f"{len(missing)} missing"] if missing else []
        verdicts.append(
            Verdict(
                asset=key(project, kind),
                passed=bool(ids) and not stale and not missing,
                description=" · ".join(parts) if ids else "no sentences yet",
                metadata={
                    "current": done,
                    "stale": len(stale),
                    "missing": len(missing),
                    "sentences": len(ids),
                    "stale_sentences": _named(stale, labels),
                    "missing_sentences": _named(missing, labels),
                },
            )
        )

    complete = [i for i in ids if all(v == "done" for v in statuses.get(i, {}).values())]
    behind = [i for i in ids if i not in complete]
    cut = _latest_storage_id(instance, key(project, ROUGH_CUT))
    newest_input = max(
        (
            s
            for s in (_latest_storage_id(instance, key(project, k)) for k in (CLIP, NARRATION))
            if s
        ),
        default=None,
    )
    if cut is None:
        cut_state = "missing"
    elif newest_input is not None and newest_input > cut:
        cut_state = "behind its clips"
    else:
        cut_state = "current"
    running = _runs_in_progress(instance, project)
    parts = [f"{len(complete)}/{len(ids)} sentences fully made", f"rough cut {cut_state}"]
    if running:
        parts.append(f"{len(running)} run{'s' if len(running) != 1 else ''} in progress")
    verdicts.append(
        Verdict(
            asset=key(project, ROUGH_CUT),
            passed=bool(ids) and not behind and cut_state == "current",
            description=" · ".join(parts),
            metadata={
                "progress_percent": round(100.0 * len(complete) / len(ids), 1) if ids else 0.0,
                "sentences_done": len(complete),
                "sentences": len(ids),
                "rough_cut": cut_state,
                "sentences_behind": _named(behind, labels),
                "runs_in_progress": "; ".join(running[:LISTED]) or "-",
            },
        )
    )
    return verdicts


def build_progress_checks(
    project: str, graph_assets: list[dg.AssetsDefinition | dg.SourceAsset]
) -> list[dg.AssetChecksDefinition]:
    """The ``up_to_date`` checks of one project, runnable by hand from the UI.

    ``graph_assets``: the project's asset list, from which Dagster's asset graph is built
    when a check runs.
    """

    def make(kind: str) -> dg.AssetChecksDefinition:
        asset = key(project, kind)

        @dg.asset_check(
            asset=asset,
            name=CHECK_NAME,
            description=_DESCRIPTION,
            blocking=False,
        )
        def up_to_date(
            context: dg.AssetCheckExecutionContext, db: StudioDatabase
        ) -> dg.AssetCheckResult:
            graph = asset_graph_from_assets(graph_assets)
            verdicts = evaluate_project(context.instance, graph, db, project)
            return next(v for v in verdicts if v.asset == asset).result()

        return up_to_date

    return [make(kind) for kind in (*PER_SENTENCE, ROUGH_CUT)]


def build_progress_sensor(projects: list[str], *, interval_s: int = 5) -> dg.SensorDefinition:
    """Reports each project's ``up_to_date`` checks when a figure changed (no run started)."""

    @dg.sensor(
        name="progress",
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps each project's up_to_date checks current: what is stale, what runs, "
        "how far.",
    )
    def progress(context: dg.SensorEvaluationContext, db: StudioDatabase) -> dg.SkipReason:
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        graph = context.repository_def.asset_graph if context.repository_def else None
        if graph is None:
            return dg.SkipReason("no repository")
        # nothing new in the event log and the same runs in progress: nothing can have changed
        active = context.instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES))
        gate = f"{context.instance.event_log_storage.get_maximum_record_id()}|" + ",".join(
            sorted(f"{r.run_id}:{r.status.value}" for r in active)
        )
        if cursor.get("__gate__") == gate:
            return dg.SkipReason("nothing changed")
        reported = 0
        for project in projects:
            for verdict in evaluate_project(context.instance, graph, db, project):
                name = verdict.asset.to_user_string()
                fingerprint = verdict.fingerprint()
                if cursor.get(name) == fingerprint:
                    continue
                context.instance.report_runless_asset_event(verdict.evaluation())
                cursor[name] = fingerprint
                reported += 1
        if not reported:  # (reporting adds events: the next tick looks once more)
            cursor["__gate__"] = gate
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        return dg.SkipReason(
            f"{reported} check evaluation(s) reported" if reported else "unchanged"
        )

    return progress

"""Is a run changing this project's media right now? Asked of the Dagster instance.

An export copies the studio's current files. While a run is making a project's narrations,
keyframes, clips, subtitles or rough cut, those files change under the export: some fresh, some
old, and a rough cut that matches neither. The studio keeps no older versions of a file to
snapshot from, so an export during such a run refuses, naming the run (its id, what it makes,
since when); the export of a render's own run is not held up by itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from videogen_assets.export.package import ExportError

if TYPE_CHECKING:  # dagster is imported when asked: a plain export does not need it
    import dagster as dg

IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
"""Run statuses that may still write files."""

MEDIA_ASSETS = frozenset({"narration", "shot", "keyframe", "clip", "rough_cut", "subtitles"})
"""A project's assets whose files (or facts) go into the export package."""


@dataclass(frozen=True)
class ActiveRun:
    """A run in progress that writes what an export of the project reads."""

    run_id: str
    status: str
    assets: tuple[str, ...]  # "narration", "clip", ...
    since: dt.datetime | None

    def describe(self) -> str:
        when = f" since {self.since:%H:%M:%S} UTC" if self.since else ""
        return f"run {self.run_id} ({self.status.lower()}{when}, making {', '.join(self.assets)})"


def runs_in_progress(
    instance: dg.DagsterInstance, project: str, *, exclude: Iterable[str] = ()
) -> list[ActiveRun]:
    """The runs in progress that make ``project``'s media, oldest first (``exclude``: run ids)."""
    import dagster as dg

    skip = set(exclude)
    found: list[ActiveRun] = []
    statuses = [dg.DagsterRunStatus(s) for s in IN_PROGRESS]
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=statuses))
    for record in records:
        run = record.dagster_run
        if run.run_id in skip:
            continue
        kinds = sorted(
            {
                key.path[-1]
                for key in _planned_assets(instance, run)
                if len(key.path) >= 2 and key.path[0] == project and key.path[-1] in MEDIA_ASSETS
            }
        )
        if not kinds:
            continue
        since = record.start_time or record.create_timestamp.timestamp()
        found.append(
            ActiveRun(
                run_id=run.run_id,
                status=run.status.value,
                assets=tuple(kinds),
                since=dt.datetime.fromtimestamp(since, dt.UTC) if since else None,
            )
        )
    return sorted(found, key=lambda r: r.since or dt.datetime.min.replace(tzinfo=dt.UTC))


def _planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[dg.AssetKey]:
    """The assets a run materializes: its selection, else the asset outputs of its plan."""
    if run.asset_selection:
        return set(run.asset_selection)
    keys: set[dg.AssetKey] = set()
    if run.execution_plan_snapshot_id:
        snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        wanted = set(run.step_keys_to_execute or ())
        for step in snapshot.steps:
            if wanted and step.key not in wanted:
                continue
            for output in step.outputs:
                if output.properties is not None and output.properties.asset_key is not None:
                    keys.add(output.properties.asset_key)
    return keys


def refuse_during_runs(
    instance: dg.DagsterInstance, project: str, *, exclude: Iterable[str] = ()
) -> None:
    """Raise :class:`~videogen_assets.export.ExportError` naming the run(s) making the media."""
    active = runs_in_progress(instance, project, exclude=exclude)
    if not active:
        return
    more = f" and {len(active) - 1} more run(s)" if len(active) > 1 else ""
    raise ExportError(
        f"export {project}: {active[0].describe()}{more} is changing this project's media; "
        "export when it has finished (a package made now would mix old and new files)"
    )


def narration_loudness(
    instance: dg.DagsterInstance, project: str, sentence_ids: Iterable[str]
) -> dict[str, float]:
    """Each sentence's narration loudness (LUFS) as recorded by its latest materialization."""
    import dagster as dg

    ids = list(sentence_ids)
    if not ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey([project, "narration"]), asset_partitions=ids),
        limit=len(ids) * 8,
    ).records
    out: dict[str, float] = {}
    for rec in records:  # newest first
        pk = rec.partition_key
        mat = rec.asset_materialization
        if pk is None or pk in out or mat is None:
            continue
        value = mat.metadata.get("loudness_lufs")
        if value is not None and isinstance(value.value, (int, float)):
            out[pk] = float(value.value)
    return out

"""Tell Dagster what a script sync changed: sentence partitions and observed data versions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import dagster as dg

from videogen_assets.context import DIRECTION, SCRIPT, SENTENCE, file_digest, key
from videogen_assets.dagster_internals import DATA_VERSION_TAG, runless_event_entries
from videogen_assets.partitions import partitions_name
from videogen_assets.records import store_asset_events
from videogen_domain import paths
from videogen_resources.studio import StudioResource
from videogen_store.database import PublishedMark, Sentence, StudioDatabase
from videogen_store.sync import SyncResult


@dataclass
class PublishReport:
    """What was reported to the Dagster instance."""

    project: str
    partitions_added: list[str] = field(default_factory=list)
    partitions_deleted: list[str] = field(default_factory=list)
    sentence_observed: list[str] = field(default_factory=list)
    direction_observed: list[str] = field(default_factory=list)
    script_reported: bool = False

    @property
    def changed(self) -> bool:
        """Whether anything was reported."""
        return bool(
            self.partitions_added
            or self.partitions_deleted
            or self.sentence_observed
            or self.direction_observed
            or self.script_reported
        )


def publish(
    instance: dg.DagsterInstance,
    db: StudioDatabase,
    studio: StudioResource,
    result: SyncResult,
    *,
    observe: bool = True,
    defer: Collection[str] = (),
) -> PublishReport:
    """Add/delete dynamic partitions and report new data versions of `sentence`/`direction`.

    Idempotent: only versions that differ from the last published ones are reported, so calling
    it from both the CLI and the sensor never reports a change twice. ``observe=False`` only
    syncs partitions (a new project: the two observations per sentence are left to the first
    render, sync or sensor tick). ``defer``: sentences whose new versions are left for the run
    that regenerates them to report (`publish_pending`), so that no automation tick sees them
    changed before that run exists.
    """
    project = result.project
    report = PublishReport(project=project)
    parts = partitions_name(project)
    existing = set(instance.get_dynamic_partitions(parts))
    wanted = set(result.order)
    report.partitions_added = [k for k in result.order if k not in existing]
    if report.partitions_added:
        instance.add_dynamic_partitions(parts, report.partitions_added)
    for k in sorted(existing - wanted):
        instance.delete_dynamic_partition(parts, k)
        studio.remove_sentence_files(project, k)
        report.partitions_deleted.append(k)

    report.script_reported = report_script(instance, studio, project, sentences=len(result.order))
    if not observe:
        return report
    deferred = set(defer)
    rows = db.unpublished_sentences(project)
    _report_pending(instance, db, project, [r for r in rows if r.id not in deferred], report)
    return report


def report_script(
    instance: dg.DagsterInstance, studio: StudioResource, project: str, *, sentences: int
) -> bool:
    """Record the creator's script.md as the `script` asset's latest materialization.

    The `script` asset is materialized by Dagster only when the LLM writes the script; a script
    the creator wrote (or edited) is reported as made outside Dagster, with the data version
    the asset gives its own output (the file's content hash), so the UI shows the script that
    is there instead of "Never materialized". Idempotent: nothing is reported when the latest
    materialization already has this content. Returns whether a materialization was reported.
    """
    path = studio.project_dir(project) / paths.SCRIPT_FILE
    if not path.is_file():
        return False
    version = file_digest(path)
    asset_key = key(project, SCRIPT)
    latest = instance.get_latest_materialization_event(asset_key)
    mat = latest.asset_materialization if latest is not None else None
    if mat is not None and mat.tags and mat.tags.get(DATA_VERSION_TAG) == version:
        return False
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=asset_key,
            description="script.md as it is on disk (written or edited outside Dagster)",
            tags={DATA_VERSION_TAG: version},
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "sentences": sentences,
            },
        )
    )
    return True


def publish_pending(
    instance: dg.DagsterInstance, db: StudioDatabase, project: str, partitions: Sequence[str]
) -> list[str]:
    """Report the observed data versions of these sentences that the script sync has not
    reported yet (see ``publish(defer=...)``); the sentences reported.

    Called by a step that reads a sentence's words or directives before it records its
    materialization, so the provenance it records names the version it used.
    """
    if not partitions:
        return []
    report = PublishReport(project=project)
    _report_pending(instance, db, project, db.sentences_by_id(partitions), report)
    return sorted(set(report.sentence_observed) | set(report.direction_observed))


def _report_pending(
    instance: dg.DagsterInstance,
    db: StudioDatabase,
    project: str,
    rows: Sequence[Sentence],
    report: PublishReport,
) -> None:
    """Report the rows' unreported versions, then mark them reported."""
    k_sentence, k_direction = key(project, SENTENCE), key(project, DIRECTION)
    events: list[dg.AssetObservation] = []
    marks: list[PublishedMark] = []
    for row in rows:
        sentence_version: str | None = None
        direction_version: str | None = None
        if row.published_sentence_version != row.sentence_version:
            events.append(
                dg.AssetObservation(
                    asset_key=k_sentence,
                    partition=row.id,
                    tags={DATA_VERSION_TAG: row.sentence_version},
                    metadata={"text": row.text, "line": row.line},
                )
            )
            sentence_version = row.sentence_version
            report.sentence_observed.append(row.id)
        if row.published_direction_version != row.direction_version:
            events.append(
                dg.AssetObservation(
                    asset_key=k_direction,
                    partition=row.id,
                    tags={DATA_VERSION_TAG: row.direction_version},
                    metadata={
                        "camera": row.camera_movement or "-",
                        "motion": row.motion_strength if row.motion_strength is not None else -1,
                        "image_prompt": row.image_prompt or "-",
                        "characters": ", ".join(row.characters or []) or "-",
                    },
                )
            )
            direction_version = row.direction_version
            report.direction_observed.append(row.id)
        if sentence_version is not None or direction_version is not None:
            marks.append(PublishedMark(row.id, sentence_version, direction_version))
    # Stored before the "published" marks: a crash in between reports the same versions
    # again next time, which changes nothing.
    report_observations(instance, events)
    db.mark_published(marks)


def report_observations(
    instance: dg.DagsterInstance, observations: list[dg.AssetObservation]
) -> None:
    """Store many runless observations in one batch (on SQLite one transaction per file, not
    two per observation: see ``records.store_asset_events``)."""
    if not observations:
        return
    entries = runless_event_entries(observations)

    for start in range(0, len(entries), 2000):
        store_asset_events(instance, entries[start : start + 2000])

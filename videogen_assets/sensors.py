"""Sensors: the script watcher that turns a saved script.md into partitions and data versions."""

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from videogen_assets.context import (
    DIRECTION,
    EXPORT,
    PER_PROJECT,
    ROUGH_CUT,
    SENTENCE,
    STORYBOARD,
    SUBTITLES,
    key,
)
from videogen_assets.dagster_internals import project_has_requested_backfill
from videogen_assets.partitions import partitions_name
from videogen_assets.publish import publish
from videogen_assets.sentence_assets import PER_SENTENCE, SENTENCE_SPECS
from videogen_assets.specs import downstream
from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase
from videogen_store.sync import SyncResult, sync_project


def _stamp(folder: Path) -> str:
    parts = []
    for name in (paths.SCRIPT_FILE, paths.PROJECT_FILE):
        f = folder / name
        try:
            st = f.stat()
        except OSError:
            st = None
        parts.append(f"{st.st_mtime_ns}:{st.st_size}" if st else "-")
    return "|".join(parts)


def _characters_stamp(db: StudioDatabase) -> str:
    """Changes whenever a library character is added, edited or removed."""
    return db.characters_stamp()


# Runs that are waiting or running: a run for this project in one of these states means an
# edit is left to automation, which waits for it.
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class SentenceEdit:
    """One made sentence whose words and/or directives changed, and nothing else did."""

    project: str
    sentence: str
    words: bool  # the words or the speaker changed (the narration is made again)
    stamp: str  # the saved file's stamp and the new versions: one run per save

    def run_request(self) -> dg.RunRequest:
        """One run: the sentence's chain and the project outputs that follow from it."""
        chain = list(downstream(SENTENCE_SPECS, SENTENCE if self.words else DIRECTION))
        outputs = [ROUGH_CUT, STORYBOARD, EXPORT] + ([SUBTITLES] if self.words else [])
        return dg.RunRequest(
            run_key=f"{self.sentence}:{self.stamp}",
            partition_key=self.sentence,
            asset_selection=[key(self.project, n) for n in chain + outputs],
            tags={
                "videogen/reason": "sentence edited" if self.words else "directives edited",
                "videogen/sentence": self.sentence,
            },
        )


def one_sentence_edit(
    instance: dg.DagsterInstance,
    db: StudioDatabase,
    project: str,
    result: SyncResult,
    studio_dir: Path,
) -> SentenceEdit | None:
    """The edit the watcher regenerates with one run of its own, or None to leave the sync to
    declarative automation.

    One run (chain and project outputs together) needs: exactly one sentence with versions not
    yet reported, that sentence's four assets made before, no sentence added, deleted or
    moved, and no run or backfill of this project waiting or running (automation waits for
    those; two runs building the rough cut at once could record the older one last).
    """
    if result.added or result.removed or result.reordered:
        return None
    existing = set(instance.get_dynamic_partitions(partitions_name(project)))
    if existing != set(result.order):
        return None
    pending = db.unpublished_sentences(project)
    if len(pending) != 1:
        return None
    row = pending[0]
    sentence, words = row.id, row.published_sentence_version != row.sentence_version
    stamp = f"{_stamp(studio_dir)}|{row.sentence_version}-{row.direction_version}"
    for kind in PER_SENTENCE:
        if sentence not in instance.get_materialized_partitions(key(project, kind)):
            return None
    if _project_busy(instance, project):
        return None
    return SentenceEdit(project=project, sentence=sentence, words=words, stamp=stamp)


def _project_busy(instance: dg.DagsterInstance, project: str) -> bool:
    for run in instance.get_runs(dg.RunsFilter(statuses=_ACTIVE)):
        if any(k.path[0] == project for k in run.asset_selection or ()):
            return True
    return project_has_requested_backfill(instance, project)


def build_script_watcher(
    projects: list[str], automated: set[str], *, interval_s: int = 2
) -> dg.SensorDefinition:
    """A sensor that syncs every project's script.md when it changes on disk."""

    # A sensor's RunRequests need a target: the automated projects' assets (a request names
    # the subset it runs).
    target = dg.AssetSelection.groups(*sorted(automated)) if automated else None

    @dg.sensor(
        name="script_watcher",
        target=target,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Notices a saved script.md and syncs sentence partitions and data versions.",
    )
    def script_watcher(
        context: dg.SensorEvaluationContext, studio: StudioResource, db: StudioDatabase
    ) -> dg.SensorResult | dg.SkipReason:
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        cast_stamp = _characters_stamp(db)
        cast_changed = cursor.get("__characters__") != cast_stamp
        cursor["__characters__"] = cast_stamp
        runs: list[dg.RunRequest] = []
        notes: list[str] = []
        for project in projects:
            folder = studio.project_dir(project)
            stamp = _stamp(folder)
            if cursor.get(project) == stamp and not cast_changed:
                continue
            try:
                # A character edit changes no file: re-derive the versions of every project.
                result = sync_project(db, folder, force=cast_changed)
            except (InputError, OSError) as exc:
                # Keep what exists; say exactly what is wrong. Retry when the file changes again.
                context.log.error(str(exc))
                notes.append(f"{project}: {exc}")
                cursor[project] = stamp
                continue
            edit = None
            if project in automated and not cast_changed:
                edit = one_sentence_edit(context.instance, db, project, result, folder)
            # Partitions and observations are written here (`publish`), not returned as
            # SensorResult(dynamic_partitions_requests=..., asset_events=...): the daemon stores
            # returned events one at a time (`report_runless_asset_event`, two SQLite
            # transactions each) and checks each added partition with a query of its own.
            # Measured for 400 new sentences on a busy 2-core machine: 2.7 s written here in one
            # batch, 79 s the daemon's way (61 s events, 18 s partitions); a first sync of
            # 5,000 sentences (10,000 observations) would take minutes. And the daemon stores
            # returned events after the tick, once the studio database has marked them reported:
            # a daemon stopped in between would lose them; written here, they are stored first.
            report = publish(
                context.instance, db, studio, result, defer=[edit.sentence] if edit else ()
            )
            cursor[project] = stamp
            if edit is not None:
                runs.append(edit.run_request())
                notes.append(f"{project}: {edit.sentence} edited: one run regenerates it")
            elif report.changed or result.changed:
                notes.append(
                    f"{project}: +{len(report.partitions_added)} -{len(report.partitions_deleted)}"
                    f" sentence~{len(report.sentence_observed)}"
                    f" direction~{len(report.direction_observed)}"
                )
            # A deleted or moved sentence changes no upstream data version, yet the project-level
            # outputs must be rebuilt: ask for them directly.
            if project in automated and (report.partitions_deleted or result.reordered):
                runs.append(
                    dg.RunRequest(
                        run_key=f"{project}:{stamp}",
                        asset_selection=[key(project, n) for n in PER_PROJECT],
                        tags={"videogen/reason": "sentences deleted or reordered"},
                    )
                )
        on_disk = {
            p.name
            for p in paths.projects_dir(studio.root_path).glob("*")
            if (p / "project.yaml").exists()
        }
        new = sorted(on_disk - set(projects))
        if new:
            notes.append(f"new project(s) {', '.join(new)}: reload the code location to load them")
        new_cursor = json.dumps(cursor, sort_keys=True)
        if not runs and not notes and new_cursor == (context.cursor or "{}"):
            return dg.SkipReason("no script changed")
        for note in notes:
            context.log.info(note)
        return dg.SensorResult(run_requests=runs, cursor=new_cursor)

    return script_watcher

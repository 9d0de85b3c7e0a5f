"""Sensors: the script watcher that turns a saved script.md into partitions and data versions."""

import json
from pathlib import Path

import dagster as dg

from videogen import paths
from videogen.errors import InputError
from videogen.sync import sync_project
from videogen_assets.context import PER_PROJECT, key
from videogen_assets.publish import publish
from videogen_resources.database import StudioDatabase
from videogen_resources.studio import StudioResource


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
    from sqlalchemy import func, select

    from videogen_resources.database import Character

    with db.session() as s:
        count, latest = s.execute(
            select(func.count(Character.id), func.max(Character.updated_at))
        ).one()
    return f"{count}:{latest}"


def build_script_watcher(
    projects: list[str], automated: set[str], *, interval_s: int = 2
) -> dg.SensorDefinition:
    """A sensor that syncs every project's script.md when it changes on disk."""

    @dg.sensor(
        name="script_watcher",
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
            report = publish(context.instance, db, studio, result)
            cursor[project] = stamp
            if report.changed or result.changed:
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

"""What the `videogen` commands do: create, sync, inspect and render projects."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from videogen import paths
from videogen.atomic import atomic_write_bytes, process_alive, remove_stale_temp_files
from videogen.errors import InputError
from videogen.project import ProjectBrief, load_brief, save_brief, validation_message
from videogen.script import read_script, read_script_bytes
from videogen.sync import SyncResult, sync_project


@dataclass
class Studio:
    """A studio root with its database and resources."""

    root: Path

    @property
    def db(self):  # type: ignore[no-untyped-def]
        """The studio database resource."""
        from videogen_resources.database import StudioDatabase

        return StudioDatabase.for_studio(self.root)

    @property
    def files(self):  # type: ignore[no-untyped-def]
        """The studio file layout resource."""
        from videogen_resources.studio import StudioResource

        return StudioResource(root=str(self.root))

    def project_dir(self, name: str) -> Path:
        """A project's folder (which must exist)."""
        folder = paths.project_dir(self.root, name)
        if not (folder / paths.PROJECT_FILE).exists():
            known = ", ".join(list_projects(self.root)) or "none yet"
            raise InputError(f"no project named {name!r} (projects: {known})", field="project")
        return folder


def list_projects(root: Path) -> list[str]:
    """The names of the projects under a studio root."""
    folder = paths.projects_dir(root)
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / paths.PROJECT_FILE).exists())


def create_project(
    root: Path,
    *,
    title: str,
    minutes: float = 3.0,
    style: str = "documentary",
    voice: str | None = None,
    script_file: Path | None = None,
    name: str | None = None,
    automation: bool = True,
    instance: dg.DagsterInstance | None = None,
) -> tuple[Path, SyncResult | None]:
    """Create a project folder (project.yaml, and script.md when a script is given).

    Everything is validated before anything is written; the folder appears atomically (it is
    built under a temporary name and renamed), so a failure leaves nothing behind.
    """
    name = name or paths.project_name_from_title(title)
    paths.check_project_name(name)
    try:
        brief = ProjectBrief(
            name=name,
            title=title,
            topic=title,
            minutes=minutes,
            style=style,
            voice=voice,
            automation=automation,
        )
    except Exception as exc:  # pydantic ValidationError -> InputError naming the field
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(validation_message(err), field=field) from None
        raise
    script_bytes = None
    if script_file is not None:
        script_bytes = read_script_bytes(Path(script_file))
        read_script(Path(script_file), script_bytes)  # validate before creating anything
    folder = paths.project_dir(root, name)
    if folder.exists():
        raise InputError(f"project {name!r} already exists at {folder}", field="name")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        save_brief(tmp, brief)
        if script_bytes is not None:
            atomic_write_bytes(tmp / paths.SCRIPT_FILE, script_bytes)
        try:
            tmp.rename(folder)
        except OSError:
            if folder.exists():  # made at the same moment by another command
                raise InputError(
                    f"project {name!r} already exists at {folder}", field="name"
                ) from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result = (
        sync(root, name, instance=instance, observe=False) if script_bytes is not None else None
    )
    return folder, result


def sync(
    root: Path,
    name: str,
    *,
    instance: dg.DagsterInstance | None = None,
    observe: bool = True,
    force: bool = False,
) -> SyncResult:
    """Sync script.md into the database and, given an instance, into Dagster's partitions and
    (``observe``) the observed data versions of `sentence` and `direction`."""
    studio = Studio(root)
    folder = studio.project_dir(name)
    result = sync_project(studio.db, folder, force=force)
    if instance is not None:
        from videogen_assets.publish import publish

        publish(instance, studio.db, studio.files, result, observe=observe)
    return result


def project_brief(root: Path, name: str) -> ProjectBrief:
    """A project's brief."""
    return load_brief(Studio(root).project_dir(name))


def materialized_partitions(
    instance: dg.DagsterInstance, project: str, kinds: Sequence[str]
) -> dict[str, set[str]]:
    """Per asset kind, the sentence partitions materialized at least once."""
    out: dict[str, set[str]] = {}
    for kind in kinds:
        out[kind] = set(instance.get_materialized_partitions(dg.AssetKey([project, kind])))
    return out


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Run config that keeps Dagster's console logger to warnings (the event log keeps everything)."""

ProgressCallback = Callable[[dict[str, int], dict[str, int], float], None]


def render(
    root: Path,
    name: str,
    *,
    instance: dg.DagsterInstance,
    settings=None,  # type: ignore[no-untyped-def]
    progress: ProgressCallback | None = None,
    only_missing_or_stale: bool = True,
) -> dg.ExecuteInProcessResult | None:
    """Materialize a project's missing and stale assets in this process, batching sentences.

    Sentences are handed to each per-sentence asset in contiguous key ranges (one step per asset
    for many sentences); every sentence still gets its own materialization, data version and
    provenance. Returns None when nothing needed doing.

    A render that was killed leaves its run STARTED (only a run launcher's health check could
    tell, and in-process runs have none) and maybe temporary files of the writes it was doing;
    both are cleared first: runs of this host's renders whose process is gone are marked failed,
    temporary files whose writer is gone are deleted.
    """
    from videogen_assets.context import PER_PROJECT, PER_SENTENCE, key
    from videogen_assets.definitions import build_definitions
    from videogen_assets.status import sentence_statuses

    sync(root, name, instance=instance)
    fail_orphaned_runs(instance)
    remove_stale_temp_files(Studio(root).project_dir(name))
    defs = build_definitions(root, settings)
    project_keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == name]
    if not project_keys:
        raise InputError(f"project {name!r} has no assets (is project.yaml valid?)")
    from videogen_assets.partitions import partitions_name

    all_keys = instance.get_dynamic_partitions(partitions_name(name))
    if only_missing_or_stale:
        statuses = sentence_statuses(instance, defs, name, all_keys)
        todo = [k for k in all_keys if any(v != "done" for v in statuses.get(k, {}).values())]
    else:
        todo = list(all_keys)
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    resources = dict(defs.resources or {})
    tag = uuid.uuid4().hex
    owner = {_PID_TAG: str(os.getpid()), _HOST_TAG: socket.gethostname()}
    totals = {kind: len(todo) for kind in PER_SENTENCE}
    totals.update({kind: 1 for kind in PER_PROJECT})
    stop = threading.Event()
    watcher = None
    if progress is not None:
        watcher = threading.Thread(
            target=_watch_progress, args=(instance, tag, totals, progress, stop), daemon=True
        )
        watcher.start()
    result = None
    try:
        # One run per asset and key range: a batch run logs each sentence's materialization
        # itself, so a downstream asset in the same run would see no output and be skipped.
        for start, end in _contiguous_ranges(all_keys, todo):
            for kind in PER_SENTENCE:
                dg.materialize(
                    assets,
                    instance=instance,
                    resources=resources,
                    run_config=QUIET,
                    selection=[key(name, kind)],
                    tags={
                        "dagster/asset_partition_range_start": start,
                        "dagster/asset_partition_range_end": end,
                        "videogen/render": tag,
                        **owner,
                    },
                )
        result = dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            run_config=QUIET,
            selection=[key(name, k) for k in PER_PROJECT],
            tags={"videogen/render": tag, **owner},
        )
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)
    if progress is not None:
        done = _count_done(instance, tag)
        progress(done, totals, 0.0)
    return result


_PID_TAG = "videogen/pid"
_HOST_TAG = "videogen/host"


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the STARTED runs of renders on this host whose process no longer exists.

    Returns their run ids. Runs of other hosts, and runs without the render's owner tags (runs
    launched by the daemon or the UI, which run monitoring looks after), are left alone.
    """
    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    host = socket.gethostname()
    failed: list[str] = []
    runs = instance.get_runs(
        RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={_HOST_TAG: host})
    )
    for run in runs:
        pid = run.tags.get(_PID_TAG, "")
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        instance.report_run_failed(
            run, message=f"the render process (pid {pid} on {host}) ended without finishing"
        )
        failed.append(run.run_id)
    return failed


def _contiguous_ranges(all_keys: Sequence[str], todo: Sequence[str]) -> list[tuple[str, str]]:
    wanted = set(todo)
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    prev: str | None = None
    for k in all_keys:
        if k in wanted:
            start = start or k
            prev = k
        elif start is not None:
            assert prev is not None
            ranges.append((start, prev))
            start = None
    if start is not None and prev is not None:
        ranges.append((start, prev))
    return ranges


def _count_done(instance: dg.DagsterInstance, tag: str) -> dict[str, int]:
    from dagster._core.events import DagsterEventType
    from dagster._core.storage.dagster_run import RunsFilter

    done: dict[str, int] = {}
    for run in instance.get_runs(RunsFilter(tags={"videogen/render": tag})):
        records = instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=100000
        ).records
        for rec in records:
            mat = rec.event_log_entry.asset_materialization
            if mat is not None:
                kind = mat.asset_key.path[-1]
                done[kind] = done.get(kind, 0) + 1
    return done


def _watch_progress(
    instance: dg.DagsterInstance,
    tag: str,
    totals: dict[str, int],
    progress: ProgressCallback,
    stop: threading.Event,
) -> None:
    t0 = time.monotonic()
    while not stop.wait(0.5):
        try:
            progress(_count_done(instance, tag), totals, time.monotonic() - t0)
        except Exception:
            continue

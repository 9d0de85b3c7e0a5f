"""What the `videogen` commands do: create, sync, inspect and render projects."""

from __future__ import annotations

import hashlib
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
from typing import Any

import dagster as dg
from pydantic import ValidationError

from videogen import render_control as rc
from videogen.progress import RenderSnapshot, RenderWatch
from videogen_assets.cancel import stop_requested
from videogen_assets.context import PER_PROJECT, key, sentence_order
from videogen_assets.partitions import partitions_name
from videogen_assets.previews import run_sentence_tags
from videogen_assets.publish import publish
from videogen_assets.records import LatestRecords
from videogen_assets.sentence_assets import PER_SENTENCE, SENTENCE_SPECS
from videogen_assets.specs import lineage
from videogen_assets.status import sentence_statuses
from videogen_domain import paths
from videogen_domain.atomic import atomic_write_bytes, process_alive, remove_stale_temp_files
from videogen_domain.errors import InputError
from videogen_domain.paths import list_projects
from videogen_domain.project import (
    ProjectBrief,
    load_brief,
    save_brief,
    studio_registry,
    validation_message,
)
from videogen_domain.script import read_script, read_script_bytes
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase
from videogen_store.sync import SyncResult, sync_project


@dataclass
class Studio:
    """A studio root with its database and resources."""

    root: Path

    @property
    def db(self) -> StudioDatabase:
        """The studio database resource."""
        return StudioDatabase.for_studio(self.root)

    @property
    def files(self) -> StudioResource:
        """The studio file layout resource."""
        return StudioResource(root=str(self.root))

    def project_dir(self, name: str) -> Path:
        """A project's folder (which must exist)."""
        folder = paths.project_dir(self.root, name)
        if not (folder / paths.PROJECT_FILE).exists():
            known = ", ".join(list_projects(self.root)) or "none yet"
            raise InputError(f"no project named {name!r} (projects: {known})", field="project")
        return folder


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
    image_workflow: str | None = None,
    video_workflow: str | None = None,
    keyframes: str | None = None,
    clips: str | None = None,
    instance: dg.DagsterInstance | None = None,
) -> tuple[Path, SyncResult | None]:
    """Create a project folder (project.yaml, and script.md when a script is given).

    Everything is validated before anything is written; the folder appears atomically (it is
    built under a temporary name and renamed), so a failure leaves nothing behind. Workflows
    given by name must be in the registry (shipped, the studio's own ``workflows/`` or
    ``$VIDEOGEN_WORKFLOWS``) with the right kind; unset ones keep the defaults.
    """
    name = name or paths.project_name_from_title(title)
    paths.check_project_name(name)
    chosen: dict[str, Any] = {}
    if image_workflow or video_workflow:
        # lazy: the workflow registry loads the ComfyUI client; only a chosen workflow needs it
        from videogen_resources.workflows import check_workflow_name, studio_workflows

        overlay = studio_workflows(root)
        if image_workflow:
            chosen["image_workflow"] = check_workflow_name(image_workflow, "image", overlay)
        if video_workflow:
            chosen["video_workflow"] = check_workflow_name(video_workflow, "video", overlay)
    if keyframes:
        chosen["keyframes"] = keyframes
    if clips:
        chosen["clips"] = clips
    try:
        with studio_registry(root):  # the workflows this studio renders with: its overlay too
            brief = ProjectBrief(
                name=name,
                title=title,
                topic=title,
                minutes=minutes,
                style=style,
                voice=voice,
                automation=automation,
                **chosen,
            )
    except Exception as exc:  # pydantic ValidationError -> InputError naming the field
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
    splits = paths.sentence_splits_path(root, name)
    result = sync_project(studio.db, folder, force=force, split_cache=splits)
    if instance is not None:
        publish(instance, studio.db, studio.files, result, observe=observe)
    return result


def project_brief(root: Path, name: str) -> ProjectBrief:
    """A project's brief."""
    return load_brief(Studio(root).project_dir(name))


WORDS_PER_MINUTE = 150
"""Narration pace assumed when comparing a script's length with the brief's minutes."""

LONG_SCRIPT_FACTOR = 1.5
"""A script longer than this many times the brief's target words gets a warning."""


def length_warning(brief: ProjectBrief, texts: Sequence[str]) -> str | None:
    """A warning when the script is far longer than the brief's minutes (more than
    `LONG_SCRIPT_FACTOR` times the words ``minutes`` take at `WORDS_PER_MINUTE`), naming the
    numbers; None otherwise."""
    words = sum(len(t.split()) for t in texts)
    target = brief.minutes * WORDS_PER_MINUTE
    if target <= 0 or words <= LONG_SCRIPT_FACTOR * target:
        return None
    return (
        f"warning: script.md has {words} words, about {words / WORDS_PER_MINUTE:.1f} minutes "
        f"at {WORDS_PER_MINUTE} words a minute: {words / target:.1f}x the brief's "
        f"{brief.minutes:g} minutes ({target:.0f} words); shorten the script or raise "
        "`minutes` in project.yaml"
    )


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Run config that keeps Dagster's console logger quiet (the event log, the UI and a failed
render's log file under ``<studio>/logs/`` keep everything)."""

DEBUG_CONSOLE = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
"""Run config for ``--debug`` / ``VIDEOGEN_DEBUG=1``: Dagster's console log in full."""

ProgressCallback = Callable[["RenderSnapshot"], None]
"""Takes the render's progress (`videogen.progress`), from a watcher thread, about twice a
second; the last call has ``final`` set."""

OUTPUTS_TAG = "videogen/outputs_inputs"
"""Run tag of a render's project-outputs run: the fingerprint of everything they are made from."""


def debug_enabled() -> bool:
    """Whether ``VIDEOGEN_DEBUG`` asks for full tracebacks and Dagster's console log."""
    return os.environ.get("VIDEOGEN_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def render(
    root: Path,
    name: str,
    *,
    instance: dg.DagsterInstance,
    settings=None,  # type: ignore[no-untyped-def]
    progress: ProgressCallback | None = None,
    only_missing_or_stale: bool = True,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dg.ExecuteInProcessResult | None:
    """Materialize a project's missing and stale assets in this process, batching sentences.

    Each per-sentence asset is rendered in turn (narration, shot, keyframe, clip) for exactly
    the partitions whose status is missing or stale at that moment, so a sentence whose
    narration is up to date is not narrated again because its clip is stale, while a changed
    input makes what depends on it stale in time for its turn. Sentences are handed to each
    asset in contiguous key ranges (one step per asset for many sentences); every sentence
    still gets its own materialization, data version and provenance. The project outputs
    (rough cut, subtitles, storyboard, export) are rebuilt only when what they are made from
    changed since this command last built them (a sentence's media, the order or the set of
    sentences, the brief, their code), when they were last built by something else, or when a
    file of theirs is missing. Returns None when nothing needed doing.

    One render per project runs at a time (`render_control.acquire_lock`; ``wait`` waits for
    it); partitions that a run launched elsewhere (the daemon's automation, a backfill) is
    making right now are left to that run (``on_note`` hears which). Ctrl-C stops the render
    (`render_control.RenderCanceled`); a failure raises `render_control.RenderFailed` naming
    the log file with the full log.

    A render that was killed leaves its run STARTED (only a run launcher's health check could
    tell, and in-process runs have none) and maybe temporary files of the writes it was doing;
    both are cleared first: runs of this host's renders whose process is gone are marked failed,
    temporary files whose writer is gone are deleted.
    """
    Studio(root).project_dir(name)  # a clear error for an unknown project, before any lock
    lock = rc.acquire_lock(root, name, wait=wait, instance=instance, on_wait=on_wait)
    tag = uuid.uuid4().hex
    try:
        lock.note(
            pid=os.getpid(),
            host=socket.gethostname(),
            render=tag,
            started=time.strftime("%Y-%m-%d %H:%M:%S"),
        )
        stopper = rc.Stopper(instance, tag)

        def work() -> dg.ExecuteInProcessResult | None:
            return _render(
                root,
                name,
                instance=instance,
                settings=settings,
                progress=progress,
                only_missing_or_stale=only_missing_or_stale,
                tag=tag,
                on_note=on_note,
            )

        try:
            with rc.without_output_capture(instance):
                return rc.run_stoppable(work, stopper, name)  # type: ignore[no-any-return]
        except (rc.RenderCanceled, InputError, KeyboardInterrupt):
            raise
        except Exception as exc:
            log = rc.write_render_log(root, name, instance, tag, exc)
            inner = _inner_error(exc)
            if isinstance(inner, InputError):
                raise inner from exc
            if debug_enabled():
                raise
            raise rc.RenderFailed(rc.root_cause(exc), log) from exc
    finally:
        lock.release()


def _inner_error(exc: BaseException) -> BaseException:
    inner = exc
    for _ in range(10):
        nxt = getattr(inner, "user_exception", None) if isinstance(inner, dg.DagsterError) else None
        if nxt is None:
            break
        inner = nxt
    return inner


def _render(
    root: Path,
    name: str,
    *,
    instance: dg.DagsterInstance,
    settings,  # type: ignore[no-untyped-def]
    progress: ProgressCallback | None,
    only_missing_or_stale: bool,
    tag: str,
    on_note: Callable[[str], None] | None,
) -> dg.ExecuteInProcessResult | None:
    # lazy: the definitions load every resource's client; sync, export and `new` run without
    from videogen_assets.definitions import build_definitions

    sync(root, name, instance=instance)
    fail_orphaned_runs(instance)
    studio = Studio(root)
    remove_stale_temp_files(studio.project_dir(name))
    defs = build_definitions(root, settings)
    graph = defs.resolve_asset_graph()
    project_keys = [k for k in graph.get_all_asset_keys() if k.path[0] == name]
    if not project_keys:
        raise InputError(f"project {name!r} has no assets (is project.yaml valid?)")
    all_keys = list(instance.get_dynamic_partitions(partitions_name(name)))
    ordered = [r.id for r in sentence_order(studio.db, name)]
    ordered += [k for k in all_keys if k not in set(ordered)]
    if on_note is not None:
        rows = sentence_order(studio.db, name)
        warning = length_warning(load_brief(studio.project_dir(name)), [r.text for r in rows])
        if warning:
            on_note(warning)
    busy, busy_runs = rc.busy_partitions(instance, name, all_keys, tag)
    if busy_runs and on_note is not None:
        n = len(set().union(*busy.values()) - {""}) if busy else 0
        on_note(
            f"{n} sentence(s) are being made by run(s) {', '.join(r[:8] for r in busy_runs)} "
            "(automation or the UI): left to them"
        )
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    resources = dict(defs.resources or {})
    sentences = {s.id: s for s in sentence_order(studio.db, name)}
    owner = {_PID_TAG: str(os.getpid()), _HOST_TAG: socket.gethostname(), rc.PROJECT_TAG: name}
    run_config = DEBUG_CONSOLE if debug_enabled() else QUIET

    def wanted(kind: str) -> list[str]:
        if not only_missing_or_stale:
            todo = list(all_keys)
        else:
            st = sentence_statuses(instance, graph, name, all_keys, kinds=[kind])
            todo = [k for k in all_keys if st.get(k, {}).get(kind, "missing") != "done"]
        return [k for k in todo if k not in busy.get(kind, set())]

    # An estimate for the progress display (a kind is redone where it or an input of its
    # chain is not done), made exact for each kind as its turn comes.
    chains = {kind: lineage(SENTENCE_SPECS, kind) for kind in PER_SENTENCE}
    first = sentence_statuses(instance, graph, name, all_keys) if only_missing_or_stale else {}
    totals: dict[str, int] = {
        kind: sum(
            1
            for k in all_keys
            if not only_missing_or_stale
            or any(first.get(k, {}).get(c, "missing") != "done" for c in chains.get(kind, (kind,)))
        )
        for kind in PER_SENTENCE
    }
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
        for kind in PER_SENTENCE:
            todo = wanted(kind)
            totals[kind] = len(todo)
            for start, end in _contiguous_ranges(all_keys, todo):
                if stop_requested():
                    return None
                # a run over one sentence names it (words and section) on the Runs page
                one = sentences.get(start) if start == end else None
                named = run_sentence_tags(one.id, one.text, one.section) if one else {}
                _materialize(
                    render_job_name(name, kind),
                    assets,
                    instance=instance,
                    resources=resources,
                    run_config=run_config,
                    selection=[key(name, kind)],
                    tags={
                        "dagster/asset_partition_range_start": start,
                        "dagster/asset_partition_range_end": end,
                        rc.RENDER_TAG: tag,
                        **owner,
                        **named,
                    },
                )
        fingerprint = outputs_fingerprint(instance, studio, name, ordered, graph)
        outputs_busy = any("" in busy.get(kind, set()) for kind in PER_PROJECT)
        if (
            only_missing_or_stale
            and (outputs_busy or outputs_up_to_date(instance, studio, name, fingerprint))
        ) or stop_requested():
            for kind in PER_PROJECT:
                totals[kind] = 0
            return None
        result = _materialize(
            render_job_name(name, "outputs"),
            assets,
            instance=instance,
            resources=resources,
            run_config=run_config,
            selection=[key(name, k) for k in PER_PROJECT],
            tags={rc.RENDER_TAG: tag, OUTPUTS_TAG: fingerprint, **owner},
        )
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)
    if progress is not None and not stop_requested():
        progress(RenderWatch(instance, tag, totals).poll(final=True))
    return result


def render_job_name(project: str, step: str) -> str:
    """The job name of a render's run: ``render_<project>_<asset kind or "outputs">``.

    Dagster shows it in the run list (an unnamed in-process run would show as
    ``__ephemeral_asset_job__``).
    """
    return f"render_{project}_{step}"


def _materialize(
    job_name: str,
    assets: Sequence[dg.AssetsDefinition | dg.SourceAsset],
    *,
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    selection: Sequence[dg.AssetKey],
    tags: dict[str, str],
    run_config: dict[str, Any],
) -> dg.ExecuteInProcessResult:
    """`dg.materialize` in this process, as a run of a job named ``job_name``.

    The job runs the selected assets with the checks that are part of them (``check_specs``,
    such as the keyframe's ``is_1920x1080``: Dagster cannot run such an asset without them),
    never the ``up_to_date`` checks of `videogen_assets.progress`, which only the ``progress``
    sensor evaluates. `_render` passes ``defs.assets``, which holds none (a Definitions'
    standalone checks are in ``defs.asset_checks``); any standalone check in ``assets`` is left
    out of the job all the same (Dagster selects a selected asset's checks by default).
    """
    standalone = [
        ck for a in assets if isinstance(a, dg.AssetChecksDefinition) for ck in a.check_keys
    ]
    job_selection = dg.AssetSelection.assets(*selection) - dg.AssetSelection.checks(*standalone)
    defs = dg.Definitions(
        jobs=[dg.define_asset_job(name=job_name, selection=job_selection)],
        assets=assets,
        resources=resources,
    )
    return defs.resolve_job_def(job_name).execute_in_process(
        run_config=run_config, instance=instance, tags=tags
    )


def outputs_fingerprint(
    instance: dg.DagsterInstance,
    studio: Studio,
    name: str,
    ordered: Sequence[str],
    graph,  # type: ignore[no-untyped-def]
) -> str:
    """A hash of everything the project outputs are made from: the brief, the sentences in
    script order (ids, sections, texts), each sentence's latest data versions, the outputs'
    code versions and the export's workflow versions."""
    h = hashlib.sha256()
    folder = studio.project_dir(name)
    h.update((folder / paths.PROJECT_FILE).read_bytes())
    for row in sentence_order(studio.db, name):
        h.update(f"\0{row.id}\0{row.section}\0{row.text}".encode())
    latest = LatestRecords(instance, list(ordered))
    for kind in PER_SENTENCE:
        for pk in ordered:
            h.update(f"\0{kind}:{pk}:{latest.data_version(key(name, kind), False, pk)}".encode())
    for kind in PER_PROJECT:
        node = graph.get(key(name, kind))
        h.update(f"\0{kind}:{node.code_version}".encode())
    return h.hexdigest()[:32]


def output_files(studio: Studio, name: str) -> list[Path]:
    """The files the project outputs write (all must exist for them to count as built)."""
    folder = studio.project_dir(name)
    exports = studio.files.export_dir(name)
    return [
        folder / "rough_cut.mp4",
        folder / "subtitles.srt",
        folder / "subtitles.vtt",
        folder / "storyboard.html",
        Path(exports) / "metadata.json",
    ]


def outputs_up_to_date(
    instance: dg.DagsterInstance, studio: Studio, name: str, fingerprint: str
) -> bool:
    """Whether each project output's latest materialization came from a render's outputs run
    with this fingerprint, and all their files exist."""
    if not all(p.exists() for p in output_files(studio, name)):
        return False
    for kind in PER_PROJECT:
        event = instance.get_latest_materialization_event(key(name, kind))
        if event is None:
            return False
        run = instance.get_run_by_id(event.run_id)
        if run is None or run.tags.get(OUTPUTS_TAG) != fingerprint:
            return False
    return True


_PID_TAG = "videogen/pid"
_HOST_TAG = "videogen/host"


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the STARTED runs of renders on this host whose process no longer exists.

    Returns their run ids. Runs of other hosts, and runs without the render's owner tags (runs
    launched by the daemon or the UI, which run monitoring looks after), are left alone.
    """
    host = socket.gethostname()
    failed: list[str] = []
    runs = instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={_HOST_TAG: host})
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


def _watch_progress(
    instance: dg.DagsterInstance,
    tag: str,
    totals: dict[str, int],
    progress: ProgressCallback,
    stop: threading.Event,
) -> None:
    watch = RenderWatch(instance, tag, totals)
    while not stop.wait(0.5):
        try:
            progress(watch.poll())
        except Exception:
            continue

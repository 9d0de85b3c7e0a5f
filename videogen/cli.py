"""The `videogen` command: create projects, inspect them, render them, open the Dagster UI."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import click

from videogen.cli_errors import StudioGroup, echo_error, one_line
from videogen.demo import DEMO_NAME, DEMO_SCRIPT, DEMO_TITLE
from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_domain.styles import list_styles
from videogen_resources.errors import ServiceError

# Mako (loaded by Alembic, which Dagster's instance storage imports) imports Pygments' lexers at
# import time to colour the HTML pages of its template errors: about 0.3 s of the start of every
# command that opens the instance, for pages the studio never renders. With this optional
# module marked absent, Mako takes its own plain fallback (its import catches the ImportError).
sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]


def _without_cyclic_gc(ctx: click.Context) -> None:
    """For a command that reads, prints and exits (`show`, `status`): no cyclic garbage
    collection. Each collection walks every live object, and the imports alone (Dagster's
    modules: a few hundred thousand objects) set off dozens of them: 0.6 to 0.9 s of a 4 to 5 s
    status of 5,000 sentences. What cycles such a command leaves behind is a few MB (measured:
    +3 MB of 170 MB at 5,000 sentences), freed when it exits. Collection is on again once the
    command is done (a process that runs commands in-process, such as a test, goes on)."""
    if gc.isenabled():
        gc.disable()
        ctx.call_on_close(gc.enable)


def _root(ctx: click.Context) -> Path:
    top = ctx.find_root()
    if not isinstance(top.obj, dict):
        top.obj = {}
    root = usable_folder(paths.studio_root(top.obj.get("home")), "studio")
    top.obj["root"] = str(root)
    return root


def usable_folder(path: Path, what: str) -> Path:
    """``path`` as a folder this process can write in (created if missing), or InputError.

    ``what`` names the setting in the error: ``studio`` (--home / VIDEOGEN_HOME) or
    ``DAGSTER_HOME``.
    """
    how = "give --home (or VIDEOGEN_HOME)" if what == "studio" else "set DAGSTER_HOME to"
    if path.exists() and not path.is_dir():
        raise InputError(
            f"is not a folder; {how} a folder, or move this file away", file=path, field=what
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot be created ({exc.strerror or exc}); {how} a folder you can write to",
            file=path,
            field=what,
        ) from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise InputError(
            f"is not writable; {how} a folder you can write to, or fix its permissions",
            file=path,
            field=what,
        )
    return path


def dagster_home(root: Path) -> Path:
    """The Dagster instance folder of a studio ($DAGSTER_HOME, else <studio>/.dagster)."""
    # lazy: the videogen_assets package loads Dagster, which `videogen --help` does not need
    from videogen_assets.dagster_files import DAGSTER_YAML

    env = os.environ.get("DAGSTER_HOME")
    # Dagster wants an absolute DAGSTER_HOME; a relative one is taken from the current folder.
    home = usable_folder(
        Path(env).expanduser().absolute() if env else root / ".dagster", "DAGSTER_HOME"
    )
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        shutil.copyfile(DAGSTER_YAML, cfg)
    elif not cfg.is_file():
        raise InputError(
            "is not a file; move it away so the studio can write its Dagster settings",
            file=cfg,
            field="DAGSTER_HOME",
        )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _instance(root: Path, *, pools: bool = True):  # type: ignore[no-untyped-def]
    """The studio's Dagster instance, with its pool limits set (GPU: one per ComfyUI server);
    ``pools=False`` for a command that starts no run (the limits are left as they are: 0.1 s)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    import dagster as dg

    # lazy: as above
    from videogen_assets.concurrency import configure_pools
    from videogen_assets.environment import check_environment

    settings = check_environment()
    dagster_home(root)
    instance = dg.DagsterInstance.get()
    if pools:
        configure_pools(instance, gpu_servers=len(settings.comfyui_urls))
    return instance


def _ready_to_render(root: Path | None = None, project: str | None = None) -> None:
    """Settings, the configured servers and the voices to use checked before any work starts
    (VIDEOGEN_VOICE, and the ``voice`` of the project's brief when ``project`` is given)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import project_brief
    from videogen_assets.environment import check_environment
    from videogen_domain.project import brief_path
    from videogen_resources.settings import check_reachable, check_voice

    settings = check_environment()
    check_reachable(settings)
    check_voice(settings, settings.voice, field="VIDEOGEN_VOICE")
    if root is None or project is None:
        return
    try:
        brief = project_brief(root, project)
    except InputError:
        return  # the render itself says what is wrong with the project
    try:
        check_voice(settings, brief.voice, field="voice")
    except InputError as exc:
        folder = paths.project_dir(root, project)
        raise InputError(exc.message, file=brief_path(folder), field="voice") from None


@click.group(cls=StudioGroup)
@click.option("--home", envvar="VIDEOGEN_HOME", default=None, help="Studio root (./studio).")
@click.option(
    "--debug",
    is_flag=True,
    help="Show full tracebacks instead of one-line errors (also VIDEOGEN_DEBUG=1).",
)
@click.pass_context
def main(ctx: click.Context, home: str | None, debug: bool) -> None:
    """VideoGen Studio: narrated videos from a topic or a script, as Dagster assets."""
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    ctx.obj["debug"] = debug


def _fail(exc: Exception) -> None:
    echo_error(str(exc))
    sys.exit(2)


def _fail_run(exc: Exception) -> None:
    """A failed render: the service's or the step's own message, not a traceback."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    import dagster as dg

    inner: BaseException = exc
    while isinstance(inner, dg.DagsterError) and getattr(inner, "user_exception", None):
        inner = inner.user_exception  # type: ignore[attr-defined]
    if isinstance(inner, (ServiceError, InputError, OSError, dg.Failure)):
        click.echo(f"error: {inner}", err=True)
        click.echo("(the Dagster run log has the details: `videogen ui`)", err=True)
        sys.exit(1)
    raise exc


@main.command()
@click.argument("title")
@click.option("--minutes", type=float, default=3.0, show_default=True, help="Target length.")
@click.option(
    "--style",
    default="documentary",
    show_default=True,
    help=f"Visual style: {', '.join(list_styles())}.",
)
@click.option("--voice", default=None, help="Narration voice (the engine's default if unset).")
@click.option(
    "--script",
    "script_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A script.md of your own (else the LLM writes one).",
)
@click.option("--name", default=None, help="Project name (derived from the title if unset).")
@click.option("--no-automation", is_flag=True, help="Do not regenerate by itself.")
@click.option(
    "--image-workflow",
    default=None,
    help="ComfyUI workflow for the keyframes (`videogen workflows` lists them).",
)
@click.option("--video-workflow", default=None, help="ComfyUI workflow for the clips.")
@click.option(
    "--keyframes",
    "keyframe_engine",
    type=click.Choice(["comfyui", "cards"]),
    default=None,
    help="Keyframe engine of this project (default: comfyui when COMFYUI_URL is set).",
)
@click.option(
    "--clips",
    "clip_engine",
    type=click.Choice(["comfyui", "kenburns"]),
    default=None,
    help="Clip engine of this project (default: comfyui when COMFYUI_URL is set).",
)
@click.pass_context
def new(
    ctx: click.Context,
    title: str,
    minutes: float,
    style: str,
    voice: str | None,
    script_file: Path | None,
    name: str | None,
    no_automation: bool,
    image_workflow: str | None,
    video_workflow: str | None,
    keyframe_engine: str | None,
    clip_engine: str | None,
) -> None:
    """Create a project folder with project.yaml (and script.md when --script is given)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import create_project
    from videogen_assets.environment import check_environment
    from videogen_resources.settings import check_voice

    root = _root(ctx)
    try:
        check_voice(check_environment(), voice, field="voice")
        folder, result = create_project(
            root,
            title=title,
            minutes=minutes,
            style=style,
            voice=voice,
            script_file=script_file,
            name=name,
            automation=not no_automation,
            image_workflow=image_workflow,
            video_workflow=video_workflow,
            keyframes=keyframe_engine,
            clips=clip_engine,
            instance=_instance(root),
        )
    except InputError as exc:
        _fail(exc)
        return
    click.echo(f"created {folder}")
    if result is not None:
        click.echo(f"{len(result.order)} sentences in script.md")
    else:
        click.echo("no script yet: write script.md, or run `videogen script` with an LLM set up")


@main.command()
@click.argument("project")
@click.option("--replace", is_flag=True, help="Replace script.md (kept as script.md.bak).")
@click.pass_context
def script(ctx: click.Context, project: str, replace: bool) -> None:
    """Have the LLM write the script (to script.draft.md when script.md already exists)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import Studio, project_brief
    from videogen_resources.llm.scriptwriter import write_script
    from videogen_resources.settings import BackendSettings, build_resources

    root = _root(ctx)
    try:
        brief = project_brief(root, project)
        llm = build_resources(BackendSettings.from_env(), root)["llm"]
        res = write_script(llm, brief, Studio(root).project_dir(project), replace=replace)
    except InputError as exc:
        _fail(exc)
        return
    except ServiceError as exc:  # from the LLM: its message says what to do
        _fail(exc)
        return
    where = "a draft beside your script.md" if res.is_draft else "script.md"
    click.echo(f"wrote {where}: {res.path} ({res.sentences} sentences, {res.words} words)")


@main.command(name="list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """List the studio's projects."""
    # lazy: the brief's model; `videogen --help` does not need it
    from videogen_domain.project import load_brief

    root = _root(ctx)
    names = paths.list_projects(root)
    for name in names:
        shown = name if paths.PROJECT_NAME_RE.fullmatch(name) else repr(name)
        try:
            b = load_brief(paths.project_dir(root, name))
            click.echo(f"{shown}\t{b.title}\t{b.minutes:g} min\t{b.style}")
        except InputError as exc:
            click.echo(f"{shown}\t(invalid: {one_line(str(exc))})")
    if not names:
        click.echo(f"no projects yet in {root} (videogen new TITLE --script FILE)", err=True)


@main.command()
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripting.")
@click.pass_context
def show(ctx: click.Context, project: str, as_json: bool) -> None:
    """Show a project's sections and sentences with the status of every asset."""
    _without_cyclic_gc(ctx)
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import Studio, length_warning, project_brief, sync
    from videogen_assets.context import sentence_order
    from videogen_assets.status import project_shapes, shape_statuses

    root = _root(ctx)
    try:
        instance = _instance(root, pools=False)
        sync(root, project, instance=instance)
        studio = Studio(root)
        rows = sentence_order(studio.db, project)
        # the project's own assets, from its specs: not the Definitions of the whole studio
        shapes = project_shapes(root, project)
        statuses = shape_statuses(instance, shapes, [r.id for r in rows])
    except InputError as exc:
        _fail(exc)
        return
    data: dict[str, Any] = {
        "project": project,
        "sentences": [
            {
                "id": r.id,
                "section": r.section,
                "order": r.order,
                "line": r.line,
                "text": r.text,
                "directives": r.directives.model_dump(mode="json", exclude_none=True),
                "status": statuses.get(r.id, {}),
            }
            for r in rows
        ],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    with contextlib.suppress(InputError):
        warning = length_warning(project_brief(root, project), [r.text for r in rows])
        if warning:
            click.echo(warning, err=True)
    lines: list[str] = []
    section = None
    for s in data["sentences"]:
        if s["section"] != section:
            section = s["section"]
            lines.append(f"\n## {section}")
        st = " ".join(f"{k}:{v}" for k, v in s["status"].items())
        lines.append(f"{s['order']:>4} {s['id']:<28} {st}\n     {s['text']}")
    click.echo("\n".join(lines))  # one write: thousands of echo calls are slow


@main.command()
@click.argument("project")
@click.pass_context
def status(ctx: click.Context, project: str) -> None:
    """Per sentence, which assets are missing, stale or fresh (what an edit will regenerate)."""
    ctx.invoke(show, project=project, as_json=False)


def _progress_printer():  # type: ignore[no-untyped-def]
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.progress import console_progress

    return console_progress()


@main.command()
@click.argument("project")
@click.option("--all", "everything", is_flag=True, help="Regenerate everything, not only stale.")
@click.option(
    "--keyframes",
    "keyframe_engine",
    type=click.Choice(["comfyui", "cards"]),
    default=None,
    help="Keyframe engine for this render (over project.yaml and VIDEOGEN_KEYFRAMES).",
)
@click.option(
    "--clips",
    "clip_engine",
    type=click.Choice(["comfyui", "kenburns"]),
    default=None,
    help="Clip engine for this render (over project.yaml and VIDEOGEN_CLIPS).",
)
@click.option("--wait", is_flag=True, help="Wait for a render of the project already running.")
@click.option("--debug", is_flag=True, help="Full tracebacks and Dagster's console log.")
@click.pass_context
def render(
    ctx: click.Context,
    project: str,
    everything: bool,
    keyframe_engine: str | None,
    clip_engine: str | None,
    wait: bool,
    debug: bool,
) -> None:
    """Materialize a project's missing and stale assets here, with a progress bar.

    One render per project runs at a time; Ctrl-C stops it (exit status 130)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import render as do_render
    from videogen.render_control import RenderBusy, RenderCanceled, RenderFailed
    from videogen_resources.settings import BackendSettings

    if debug:
        os.environ["VIDEOGEN_DEBUG"] = "1"
    root = _root(ctx)
    note = _note_printer()
    try:
        instance = _instance(root)
        _ready_to_render(root, project)
        settings = BackendSettings.from_env()
        if keyframe_engine:
            settings = settings.model_copy(update={"keyframes": keyframe_engine})
        if clip_engine:
            settings = settings.model_copy(update={"clips": clip_engine})
        do_render(
            root,
            project,
            instance=instance,
            settings=settings,
            progress=_progress_printer(),
            only_missing_or_stale=not everything,
            wait=wait,
            on_wait=note,
            on_note=note,
        )
    except RenderCanceled as exc:
        _canceled(exc)
    except KeyboardInterrupt:  # before any work started (syncing, waiting for the lock)
        click.echo(f"canceled: render of {project!r} stopped before it started", err=True)
        sys.exit(130)
    except (RenderBusy, RenderFailed) as exc:  # a busy project, a failed render (with its log)
        echo_error(str(exc))
        sys.exit(1)
    except InputError as exc:  # a bad input or setting: nothing was started
        _fail(exc)
    cut = paths.project_dir(root, project) / "rough_cut.mp4"
    click.echo(f"rough cut: {cut}")


def _canceled(exc: Exception) -> None:
    click.echo(f"canceled: {exc}", err=True)
    # Leave at once: the runs are marked, the services told; steps of this process still
    # winding down and the interpreter's shutdown would only delay it.
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(130)


def _note_printer():  # type: ignore[no-untyped-def]
    def note(line: str) -> None:
        click.echo(line, err=True)

    return note


@main.command(name="export")
@click.argument("project")
@click.option(
    "--zip", "make_zip", is_flag=True, help="Also write <project>.zip beside the package."
)
@click.option("--partial", is_flag=True, help="Export what exists, list what is missing.")
@click.option(
    "--to",
    "to_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the package to DIR/<project>/ (e.g. a shared drive the editing machine reads) "
    "instead of exports/<project>/; the timelines point at the files there.",
)
@click.pass_context
def export_cmd(
    ctx: click.Context, project: str, make_zip: bool, partial: bool, to_dir: Path | None
) -> None:
    """Write the NLE package (numbered media, metadata.json, subtitles, timelines)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import Studio, fail_orphaned_runs, sync
    from videogen_assets.export import (
        ExportError,
        narration_loudness,
        refuse_during_runs,
        write_export,
    )
    from videogen_assets.views import project_view
    from videogen_domain.chapters import CHAPTERS_FILE

    root = _root(ctx)
    dest = Path(to_dir) / project if to_dir is not None else Path("exports") / project
    try:
        instance = _instance(root)
        sync(root, project, instance=instance)
        fail_orphaned_runs(instance)  # a killed render's run is not "in progress"
        refuse_during_runs(instance, project)
        studio = Studio(root)
        files = studio.files
        folder = studio.project_dir(project)
        view = project_view(files, studio.db, project)
        subs = {
            k: folder / f"subtitles.{k}"
            for k in ("srt", "vtt")
            if (folder / f"subtitles.{k}").exists()
        }
        cut = folder / "rough_cut.mp4"
        chapters = folder / CHAPTERS_FILE
        dest = files.export_dir(project) if to_dir is None else Path(to_dir) / project
        report = write_export(
            view,
            dest,
            subtitles=subs,
            rough_cut=cut if cut.exists() else None,
            chapters=chapters if chapters.is_file() else None,
            zip_path=dest.with_suffix(".zip") if make_zip else None,
            allow_partial=partial,
            loudness_lufs=narration_loudness(
                instance, project, [i.sentence_id for i in view.items]
            ),
            before_swap=lambda: refuse_during_runs(instance, project),
        )
    except (InputError, ExportError) as exc:
        _fail(exc)
        return
    except OSError as exc:
        where = exc.filename or dest
        _fail(ExportError(f"cannot write the package to {where}: {exc.strerror}; check DIR"))
        return
    click.echo(f"exported {len(view.items)} sentences to {dest}")
    click.echo(f"{len(report.written)} files written, {len(report.reused)} reused")
    if report.kept:
        click.echo(f"{len(report.kept)} of your own files in the folder kept")
    for left in report.left_out:
        click.echo(f"left out: {left.sentence_id} {left.kind} ({left.reason})")
    if report.zip_path:
        click.echo(f"zip: {report.zip_path}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def voices(as_json: bool) -> None:
    """List the voices of the configured TTS engine (for --voice and `character add`)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen_assets.environment import check_environment
    from videogen_resources.settings import list_voices

    settings = check_environment()
    found = list_voices(settings)
    if as_json:
        data = [{"voice": v, "description": d} for v, d in found]
        click.echo(json.dumps({"engine": settings.tts, "voices": data}, indent=2))
        return
    click.echo(f"voices of the {settings.tts} engine (VIDEOGEN_TTS):")
    for name, description in found:
        click.echo(f"{name:<24} {description}".rstrip())
    if settings.tts != "chatterbox":
        click.echo("eSpeak NG voices also take variants, e.g. en-us+f3")


@main.command()
@click.option("--style", default="documentary", show_default=True)
@click.pass_context
def demo(ctx: click.Context, style: str) -> None:
    """Create the bundled sample project and render it end to end (offline, on the CPU)."""
    # lazy: loads Dagster; `videogen --help` and `videogen list` need none
    from videogen.operations import create_project
    from videogen.operations import render as do_render
    from videogen.render_control import RenderCanceled

    root = _root(ctx)
    instance = _instance(root)
    _ready_to_render()
    if DEMO_NAME not in paths.list_projects(root):
        create_project(
            root,
            title=DEMO_TITLE,
            minutes=1,
            style=style,
            script_file=DEMO_SCRIPT,
            name=DEMO_NAME,
            instance=instance,
        )
        click.echo(f"created the demo project in {paths.project_dir(root, DEMO_NAME)}")
    try:
        do_render(root, DEMO_NAME, instance=instance, progress=_progress_printer())
    except RenderCanceled as exc:
        _canceled(exc)
    except KeyboardInterrupt:
        click.echo("canceled: the demo render stopped before it started", err=True)
        sys.exit(130)
    except Exception as exc:
        _fail_run(exc)
        return
    click.echo(f"rough cut: {paths.project_dir(root, DEMO_NAME) / 'rough_cut.mp4'}")


def _port_free(port: int, field: str) -> None:
    """InputError unless 127.0.0.1:``port`` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the webserver does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); another program "
                f"uses it: stop it or give another --{field}",
                field=field,
            ) from None


@main.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=3000,
    show_default=True,
    help="Dagster webserver port.",
)
@click.option(
    "--media-port",
    type=click.IntRange(1, 65535),
    default=3031,
    show_default=True,
    help="Studio media server port.",
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the project's lineage page in a browser."
)
@click.pass_context
def ui(ctx: click.Context, port: int, media_port: int, open_browser: bool) -> None:
    """Start `dg dev` (Dagster webserver + daemon) and the studio's media server on 127.0.0.1.

    Prints warnings, errors and one line per finished run; SIGTERM or Ctrl-C stops every
    Dagster process it started (videogen/ui.py).
    """
    # lazy: the media server, the HTTP client and Dagster; only `videogen ui` needs them
    from videogen.media_server import start_in_thread
    from videogen.ui import (
        child_env,
        dagster_dev_command,
        dg_dev_command,
        open_in_browser,
        project_urls,
        projects_by_recent_edit,
        run_dagster_ui,
    )
    from videogen_assets.dagster_files import WORKSPACE_YAML, checkout_root

    root = _root(ctx)
    root.mkdir(parents=True, exist_ok=True)
    instance = _instance(root)  # DAGSTER_HOME, dagster.yaml and the pool limits the daemon honours
    base_url = f"http://127.0.0.1:{port}"
    origins = (base_url, f"http://localhost:{port}")
    if media_port == port:
        raise InputError(
            f"the media server cannot share the Dagster UI's port {port}; give another "
            "--media-port",
            field="media-port",
        )
    _port_free(port, "port")
    try:
        media, stop = start_in_thread(root, port=media_port, allowed_origins=origins)
    except OSError as exc:
        raise InputError(
            f"cannot listen on 127.0.0.1:{media_port} ({exc.strerror or exc}); another "
            "program uses it: stop it or give another --media-port",
            field="media-port",
        ) from None
    env = child_env(os.environ, VIDEOGEN_HOME=str(root), VIDEOGEN_MEDIA_URL=media)
    urls = project_urls(base_url, projects_by_recent_edit(root))
    click.echo(f"Starting Dagster (dg dev) for the studio {root}; studio media on {media}")

    def ready() -> None:
        for project, url in urls:
            click.echo(f"{project}: {url}")
        first = urls[0][1] if urls else f"{base_url}/asset-groups"
        click.echo(f"Dagster UI ready: {first}  (Ctrl-C stops it)")
        if open_browser:
            open_in_browser(first)

    try:
        checkout = checkout_root()
        code = run_dagster_ui(
            dg_dev_command(port) if checkout else dagster_dev_command(WORKSPACE_YAML, port),
            env=env,
            cwd=checkout or root,
            out=sys.stderr,
            on_ready=ready,
            base_url=base_url,
            instance=instance,
        )
    finally:
        stop()
    click.echo("Dagster stopped.")
    raise SystemExit(code)


if __name__ == "__main__":
    main()

"""How the `videogen` command fails: one line on stderr and a non-zero exit, never a traceback.

- A creator's mistake (:class:`~videogen_domain.errors.InputError`, a bad option) prints
  ``error: <file>:<line>: <field>: <what is wrong>; <what to do>`` and exits 2.
- A service that fails (:class:`~videogen_resources.errors.ServiceError`) or the disk
  (``OSError``) prints its message and exits 1.
- Ctrl-C prints ``error: interrupted`` and exits 130, within `INTERRUPT_GRACE_S` whatever the
  command was doing (see `install_interrupt_handler`).
- Anything unexpected prints one line naming the log file that holds the traceback
  (``<studio>/logs/videogen.log``) and exits 1.

``--debug`` (or ``VIDEOGEN_DEBUG=1``) prints the traceback on stderr before that line.
`StudioGroup` applies this to every subcommand; other code (a render) may call `report` to
fail the same way.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from videogen_domain.errors import InputError
from videogen_resources.errors import ServiceError

LOG_DIR = "logs"
LOG_FILE = "videogen.log"
LOG_MAX_BYTES = 5 * 1024 * 1024
"""The log is started afresh (the old one kept as videogen.log.1) past this size."""

EXIT_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

INTERRUPT_GRACE_S = 3.0
"""After Ctrl-C a command has this long to stop by itself; then it is ended, with the same line
and exit status. Python's own Ctrl-C is a KeyboardInterrupt raised wherever the main thread is:
one that lands in a finalizer (``__del__``, a weakref callback) is printed as "ignored" and
lost, and the command would wait on, e.g. for a server that never answers, until its timeout."""

_interrupt_reported = threading.Event()
_interrupt_seen = threading.Event()


def _end_interrupted() -> None:
    """End the process now as an interrupted command (one line unless already printed)."""
    if not _interrupt_reported.is_set():
        _interrupt_reported.set()
        try:
            sys.stderr.write("error: interrupted\n")
            sys.stderr.flush()
        except Exception:  # stderr closed: the exit status still says it
            pass
    os._exit(EXIT_INTERRUPTED)


def _on_interrupt(signum: int, frame: Any) -> None:
    if _interrupt_seen.is_set():  # a second Ctrl-C: now
        _end_interrupted()
    _interrupt_seen.set()
    timer = threading.Timer(INTERRUPT_GRACE_S, _end_interrupted)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt


def install_interrupt_handler() -> None:
    """Ctrl-C raises KeyboardInterrupt as always, and ends the command `INTERRUPT_GRACE_S`
    later should it still run; a second Ctrl-C ends it at once. Only where Python's default
    handler is in place, on the main thread: a ``nohup`` or background start that ignores
    SIGINT keeps ignoring it, and a render installs its own stopper over this one."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)


def debug_enabled(ctx: click.Context | None = None) -> bool:
    """Whether tracebacks should be shown: ``--debug`` or ``VIDEOGEN_DEBUG`` set to 1/true/yes."""
    if ctx is not None:
        root_ctx = ctx.find_root()
        if isinstance(root_ctx.obj, dict) and root_ctx.obj.get("debug"):
            return True
    return os.environ.get("VIDEOGEN_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def one_line(text: str) -> str:
    """``text`` on one line (line breaks become ' / ')."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    return " / ".join(parts)


def echo_error(message: str) -> None:
    """Print ``error: <message>`` as one line on stderr."""
    click.echo(f"error: {one_line(message)}", err=True)


def log_path(root: Path) -> Path:
    """The studio's log file of the command line."""
    return root / LOG_DIR / LOG_FILE


def write_log(root: Path | None, exc: BaseException, command: str = "") -> Path | None:
    """Append ``exc``'s traceback to the studio's log; return the file, or None if it could
    not be written (the studio itself unusable): then nothing is written anywhere else."""
    if root is None or not root.is_dir():
        return None
    path = log_path(root)
    try:
        path.parent.mkdir(exist_ok=True)
        if path.is_file() and path.stat().st_size > LOG_MAX_BYTES:
            os.replace(path, path.with_name(LOG_FILE + ".1"))
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {stamp} pid {os.getpid()} videogen {command}\n{text}\n")
    except OSError:
        return None
    return path


def _studio_of(ctx: click.Context | None) -> Path | None:
    if ctx is None:
        return None
    obj = ctx.find_root().obj
    root = obj.get("root") if isinstance(obj, dict) else None
    return Path(root) if root else None


def _command_of(ctx: click.Context | None) -> str:
    if ctx is None:
        return ""
    root = ctx.find_root()
    args = root.meta.get(ARGS_KEY)
    if args is None:
        return root.command_path
    return " ".join([root.command_path, *map(str, args)])


ARGS_KEY = "videogen.args"
"""Where `StudioGroup.main` keeps the command line it was given (for the log)."""


def report(exc: BaseException, ctx: click.Context | None = None) -> NoReturn:
    """Fail the command because of ``exc``: one line on stderr, the exit status of its kind."""
    if isinstance(exc, KeyboardInterrupt):
        if not _interrupt_reported.is_set():
            _interrupt_reported.set()
            echo_error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(exc, InputError):
        echo_error(str(exc))
        sys.exit(EXIT_INPUT)
    root = _studio_of(ctx)
    where = write_log(root, exc, _command_of(ctx))
    if isinstance(exc, ServiceError):
        echo_error(str(exc))
        sys.exit(EXIT_FAILED)
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc)
        target = f"{exc.filename}: " if exc.filename else ""
        echo_error(f"{target}{what}; check the disk and the path's permissions")
        sys.exit(EXIT_FAILED)
    # A database driver's error (SQLAlchemy's DBAPIError) says it best in its original.
    first = one_line(str(getattr(exc, "orig", None) or exc))[:300] or "(no message)"
    if where is not None:
        hint = f"the traceback is in {where}; rerun with --debug to see it here"
    else:
        hint = "rerun with --debug to see the traceback"
    echo_error(f"unexpected {type(exc).__name__}: {first}; {hint}")
    sys.exit(EXIT_FAILED)


LAZY_COMMANDS = {
    "character": ("videogen.cli_characters", "character_group"),
    "cast": ("videogen.cli_characters", "cast_group"),
    "workflows": ("videogen.cli_workflows", "workflows_cmd"),
}
"""Subcommands imported when used: their modules load Dagster, which takes seconds, and a
Ctrl-C in those seconds must meet the handler below, not an import."""


class StudioGroup(click.Group):
    """A click group whose commands fail as one line (see the module docstring)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        given = list(args)
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[ARGS_KEY] = given
        return ctx

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[cmd_name]
            found = getattr(importlib.import_module(module), attr)
            assert isinstance(found, click.Command)
            self.add_command(found, cmd_name)
        return found

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            if debug_enabled(ctx):
                # The whole traceback first, then the same line and exit status as without it.
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
                sys.stderr.flush()
            report(exc, ctx)

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        install_interrupt_handler()
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(0)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx is not None else "videogen"
            echo_error(f"{exc.format_message()}; see `{cmd} --help`")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            echo_error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            if not _interrupt_reported.is_set():
                _interrupt_reported.set()
                echo_error("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)

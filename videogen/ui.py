"""`videogen ui`: Dagster's `dg dev` on a studio, a quiet console, and a clean end.

- `dg dev` (webserver, daemon and the code server they share) runs from the repository root,
  where ``[tool.dg]`` in pyproject.toml names the code location, in its **own process group**.
  SIGTERM or SIGINT to `videogen ui` is forwarded to that whole group, the way Ctrl-C in a
  terminal reaches every process of a foreground job (SIGHUP, a closed terminal, is forwarded
  as SIGTERM: the group no longer belongs to the terminal): `dg dev` shuts its webserver and
  daemon down, the code server and run workers stop. `videogen ui` then waits until no process
  of the group remains (SIGKILL to the group after ``GRACE_S``) before it stops the media server and
  exits, so a stopped studio leaves no daemon materializing behind it and no port taken. On
  Linux it is also the *subreaper* of the group, so processes orphaned on the way down are
  reaped, not left as zombies.
- The console: Dagster's DEBUG and INFO lines (every event of every run) are dropped, warnings
  and errors are kept (with their tracebacks), and one line is printed per finished run
  (``run_line``); the run's page in the UI has every event.
- Once the webserver answers, the "join the community" dialog is marked seen and the URLs of
  the projects' lineage pages (their asset groups) are printed; ``--open`` opens the most
  recently edited project's page in the browser.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
from dagster import DagsterRunStatus, RunsFilter

from videogen_assets.instance import CODE_LOCATION, REPOSITORY
from videogen_domain import paths

GRACE_S = 30.0
"""How long the group may take to stop after the signal before it is killed."""

POLL_S = 1.0
"""How often finished runs are looked up for the console."""

# Environment variables that would make `dg dev` load a module instead of the project (and so
# name the code location after the module): the UI always loads the project's code location.
POINTER_VARS = (
    "DAGSTER_MODULE_NAME",
    "DAGSTER_PYTHON_FILE",
    "DAGSTER_PACKAGE_NAME",
    "DAGSTER_ATTRIBUTE",
    "DAGSTER_WORKING_DIRECTORY",
    "DAGSTER_autoload_defs_module_name",
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOG_HEADER = re.compile(
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?: [+-]\d{4}| UTC)? - [\w.\-]+ - "
    r"(?P<level>[A-Z]+) - "
)
_QUIET_LEVELS = frozenset({"DEBUG", "INFO"})
# Warnings Dagster prints on every first start of an instance, with nothing to do about them.
_BENIGN = ("No cursor for event type",)


def dg_dev_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The `dg dev` command line `videogen ui` runs (from the repository root)."""
    return [
        sys.executable,
        "-m",
        "dagster_dg_cli.cli",
        "dev",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-check-yaml",
    ]


def dagster_dev_command(workspace: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line of an installed studio (no `dg` project folder): `dagster dev` on the
    packaged workspace file, with the same host, port and log level as `dg dev`."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(workspace),
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def child_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of `dg dev`: ``base`` without module pointers, unbuffered, plus ``extra``."""
    env = {k: v for k, v in base.items() if k not in POINTER_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ConsoleFilter:
    """Keeps warnings, errors and anything that is not a Dagster DEBUG/INFO log record.

    A record's continuation lines follow its first line's fate; a raw traceback is always kept.
    """

    keeping: bool = True

    def keep(self, line: str) -> bool:
        """Whether to print ``line`` (one line of the child's output)."""
        plain = _ANSI.sub("", line)
        header = _LOG_HEADER.match(plain)
        if header is not None:
            quiet = header.group("level") in _QUIET_LEVELS
            self.keeping = not quiet and not any(b in plain for b in _BENIGN)
        elif plain.startswith("Traceback (most recent call last)"):
            self.keeping = True
        return self.keeping


def pump_output(stream: IO[bytes], out: IO[str], console: ConsoleFilter | None = None) -> None:
    """Copy the kept lines of ``stream`` to ``out`` until the stream ends."""
    console = console or ConsoleFilter()
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        if console.keep(line):
            out.write(line)
            out.flush()


def lineage_url(base_url: str, group: str | None) -> str:
    """The UI page of a project's asset group (its lineage graph), or of all groups."""
    if group is None:
        return f"{base_url}/asset-groups"
    location = quote(f"{REPOSITORY}@{CODE_LOCATION}", safe="@")
    return f"{base_url}/locations/{location}/asset-groups/{quote(group, safe='')}"


def projects_by_recent_edit(root: Path) -> list[str]:
    """The studio's projects, the most recently edited (script.md or project.yaml) first."""
    folder = paths.projects_dir(root)
    if not folder.exists():
        return []

    def edited(project: Path) -> float:
        stamps = [
            (project / name).stat().st_mtime
            for name in (paths.SCRIPT_FILE, paths.PROJECT_FILE)
            if (project / name).exists()
        ]
        return max(stamps, default=0.0)

    found = [p for p in folder.iterdir() if (p / paths.PROJECT_FILE).exists()]
    return [p.name for p in sorted(found, key=lambda p: (-edited(p), p.name))]


def run_line(run: Any, start_time: float | None, end_time: float | None, base_url: str) -> str:
    """One console line for a finished run: status, time, what it made, who asked for it."""
    tags: Mapping[str, str] = run.tags
    took = f"{end_time - start_time:.1f} s" if start_time and end_time else "-"
    if run.asset_selection:
        what = ", ".join(sorted(k.to_user_string() for k in run.asset_selection))
    else:
        what = run.job_name
    partition = tags.get("dagster/partition")
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    if partition:
        what += f" [{partition}]"
    elif start and end:
        what += f" [{start}...{end}]"
    if "dagster/backfill" in tags:
        by = f"backfill {tags['dagster/backfill']}"
    elif "dagster/sensor_name" in tags:
        by = tags["dagster/sensor_name"]
    elif any(t.startswith("dagster/automation_condition") for t in tags) or tags.get(
        "dagster/from_automation_condition"
    ):
        by = "automation"
    else:
        by = "launched"
    stamp = time.strftime("%H:%M:%S", time.localtime(end_time or time.time()))
    status = run.status.value
    line = f"{stamp} run {run.run_id[:8]} {status} in {took}: {what} ({by})"
    if status != "SUCCESS":
        line += f" - {base_url}/runs/{run.run_id}"
    return line


def watch_runs(
    instance: Any,
    base_url: str,
    out: IO[str],
    stop: threading.Event,
    *,
    since: float,
    interval_s: float = POLL_S,
) -> None:
    """Print one line per run that finishes after ``since`` until ``stop`` is set."""
    finished = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
    seen: set[str] = set()
    after = datetime.fromtimestamp(since, tz=UTC)
    while not stop.wait(interval_s):
        try:
            records = instance.get_run_records(
                filters=RunsFilter(statuses=finished, updated_after=after), limit=200
            )
        except Exception as exc:  # the instance is busy or going away: say so, try again
            out.write(f"videogen ui: could not read runs ({exc})\n")
            continue
        for rec in sorted(records, key=lambda r: r.end_time or 0.0):
            if rec.dagster_run.run_id in seen:
                continue
            seen.add(rec.dagster_run.run_id)
            out.write(run_line(rec.dagster_run, rec.start_time, rec.end_time, base_url) + "\n")
            out.flush()


def wait_until_ready(
    base_url: str, proc: subprocess.Popen[bytes], stop: threading.Event, timeout_s: float
) -> bool:
    """Wait until the webserver answers; False if it ended or ``stop`` was set first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set() and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/server_info", timeout=2.0).status_code == 200:
                return True
        stop.wait(0.5)
    return False


def dismiss_welcome(base_url: str) -> None:
    """Mark Dagster's first-visit "join the community" dialog as seen for this instance."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{base_url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=10.0)


def become_subreaper() -> bool:
    """Adopt the orphans among our descendants (Linux), so they can be reaped here."""
    if not sys.platform.startswith("linux"):
        return False
    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0)


def reap_children() -> None:
    """Collect the exit status of every child that has ended (no zombies left behind)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` remains."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pgid: int, *, grace_s: float = GRACE_S) -> bool:
    """Wait for the group to end, reaping as it goes; SIGKILL it after ``grace_s``.

    Returns True when it ended by itself.
    """
    deadline = time.monotonic() + grace_s
    while group_alive(pgid):
        reap_children()
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10.0
            while group_alive(pgid) and time.monotonic() < kill_deadline:
                reap_children()
                time.sleep(0.05)
            return False
        time.sleep(0.1)
    reap_children()
    return True


@dataclass
class Forwarder:
    """Signal handlers that forward SIGTERM/SIGINT (and SIGHUP, as SIGTERM) to the child's group.

    A signal that arrives before the child exists is forwarded as soon as it does. A second
    signal while the group is stopping kills it.
    """

    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    pgid: int | None = None
    received: list[int] = field(default_factory=list)
    _previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> None:
        """Take over the signals (main thread only)."""
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Give the signals back to their previous handlers."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def attach(self, pgid: int) -> None:
        """The child's group exists: forward what already arrived."""
        self.pgid = pgid
        if self.received:
            self._send(self.received[0])

    def _handle(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        if self.pgid is None:
            return
        self._send(signum if len(self.received) == 1 else signal.SIGKILL)

    def _send(self, signum: int) -> None:
        assert self.pgid is not None
        # A closed terminal (SIGHUP) stops Dagster the way SIGTERM does.
        forwarded = signal.SIGTERM if signum == signal.SIGHUP else signum
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, forwarded)


def run_dagster_ui(
    command: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    out: IO[str],
    on_ready: Callable[[], None] | None = None,
    base_url: str,
    instance: Any = None,
    ready_timeout_s: float = 600.0,
    grace_s: float = GRACE_S,
) -> int:
    """Run ``command`` (`dg dev`) in its own process group until it ends or a signal stops it.

    Returns the exit status for `videogen ui`: 0 after a requested stop, else the child's.
    """
    forwarder = Forwarder()
    forwarder.install()
    become_subreaper()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(
            command,
            cwd=str(cwd),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        forwarder.attach(proc.pid)
        assert proc.stdout is not None
        threads.append(threading.Thread(target=pump_output, args=(proc.stdout, out), daemon=True))
        started = time.time()

        def ready() -> None:
            assert proc is not None
            if wait_until_ready(base_url, proc, stop, ready_timeout_s):
                dismiss_welcome(base_url)
                if on_ready is not None:
                    on_ready()

        threads.append(threading.Thread(target=ready, daemon=True))
        if instance is not None:
            threads.append(
                threading.Thread(
                    target=watch_runs,
                    args=(instance, base_url, out, stop),
                    kwargs={"since": started},
                    daemon=True,
                )
            )
        for t in threads:
            t.start()
        code = proc.wait()
    finally:
        stop.set()
        if proc is not None:
            if not forwarder.received:
                # dg dev ended by itself (or this process failed): stop what is left of it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
            end_group(proc.pid, grace_s=grace_s)
            proc.wait()
        for t in threads:
            t.join(timeout=5)
        forwarder.restore()
    return 0 if forwarder.received else code


def open_in_browser(url: str) -> None:
    """Open ``url`` in the creator's browser ($BROWSER is honoured)."""
    webbrowser.open(url, new=2)


def project_urls(base_url: str, projects: Iterable[str]) -> list[tuple[str, str]]:
    """(project, lineage URL) for each project."""
    return [(p, lineage_url(base_url, p)) for p in projects]

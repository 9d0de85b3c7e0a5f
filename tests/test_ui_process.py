"""`videogen ui`: Dagster started for a studio, and stopped completely by a signal.

Pins: `videogen ui` runs `dg dev` (webserver, daemon, code server, run workers) in a process
group of its own. SIGTERM, SIGINT or SIGHUP (a closed terminal) to the `videogen ui` process
ends every process of that group: afterwards none remains, the webserver and media ports can
be bound again, and `videogen ui` exits 0. Its console carries no DEBUG/INFO record of
Dagster's, no deprecation warning and no warning about a `dagster.yaml`; it prints the
project's lineage page (its asset group in the UI, which answers), opens it with `--open`
(through $BROWSER), and prints exactly one line per finished run (the daemon's automation
materializing a new project's sentence), naming the run's id as the instance records it. The
console filter keeps warnings and errors with their continuation lines and drops DEBUG/INFO
records with theirs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

from videogen.operations import create_project
from videogen.ui import ConsoleFilter
from videogen_assets.instance import INSTANCE_DEFAULTS

pytestmark = pytest.mark.slow

PROJECT = "volcanoes"
SCRIPT = "# Opening\nThe sky over the volcano glows red.\n"
SERVICE_VARS = ("COMFYUI_URL", "CHATTERBOX_URL", "DEEPSEEK_API_KEY", "LLM_BASE_URL", "VIDEOGEN_TTS")
START_TIMEOUT_S = 240.0
RUN_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 120.0
RUN_LINE = re.compile(r"^\d\d:\d\d:\d\d run (?P<id>[0-9a-f]{8}) (?P<status>[A-Z]+) in ")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, process group, state) of every process on this machine."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def descendants(root_pid: int) -> dict[int, int]:
    """pid -> process group of every descendant of ``root_pid``."""
    table = proc_table()
    found: dict[int, int] = {}
    frontier = [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, pgid, _) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = pgid
                frontier.append(pid)
    return found


def make_studio(base: Path) -> tuple[Path, Path]:
    root, home = base / "studio", base / "dagster_home"
    root.mkdir()
    home.mkdir()
    shutil.copyfile(INSTANCE_DEFAULTS, home / "dagster.yaml")
    script = base / "script.md"
    script.write_text(SCRIPT, encoding="utf-8")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        create_project(root, title="Volcanoes", name=PROJECT, script_file=script, instance=instance)
    finally:
        instance.dispose()
    return root, home


class UI:
    """A `videogen ui` process on a temporary studio, its console in a file."""

    def __init__(self, base: Path, *extra: str) -> None:
        self.root, self.home = make_studio(base)
        self.port, self.media_port = free_port(), free_port()
        self.console = base / "console.txt"
        self.opened = base / "opened.txt"
        opener = base / "browser.py"
        opener.write_text(
            f"import sys, pathlib\npathlib.Path({str(self.opened)!r}).write_text(sys.argv[1])\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
        env.update(
            DAGSTER_HOME=str(self.home),
            VIDEOGEN_HOME=str(self.root),
            BROWSER=f"{sys.executable} {opener} %s",
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "videogen.cli", "ui", "--port", str(self.port)]
        cmd += ["--media-port", str(self.media_port), *extra]
        with self.console.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=base, stdout=out, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.console.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), re.MULTILINE)
            if found:
                return found
            if self.proc.poll() is not None:
                pytest.fail(f"videogen ui exited ({self.proc.returncode}):\n{self.text()}")
            time.sleep(0.5)
        pytest.fail(f"no {pattern!r} in {timeout_s:.0f} s:\n{self.text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_a_signal_stops_every_dagster_process(tmp_path: Path, sig: signal.Signals) -> None:
    ui = UI(tmp_path, "--open")
    try:
        ready = ui.wait_for(r"^Dagster UI ready: (\S+)", START_TIMEOUT_S)
        url = ready.group(1)
        group_page = f"/locations/__repository__@videogen_studio/asset-groups/{PROJECT}"
        assert url == ui.base_url + group_page
        assert httpx.get(url, timeout=30.0).status_code == 200
        deadline = time.monotonic() + 30
        while not ui.opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ui.opened.read_text() == url
        if sig == signal.SIGTERM:
            # Stop while the daemon is at work: automation materializes the new sentence.
            ui.wait_for(RUN_LINE.pattern, RUN_TIMEOUT_S)
        # The browser opener ($BROWSER) runs in videogen ui's own group and may still be
        # ending after it wrote its file: wait for it; a Dagster process there would stay.
        own = os.getpgid(ui.proc.pid)
        deadline = time.monotonic() + 30
        group = descendants(ui.proc.pid)
        while own in group.values() and time.monotonic() < deadline:
            time.sleep(0.2)
            group = descendants(ui.proc.pid)
        assert len(group) >= 4, group  # dg dev, webserver, daemon, code server (at least)
        pgids = set(group.values())
        assert ui.proc.pid not in group and os.getpgid(ui.proc.pid) not in pgids
        ui.proc.send_signal(sig)
        assert ui.proc.wait(timeout=STOP_TIMEOUT_S) == 0, ui.text()
    finally:
        ui.kill()
    left = {pid: v for pid, v in proc_table().items() if v[1] in pgids}
    assert not left, f"processes of the Dagster group still there: {left}"
    assert port_is_free(ui.port) and port_is_free(ui.media_port)

    console = ui.text()
    for noise in (" - DEBUG - ", " - INFO - ", "Warning:", "superseded", "dagster.yaml"):
        assert noise not in console, f"{noise!r} in the console:\n{console}"
    assert f"{PROJECT}: {url}" in console
    assert console.rstrip().endswith("Dagster stopped."), console

    run_ids = [m.group("id") for m in map(RUN_LINE.match, console.splitlines()) if m]
    assert len(run_ids) == len(set(run_ids)), console  # one line per run
    instance = dg.DagsterInstance.from_config(str(ui.home))
    try:
        recorded = {r.run_id[:8]: r for r in instance.get_runs()}
    finally:
        instance.dispose()
    assert set(run_ids) <= set(recorded), (run_ids, recorded)
    for rid in run_ids:
        assert recorded[rid].is_finished
    if sig == signal.SIGTERM:
        assert run_ids, console


def test_console_filter_keeps_warnings_and_drops_debug_records() -> None:
    console = ConsoleFilter()
    lines = [
        "2026-12-02 05:33:54 +0000 - dagster - DEBUG - __ASSET_JOB - 76f6 - STEP_START - x\n",
        "   continuation of the debug record\n",
        "\x1b[32m2026-12-02 05:37:25 +0000\x1b[0m - dagster.daemon.SensorDaemon - "
        "\x1b[34mWARNING\x1b[0m - sensor tick took long\n",
        "  its second line\n",
        "2026-12-02 05:37:26 +0000 - dagster.code_server - INFO - Started Dagster code server\n",
        "Traceback (most recent call last):\n",
        '  File "x.py", line 1, in <module>\n',
        "2026-12-02 05:37:27 +0000 - dagster - ERROR - __ASSET_JOB - run failed\n",
        "2026-12-02 05:37:27 +0000 - dagster.daemon.EventLogConsumerDaemon - WARNING - "
        "No cursor for event type DagsterEventType.RUN_FAILURE, ignoring older events\n",
    ]
    kept = [line for line in lines if console.keep(line)]
    assert kept == [lines[2], lines[3], lines[5], lines[6], lines[7]]

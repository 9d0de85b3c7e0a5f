"""One Ctrl-C ends any `videogen` command: ``error: interrupted`` once on stderr, exit 130.

Python turns Ctrl-C into a KeyboardInterrupt raised wherever the main thread is; one that lands
in a finalizer is printed as "ignored" and lost (the CLI then waited on a silent server until
its timeout). `StudioGroup` installs a handler that still raises it and ends the command
`INTERRUPT_GRACE_S` later should it go on; a second Ctrl-C ends it at once. A process started
with SIGINT ignored (``nohup``, a background job) keeps ignoring it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from videogen.cli_errors import INTERRUPT_GRACE_S

# A StudioGroup whose command swallows every KeyboardInterrupt (as a finalizer would), and one
# that lets it through; "ready" on stdout once the command runs.
PROGRAM = textwrap.dedent(
    """
    import sys, time
    import click
    from videogen.cli_errors import StudioGroup

    @click.group(cls=StudioGroup)
    def main() -> None:
        pass

    @main.command()
    def swallow() -> None:
        print("ready", flush=True)
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass

    @main.command()
    def plain() -> None:
        print("ready", flush=True)
        time.sleep(60)

    main()
    """
)


def _start(
    tmp_path: Path,
    started: list[subprocess.Popen[str]],
    command: str,
    *,
    ignore_sigint: bool = False,
) -> subprocess.Popen[str]:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM, encoding="utf-8")

    def before() -> None:
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, str(script), command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=before,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "VIDEOGEN_DEBUG": ""},
    )
    started.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The programs a test starts; whatever it asserts, none outlives it."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.slow
def test_a_swallowed_ctrl_c_still_ends_the_command(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    proc = _start(tmp_path, started, "swallow")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=INTERRUPT_GRACE_S + 20)
    took = time.monotonic() - t0
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["error: interrupted"]
    assert INTERRUPT_GRACE_S - 0.5 <= took  # the command had its grace time first


def test_a_second_ctrl_c_ends_it_at_once(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    proc = _start(tmp_path, started, "swallow")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and time.monotonic() - t0 < INTERRUPT_GRACE_S
    assert err.strip().splitlines() == ["error: interrupted"]


def test_a_command_that_stops_prints_the_line_once(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    proc = _start(tmp_path, started, "plain")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["error: interrupted"]


@pytest.mark.slow
def test_sigint_ignored_by_the_parent_stays_ignored(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    proc = _start(tmp_path, started, "plain", ignore_sigint=True)
    proc.send_signal(signal.SIGINT)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=INTERRUPT_GRACE_S + 1)

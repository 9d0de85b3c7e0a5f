"""Render progress for the command line: what is done, what runs now, and how long is left.

`RenderWatch` reads a render's runs from the Dagster event log, incrementally: assets
materialized per kind (with when), the step each kind's run is in, and the last sampler step a
generation service reported (``step 4/6``: the ComfyUI client logs it, rate-limited, into the
run's log, which is also what the Dagster UI shows). `RenderSnapshot` carries that, with a
per-kind ETA from measured rates (seconds per asset of that kind so far, the running asset's
sampler progress counted in).

Two displays take snapshots: `LiveDisplay` redraws one status block in place on a terminal
(rich), `LineDisplay` prints one line per finished asset (logs, pipes, CI). `console_progress`
picks one: the live block only when stdout and stderr are both terminals.
"""

from __future__ import annotations

import atexit
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import dagster as dg

STEP_RE = re.compile(r"(?:\b(?P<node>node \S+(?: \([^)]*\))?) )?step (?P<n>\d+)/(?P<of>\d+)")
"""A service's sampler progress in a log line, e.g. ``ComfyUI: node 3 (KSampler) step 4/6``."""


@dataclass(frozen=True)
class Finished:
    """One asset partition materialized by the render."""

    kind: str
    partition: str | None
    at: float  # event timestamp (time.time())
    seconds: float | None  # since the previous one of its kind (or its step's start)


@dataclass(frozen=True)
class Running:
    """What a kind's step is doing now."""

    kind: str
    since: float  # when its step started (time.time())
    step: int | None = None  # the last sampler step reported, of ``steps``
    steps: int | None = None
    detail: str = ""  # e.g. "node 3 (KSampler)"
    partition: str | None = None


@dataclass
class RenderSnapshot:
    """Where a render stands."""

    totals: dict[str, int]
    done: dict[str, int]
    running: dict[str, Running] = field(default_factory=dict)
    finished: list[Finished] = field(default_factory=list)  # new since the previous snapshot
    rates: dict[str, float] = field(default_factory=dict)  # seconds per asset, measured
    elapsed: float = 0.0
    final: bool = False

    def eta(self, kind: str) -> float | None:
        """Seconds left for ``kind`` from its measured rate; None until one was measured."""
        total = self.totals.get(kind, 0)
        done = min(self.done.get(kind, 0), total)
        if done >= total:
            return 0.0
        rate = self.rates.get(kind)
        if rate is None:
            return None
        left = float(total - done)
        run = self.running.get(kind)
        if run is not None and run.step is not None and run.steps:
            left -= min(0.95, run.step / run.steps)
        return max(0.0, left * rate)


class RenderWatch:
    """Reads the runs of one render (tag ``videogen/render``) from the event log, incrementally."""

    def __init__(self, instance: dg.DagsterInstance, tag: str, totals: dict[str, int]) -> None:
        self.instance, self.tag, self.totals = instance, tag, dict(totals)
        self.t0 = time.monotonic()
        self._cursors: dict[str, str | None] = {}
        self._done: dict[str, int] = {}
        self._last_at: dict[str, float] = {}  # kind -> last materialization (or step start)
        self._durations: dict[str, list[float]] = {}
        self._running: dict[str, Running] = {}
        self._run_kind: dict[str, str] = {}

    def poll(self, *, final: bool = False) -> RenderSnapshot:
        """What happened since the previous poll, and where the render stands."""
        finished: list[Finished] = []
        starts: list[float] = []
        ends: list[float] = []
        records = self.instance.get_run_records(dg.RunsFilter(tags={"videogen/render": self.tag}))
        for record in records:
            run = record.dagster_run
            self._read_run(run.run_id, finished)
            if record.start_time is not None:
                starts.append(record.start_time)
            if record.end_time is not None:
                ends.append(record.end_time)
            if run.is_finished:
                kind = self._run_kind.get(run.run_id)
                if kind is not None:
                    self._running.pop(kind, None)
        # the render's own clock: from its first run's start (to its last run's end, when final)
        if starts:
            end = max(ends) if final and ends else time.time()
            elapsed = max(0.0, end - min(starts))
        else:
            elapsed = time.monotonic() - self.t0
        rates = {kind: sum(d) / len(d) for kind, d in self._durations.items() if d}
        return RenderSnapshot(
            totals=dict(self.totals),
            done=dict(self._done),
            running=dict(self._running),
            finished=finished,
            rates=rates,
            elapsed=elapsed,
            final=final,
        )

    def _read_run(self, run_id: str, finished: list[Finished]) -> None:
        while True:
            conn = self.instance.get_records_for_run(
                run_id, cursor=self._cursors.get(run_id), limit=1000
            )
            self._cursors[run_id] = conn.cursor
            for rec in conn.records:
                self._read_entry(run_id, rec.event_log_entry, finished)
            if not conn.has_more:
                return

    def _read_entry(self, run_id: str, entry: Any, finished: list[Finished]) -> None:
        kind = _kind_of_step(entry.step_key)
        event = entry.dagster_event
        if event is None:  # a log line from a step
            if kind is None:
                return
            match = STEP_RE.search(entry.user_message or "")
            run = self._running.get(kind)
            if match and run is not None:
                self._running[kind] = Running(
                    kind=kind,
                    since=run.since,
                    step=int(match["n"]),
                    steps=int(match["of"]),
                    detail=match["node"] or "",
                    partition=_partition_in(entry.user_message or "") or run.partition,
                )
            return
        if event.event_type == dg.DagsterEventType.STEP_START and kind is not None:
            self._running[kind] = Running(kind=kind, since=entry.timestamp)
            self._run_kind[run_id] = kind
            self._last_at[kind] = entry.timestamp  # time before it is not this kind's
        elif (
            event.event_type
            in (
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            )
            and kind is not None
        ):
            self._running.pop(kind, None)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = entry.asset_materialization
            if mat is None:
                return
            mkind = mat.asset_key.path[-1]
            self._done[mkind] = self._done.get(mkind, 0) + 1
            prev = self._last_at.get(mkind)
            seconds = entry.timestamp - prev if prev is not None else None
            if seconds is not None:
                self._durations.setdefault(mkind, []).append(max(0.0, seconds))
            self._last_at[mkind] = entry.timestamp
            run = self._running.get(mkind)
            if run is not None:  # the next asset of this kind starts now
                self._running[mkind] = Running(kind=mkind, since=run.since)
            finished.append(Finished(mkind, mat.partition, entry.timestamp, seconds))


def _kind_of_step(step_key: str | None) -> str | None:
    """``volcanoes__keyframe`` -> ``keyframe``."""
    if not step_key:
        return None
    return step_key.rsplit("__", 1)[-1]


_PARTITION_RE = re.compile(r"\b([a-z0-9][a-z0-9_-]*\.s\d{4,})\b")


def _partition_in(message: str) -> str | None:
    match = _PARTITION_RE.search(message)
    return match.group(1) if match else None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def status_lines(snap: RenderSnapshot) -> list[str]:
    """The status block: one line per kind, ``kind [####      ] 3/12  step 4/6  ETA 1m20s``."""
    lines = []
    width = max((len(k) for k in snap.totals), default=0)
    for kind, total in snap.totals.items():
        n = min(snap.done.get(kind, 0), total)
        bar = "#" * int(10 * n / total) if total else ""
        line = f"{kind:<{width}} [{bar:<10}] {n}/{total}"
        run = snap.running.get(kind)
        if run is not None and n < total:
            if run.step is not None and run.steps:
                line += f"  step {run.step}/{run.steps}"
            else:
                line += "  running"
        if 0 < n < total or (run is not None and n < total):
            line += f"  ETA {_duration(snap.eta(kind))}"
        elif n >= total and total:
            line += "  done"
        lines.append(line)
    lines.append(f"elapsed {_duration(snap.elapsed)}")
    return lines


class LineDisplay:
    """One line per finished asset (for logs and pipes): ``keyframe volcanoes.s0003 done
    (3/12, 4.2s)``; the last snapshot adds a summary line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._seen: set[tuple[str, str | None, float]] = set()
        self._lock = threading.Lock()

    def __call__(self, snap: RenderSnapshot) -> None:
        stream = self.stream or sys.stderr
        with self._lock:
            for f in snap.finished:
                if (f.kind, f.partition, f.at) in self._seen:
                    continue
                self._seen.add((f.kind, f.partition, f.at))
                total = snap.totals.get(f.kind, 0)
                took = f", {f.seconds:.1f}s" if f.seconds is not None else ""
                where = f" {f.partition}" if f.partition else ""
                print(
                    f"{f.kind}{where} done ({snap.done.get(f.kind, 0)}/{total}{took})",
                    file=stream,
                    flush=True,
                )
            if snap.final:
                done = sum(min(snap.done.get(k, 0), t) for k, t in snap.totals.items())
                print(
                    f"render: {done}/{sum(snap.totals.values())} assets in "
                    f"{_duration(snap.elapsed)}",
                    file=stream,
                    flush=True,
                )


class LiveDisplay:
    """One status block redrawn in place on a terminal (rich ``Live``)."""

    def __init__(self, stream: TextIO | None = None, *, force_terminal: bool | None = None) -> None:
        # lazy: rich is needed only where a terminal shows the live block
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr, force_terminal=force_terminal)
        self._live: Any = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def __call__(self, snap: RenderSnapshot) -> None:
        # lazy: see __init__
        from rich.live import Live
        from rich.text import Text

        text = Text("\n".join(status_lines(snap)))
        with self._lock:
            if self._live is None:
                self._live = Live(text, console=self.console, auto_refresh=False, transient=False)
                self._live.start()
            self._live.update(text, refresh=True)
            if snap.final:
                self._stop()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


Display = Callable[[RenderSnapshot], None]


def console_progress(stream: TextIO | None = None) -> Display:
    """The display for `videogen render`: a live block when stdout and stderr are terminals,
    else a line per finished asset (on stderr)."""
    interactive = sys.stdout.isatty() and sys.stderr.isatty() if stream is None else False
    return LiveDisplay(stream) if interactive else LineDisplay(stream)


__all__ = [
    "Display",
    "Finished",
    "LineDisplay",
    "LiveDisplay",
    "RenderSnapshot",
    "RenderWatch",
    "Running",
    "console_progress",
    "status_lines",
]

"""Helpers for tests about when steps ran: each step's start and end in a run, and the most
steps that overlapped."""

from __future__ import annotations

import dagster as dg
from dagster import DagsterEventType


def step_spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) of each step of a run that succeeded, from its event log."""
    start: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for rec in instance.get_records_for_run(run_id, limit=100000).records:
        entry = rec.event_log_entry
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            start[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            spans[event.step_key] = (start[event.step_key], entry.timestamp)
    return spans


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one time."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best

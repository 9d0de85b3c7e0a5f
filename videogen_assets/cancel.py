"""A cancelled run stops and is never retried.

A run is cancelled by the Dagster UI or the daemon (its status turns CANCELING and its steps
are interrupted) or by Ctrl-C on `videogen render` (which asks this process to stop:
`request_stop`). Dagster 1.13 applies an op's ``RetryPolicy`` to an interrupted step as to any
other failure, and a step whose service call failed because of the stop (ComfyUI answered
"interrupted", ffmpeg was killed by the same Ctrl-C) looks like an ordinary failure too: the
step would be retried 2 s and 6 s later and queue new prompts on a GPU that was just told to
stop. `stops_on_cancel` wraps each per-sentence asset so that any interruption, and any failure
while its run is being cancelled, ends the step as a ``Failure`` that is not retried; when the
run is CANCELING, Dagster then marks it CANCELED.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dagster as dg

_STOP = threading.Event()
_POLL_S = 1.0
CANCELLED_STATUSES = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


def request_stop() -> None:
    """Ask every step running in this process to stop (Ctrl-C on `videogen render`)."""
    _STOP.set()


def clear_stop() -> None:
    """Forget a stop request (a new render in the same process)."""
    _STOP.clear()


def stop_requested() -> bool:
    """Whether this process was asked to stop."""
    return _STOP.is_set()


def run_cancel_check(context: dg.AssetExecutionContext) -> Callable[[], bool]:
    """True once this process was asked to stop or this Dagster run is being cancelled (its
    status read at most once a second), so a long generation on a service can be interrupted
    there instead of running to its end."""
    state = {"at": -_POLL_S, "cancelled": False}

    def cancelled() -> bool:
        if _STOP.is_set():
            return True
        now = time.monotonic()
        if not state["cancelled"] and now - state["at"] >= _POLL_S:
            state["at"] = now
            with contextlib.suppress(Exception):
                run = context.instance.get_run_by_id(context.run_id)
                state["cancelled"] = run is not None and run.status in CANCELLED_STATUSES
        return bool(state["cancelled"])

    return cancelled


def _run_cancelled(context: dg.AssetExecutionContext) -> bool:
    if _STOP.is_set():
        return True
    with contextlib.suppress(Exception):
        run = context.instance.get_run_by_id(context.run_id)
        return run is not None and run.status in CANCELLED_STATUSES
    return False


@contextlib.contextmanager
def no_retry_when_cancelled(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Turn an interruption, or a failure while the run is cancelled, into a step failure that
    the retry policy leaves alone. Other failures pass through unchanged (and are retried)."""
    try:
        yield
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
        context.log.warning("step interrupted: stopping without a retry")
        raise dg.Failure(description="interrupted (run cancelled)", allow_retries=False) from None
    except dg.Failure as exc:
        if exc.allow_retries and _run_cancelled(context):
            raise dg.Failure(
                description=f"run cancelled: {exc.description}", allow_retries=False
            ) from exc
        raise
    except Exception as exc:
        if _run_cancelled(context):
            raise dg.Failure(description=f"run cancelled: {exc}", allow_retries=False) from exc
        raise


def stop_service_jobs() -> None:
    """Tell the services this process uses to stop its jobs now (ComfyUI: the queued prompts
    deleted, the running one interrupted), without waiting for the steps to notice."""
    import sys

    comfyui = sys.modules.get("videogen_resources.comfyui")
    if comfyui is not None:
        with contextlib.suppress(Exception):
            comfyui.stop_live_jobs()


WATCH_S = 0.5
"""How often a running step reads its run's status to tell its services about a cancel."""


@contextlib.contextmanager
def services_told_on_cancel(context: dg.AssetExecutionContext) -> Iterator[None]:
    """While a step runs, read its run's status every `WATCH_S`; once the run is being
    cancelled (the UI, the daemon, Ctrl-C), tell the services at once: a job waiting on a
    service would only notice at its next poll, and a prompt queued behind it never."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_S):
            if _run_cancelled(context):
                stop_service_jobs()
                return

    watcher = threading.Thread(target=watch, name="videogen-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


_F = TypeVar("_F", bound=Callable[..., Any])


def stops_on_cancel(fn: _F) -> _F:
    """Wrap a generator asset function (first parameter ``context``) in
    `no_retry_when_cancelled` and `services_told_on_cancel`; Dagster still sees the function's
    own signature and docstring."""

    @functools.wraps(fn)
    def wrapper(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with no_retry_when_cancelled(context), services_told_on_cancel(context):
            yield from fn(context, *args, **kwargs)

    return wrapper  # type: ignore[return-value]

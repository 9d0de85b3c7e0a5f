"""Which Dagster executor runs the steps of the studio's runs, chosen by the environment.

Read when the Definitions are built (`videogen_assets.definitions`), in every process that loads
them: the code location, each run's process and each `dagster-celery` worker.

- ``VIDEOGEN_EXECUTOR``: ``auto`` (default) runs a run over one sentence (an edit) or the
  project outputs in the run's own process and a batch of sentences with a process per step
  (``sentence_executor.py``); ``multiprocess`` keeps Dagster's default executor, each step of
  a run in its own process on the run's machine, bounded by the instance's pools; ``celery``
  sends each step as a Celery task to `dagster-celery` workers, on this machine or on others
  (``deploy/celery/README.md``).
- ``VIDEOGEN_CELERY_BROKER`` / ``VIDEOGEN_CELERY_BACKEND``: the Celery broker and result backend
  (default ``redis://127.0.0.1:6379/0`` for both). The workers take the same URLs from their
  ``-y`` config file (``deploy/celery/celery.yaml`` reads these same variables).

With either executor the run's own process claims a pool slot (``gpu``, ``tts``, ``render``)
before it starts or submits a step, so the pools hold for Celery too; a worker's ``-c``
(concurrency) and the queues it listens on bound what each machine runs at once.

``videogen render`` is not affected: it materializes in-process on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import dagster as dg
from pydantic import BaseModel

DEFAULT_CELERY_URL = "redis://127.0.0.1:6379/0"
EXECUTOR_KINDS = ("auto", "multiprocess", "celery")


class ExecutorSettings(BaseModel):
    """The executor choice for the studio's runs."""

    kind: Literal["auto", "multiprocess", "celery"] = "auto"
    celery_broker: str = DEFAULT_CELERY_URL
    celery_backend: str = DEFAULT_CELERY_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExecutorSettings:
        """Read the choice from environment variables (see the module docstring)."""
        env = os.environ if env is None else env
        kind = env.get("VIDEOGEN_EXECUTOR", "").strip().lower() or "auto"
        if kind not in EXECUTOR_KINDS:
            raise ValueError(
                f"VIDEOGEN_EXECUTOR={kind!r} is not an executor; use one of "
                f"{', '.join(EXECUTOR_KINDS)}"
            )
        return cls(
            kind=kind,  # type: ignore[arg-type]
            celery_broker=env.get("VIDEOGEN_CELERY_BROKER", "").strip() or DEFAULT_CELERY_URL,
            celery_backend=env.get("VIDEOGEN_CELERY_BACKEND", "").strip() or DEFAULT_CELERY_URL,
        )


def build_executor(settings: ExecutorSettings | None = None) -> dg.ExecutorDefinition:
    """The executor of the studio's jobs: one process per run over one sentence and a process
    per step for a batch (``auto``), Dagster's default (``multiprocess``, or in-process when a
    run's config asks for it) or Celery."""
    settings = settings or ExecutorSettings.from_env()
    if settings.kind == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:  # the `scale` extra is not installed
            raise ImportError(
                "VIDEOGEN_EXECUTOR=celery needs dagster-celery: pip install -e '.[scale]'"
            ) from exc

        return celery_executor.configured(
            {"broker": settings.celery_broker, "backend": settings.celery_backend},
            name="celery",
        )
    if settings.kind == "auto":
        # lazy: start-up time (the CLI checks the executor settings without building one)
        from videogen_assets.sentence_executor import sentence_or_batch_executor

        return sentence_or_batch_executor
    return dg.multi_or_in_process_executor

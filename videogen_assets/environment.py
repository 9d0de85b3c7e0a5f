"""Every setting a command reads, checked at once before it does any work: the backends (the
resources' `BackendSettings`) and the executor of the studio's runs (`ExecutorSettings`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from videogen_assets.executors import ExecutorSettings
from videogen_domain.errors import InputError
from videogen_resources.settings import BackendSettings


def check_executor_environment(env: Mapping[str, str]) -> ExecutorSettings:
    """The executor variables (VIDEOGEN_EXECUTOR, the Celery broker and backend) checked."""
    try:
        executor = ExecutorSettings.from_env(env)
    except ValueError as exc:
        raise InputError(str(exc), field="VIDEOGEN_EXECUTOR") from None
    for var in ("VIDEOGEN_CELERY_BROKER", "VIDEOGEN_CELERY_BACKEND"):
        value = env.get(var, "").strip()
        if value and "://" not in value:
            raise InputError(
                f"{value!r} is not a broker URL; write it like redis://127.0.0.1:6379/0",
                field=var,
            )
    return executor


def check_environment(env: Mapping[str, str] | None = None) -> BackendSettings:
    """Every backend and executor variable checked at once (before a command does any work)."""
    env = os.environ if env is None else env
    settings = BackendSettings.from_env(env)
    check_executor_environment(env)
    return settings

"""Shared fixtures: a temporary studio root and a temporary Dagster instance (SQLite).

The repository root goes on ``sys.path`` so that ``tests.support`` imports resolve under any
pytest import mode and from any working directory.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def studio_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty studio root, also exported as VIDEOGEN_HOME for code that reads it."""
    root = tmp_path / "studio"
    root.mkdir()
    monkeypatch.setenv("VIDEOGEN_HOME", str(root))
    for name in (
        "COMFYUI_URL",
        "CHATTERBOX_URL",
        "DEEPSEEK_API_KEY",
        "LLM_BASE_URL",
        "VIDEOGEN_TTS",
        "VIDEOGEN_KEYFRAMES",
        "VIDEOGEN_CLIPS",
        "VIDEOGEN_WORKFLOWS",
    ):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture(scope="session")
def empty_instance_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DAGSTER_HOME of an empty SQLite instance, made once per session: creating the storages
    runs Dagster's schema migrations (about 1 s of CPU), copying the files does not."""
    home = tmp_path_factory.mktemp("empty_dagster_home")
    with dg.instance_for_test(temp_dir=str(home)):
        pass
    return home


@pytest.fixture
def instance(tmp_path: Path, empty_instance_home: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance on a temporary DAGSTER_HOME (SQLite storage), started from a copy
    of an empty one."""
    home = tmp_path / "dagster_home"
    shutil.copytree(empty_instance_home, home)
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.instance_for_test(temp_dir=str(home)) as inst:
            yield inst
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old

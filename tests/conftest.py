"""Shared fixtures: a temporary studio root and a temporary Dagster instance (SQLite).

The repository root goes on ``sys.path`` so that ``tests.support`` imports resolve under any
pytest import mode and from any working directory.
"""

from __future__ import annotations

import os
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


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance on a temporary DAGSTER_HOME (SQLite storage)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
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

"""Headless Chromium for browser tests: find the system binary, launch it, keep screenshots.

Tests use Debian's ``chromium`` package (``apt-get install -y chromium``) through Playwright,
never a downloaded browser. When no binary exists the test is skipped with a reason that says
so, and the reason is also raised as a warning so it shows in pytest's default summary.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SKIP_REASON = (
    "no Chromium binary (looked for $CHROMIUM, /usr/bin/chromium and chromium/chromium-browser "
    "on PATH); install it with `apt-get install -y chromium`"
)


class BrowserSkipWarning(UserWarning):
    """Raised beside a skip so a missing browser is visible without ``-rs``."""


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``$CHROMIUM`` if set, else the first one found."""
    explicit = os.environ.get("CHROMIUM")
    candidates = (explicit, *CHROMIUM_CANDIDATES) if explicit else CHROMIUM_CANDIDATES
    for name in candidates:
        found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The Chromium binary, or skip the calling test with a visible reason."""
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    path = chromium_path()
    if path is None:
        warnings.warn(SKIP_REASON, BrowserSkipWarning, stacklevel=2)
        pytest.skip(SKIP_REASON)
    return path


def launch_chromium(playwright: Playwright, **kwargs: Any) -> Browser:
    """Start the system Chromium headless through ``playwright`` (skips when there is none)."""
    return playwright.chromium.launch(
        executable_path=require_chromium(),
        headless=True,
        args=list(CHROMIUM_ARGS),
        **kwargs,
    )


def artifact_path(name: str) -> Path:
    """A path under ``test-artifacts/`` at the repository root (created, gitignored)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", name)

"""The settings a studio's Dagster instance starts with.

``dagster.yaml`` beside this module holds the studio's instance defaults (run queue, pools, run
launcher, run monitoring, retries). `videogen` copies it into a studio's ``DAGSTER_HOME`` that has
none and never overwrites one. It lives in the package, not at the repository root: Dagster
reads instance settings only from ``DAGSTER_HOME``, and `dg dev` / `dagster dev` warn about a
``dagster.yaml`` in the folder they start from that is not ``DAGSTER_HOME`` (the repository
root is where `dg` runs); an installed studio carries the file with its code.
"""

from __future__ import annotations

from pathlib import Path

INSTANCE_DEFAULTS = Path(__file__).with_name("dagster.yaml")
"""The studio's default ``dagster.yaml``."""

CODE_LOCATION = "videogen_studio"
"""The code location's name (``[tool.dg.project]`` in pyproject.toml and workspace.yaml)."""

REPOSITORY = "__repository__"
"""The repository name Dagster gives the Definitions of a code location."""

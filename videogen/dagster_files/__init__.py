"""The Dagster files the studio ships inside the package (so an installed wheel has them).

- ``dagster.yaml``: the instance defaults `videogen` copies into a studio's ``DAGSTER_HOME`` that
  has none (it never overwrites one).
- ``workspace.yaml``: the workspace `videogen ui` (and the daemon) load: the code location
  ``videogen_studio`` from the module ``videogen_assets.definitions``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
DAGSTER_YAML = HERE / "dagster.yaml"
WORKSPACE_YAML = HERE / "workspace.yaml"

__all__ = ["DAGSTER_YAML", "WORKSPACE_YAML"]

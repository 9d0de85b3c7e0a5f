"""Names of the studio's Dagster code location and where its instance defaults live.

The instance defaults (``dagster.yaml``) and the workspace file ship inside the
package (``videogen_assets/dagster_files/``): Dagster reads instance settings only from
``DAGSTER_HOME``, and `dg dev` / `dagster dev` warn about a ``dagster.yaml`` in the folder
they start from that is not ``DAGSTER_HOME``'s (the repository root is where `dg` runs); an
installed studio carries both files with its code.
"""

from __future__ import annotations

from videogen_assets.dagster_files import DAGSTER_YAML as INSTANCE_DEFAULTS
from videogen_assets.dagster_files import WORKSPACE_YAML

__all__ = ["CODE_LOCATION", "INSTANCE_DEFAULTS", "REPOSITORY", "WORKSPACE_YAML"]

CODE_LOCATION = "videogen_studio"
"""The code location's name (``[tool.dg.project]`` in pyproject.toml and workspace.yaml)."""

REPOSITORY = "__repository__"
"""The repository name Dagster gives the Definitions of a code location."""

"""The Dagster files the studio ships inside the package (so an installed wheel has them).

- ``dagster.yaml``: the instance defaults `videogen` copies into a studio's ``DAGSTER_HOME`` that
  has none (it never overwrites one).
- ``workspace.yaml``: the workspace `videogen ui` (and the daemon) load: the code location
  ``videogen_studio`` from the module ``videogen_assets.definitions``.

Both live in the package, not at the repository root: an installed studio carries them with its
code, and `dg dev` / `dagster dev` warn about a ``dagster.yaml`` in the folder they start from
that is not ``DAGSTER_HOME``'s (the repository root is where `dg` runs in a checkout).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
DAGSTER_YAML = HERE / "dagster.yaml"
WORKSPACE_YAML = HERE / "workspace.yaml"

__all__ = ["DAGSTER_YAML", "WORKSPACE_YAML", "checkout_root"]


def checkout_root() -> Path | None:
    """The repository root when the studio runs from a checkout (its pyproject.toml holds the
    ``[tool.dg]`` project `dg dev` loads), else None (an installed wheel: `dg` finds a project's
    root module only inside the project folder, so `videogen ui` runs `dagster dev` on
    ``WORKSPACE_YAML`` instead)."""
    checkout = HERE.parents[1]
    pyproject = checkout / "pyproject.toml"
    try:
        if pyproject.is_file() and "[tool.dg.project]" in pyproject.read_text(encoding="utf-8"):
            return checkout
    except OSError:
        return None
    return None

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

from videogen.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
DAGSTER_YAML = HERE / "dagster.yaml"
WORKSPACE_YAML = HERE / "workspace.yaml"

__all__ = ["DAGSTER_YAML", "DG_PROJECT", "WORKSPACE_YAML", "dg_project_dir"]

DG_PROJECT = """\
# Written by `videogen ui`: the `dg` project that loads the studio's code location, for an
# installed studio (a checkout uses the repository's own pyproject.toml).
[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "videogen_assets"
code_location_target_module = "videogen_assets.definitions"
code_location_name = "videogen_studio"

[tool.dg.cli]
telemetry = { enabled = false }
"""


def dg_project_dir(studio_root: Path) -> Path:
    """The folder `dg dev` runs from: the checkout's root, or a ``dg`` project in the studio.

    In a checkout the repository's pyproject.toml holds ``[tool.dg]``. An installed studio (a
    wheel, pipx, uv tool) has no such file, so the same project settings are written to
    ``<studio>/.dg/pyproject.toml`` (never next to ``DAGSTER_HOME``'s dagster.yaml).
    """
    checkout = HERE.parents[1]
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file() and "[tool.dg.project]" in pyproject.read_text(encoding="utf-8"):
        return checkout
    folder = studio_root / ".dg"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "pyproject.toml"
    if not target.is_file() or target.read_text(encoding="utf-8") != DG_PROJECT:
        atomic_write_text(target, DG_PROJECT)
    return folder

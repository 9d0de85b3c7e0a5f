"""One ConfigurableResource per service, and the embedded engines.

Importing the package installs the workflow registry as the catalog a brief's workflow names
are checked against (`videogen_domain.project.use_workflow_catalog`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from videogen_domain.project import use_workflow_catalog


def workflow_kinds(studio: Path | None, /) -> Mapping[str, str]:
    """Every registered workflow of ``studio``'s registry (shipped + its overlay +
    $VIDEOGEN_WORKFLOWS; None: without an overlay), name -> kind."""
    # lazy: start-up time (the registry module imports the ComfyUI client)
    from videogen_resources.workflows import load_registry, studio_workflows

    registry = load_registry(studio_workflows(studio) if studio is not None else None)
    return {name: entry.kind for name, entry in registry.items()}


use_workflow_catalog(workflow_kinds)

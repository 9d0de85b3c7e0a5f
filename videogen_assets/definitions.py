"""Assemble the studio's Definitions: one asset group per project, sensors and resources."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from videogen import paths
from videogen.errors import InputError
from videogen.project import ProjectBrief, load_brief
from videogen.styles import STYLES_DIR
from videogen_assets.context import CLIP, KEYFRAME, NARRATION, SHOT
from videogen_assets.executors import build_executor
from videogen_assets.observed import build_observed_assets
from videogen_assets.project_assets import build_project_assets
from videogen_assets.sensors import build_script_watcher
from videogen_assets.sentence_assets import SHOT_RULES_VERSION, build_sentence_assets
from videogen_resources.settings import BackendSettings, build_resources


def _style_version(style: str) -> str:
    path = STYLES_DIR / f"{style}.yaml"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.exists() else "none"


def regenerate_condition() -> dg.AutomationCondition:
    """Regenerate a missing asset, or one whose code or an input's data version changed.

    Unlike ``eager()``, an input counts as updated only when its data version changed. An asset
    joins the run of an input requested in the same evaluation, so an edited sentence's chain
    (narration, shot, keyframe, clip) regenerates in one run; inside that run a step whose
    inputs came out unchanged skips its partition (``PartitionResults.unchanged``), so an
    unchanged output (a directive edit that leaves shot.json identical) still stops the
    cascade. A batch over many sentences logs its materializations itself and yields no output,
    so the levels below it are skipped in that run and follow in the next evaluation, when
    their inputs' data versions changed.
    """
    a: Any = dg.AutomationCondition  # the builders' generic types defeat mypy's operator checks
    return (
        a.in_latest_time_window()
        & (
            a.newly_missing()
            | a.any_deps_match(a.data_version_changed() | a.will_be_requested()).with_label(
                "any_dep_data_version_changed_or_requested"
            )
            | a.code_version_changed()
        ).since_last_handled()
        & ~a.any_deps_match(a.missing() & ~a.will_be_requested()).with_label("any_deps_missing")
        & ~a.any_deps_in_progress()
        & ~a.in_progress()
    ).with_label("regenerate")


def automation_for(brief: ProjectBrief, *, partitioned: bool) -> dg.AutomationCondition | None:
    """How a project's assets regenerate by themselves, or None with `automation: false`.

    Per-sentence assets use `regenerate_condition` (an edited sentence's chain in one run, an
    unchanged data version stops the cascade). Project-level outputs use `eager()`: they run
    once no input is missing or in progress, after any input was updated. (A data-version rule
    over all of a partitioned input's sentences did not fire for them under Dagster 1.13.)
    """
    if not brief.automation:
        return None
    return regenerate_condition() if partitioned else dg.AutomationCondition.eager()


def discover_projects(root: Path) -> tuple[list[ProjectBrief], list[str]]:
    """The valid project briefs under a studio root, and the errors of the invalid ones."""
    briefs, invalid = discover_all_projects(root)
    return briefs, list(invalid.values())


def discover_all_projects(root: Path) -> tuple[list[ProjectBrief], dict[str, str]]:
    """The valid project briefs under a studio root, and per invalid project folder its error.

    Nothing about one project folder (a project.yaml that is a folder, a FIFO, unreadable or
    malformed; a folder whose name is not a project name) can stop the others from loading.
    """
    briefs: list[ProjectBrief] = []
    invalid: dict[str, str] = {}
    folder = paths.projects_dir(root)
    try:
        found = sorted(folder.glob("*/project.yaml")) if folder.is_dir() else []
    except OSError as exc:
        return [], {str(folder): f"{folder}: cannot be listed ({exc.strerror or exc})"}
    for path in found:
        name = path.parent.name
        try:
            paths.check_project_name(name, file=path.parent)
            briefs.append(load_brief(path.parent))
        except InputError as exc:
            invalid[name] = str(exc)
        except (OSError, ValueError) as exc:
            invalid[name] = f"{path}: cannot be read ({exc})"
    return briefs, invalid


def invalid_project_asset(name: str, reason: str) -> dg.AssetSpec:
    """What the UI shows for a project folder that cannot load: an asset whose description is
    the reason (the group ``invalid_projects`` lists them; valid projects load as usual)."""
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:40] or "project"
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:6]
    return dg.AssetSpec(
        key=dg.AssetKey([INVALID_PREFIX, f"{slug}_{digest}"]),
        group_name=INVALID_PREFIX.strip("_"),
        description=f"Warning: project folder {name!r} is invalid and was not loaded. {reason}",
        metadata={"folder": name, "error": reason},
        kinds={"warning"},
    )


def _one_line(text: str) -> str:
    """``text`` with line breaks (a folder named with a newline) shown as ``\\n``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


INVALID_PREFIX = "_invalid_project"
"""The first part of the asset key of an invalid project (no project name starts with '_')."""


def build_definitions(
    root: str | Path | None = None, settings: BackendSettings | None = None
) -> dg.Definitions:
    """The Definitions of a studio root (default: $VIDEOGEN_HOME or ./studio)."""
    root_path = paths.studio_root(root)
    settings = settings or BackendSettings.from_env()
    resources = build_resources(settings, root_path)
    briefs, invalid = discover_all_projects(root_path)
    for err in invalid.values():
        print(f"videogen: project skipped: {_one_line(err)}", file=sys.stderr)  # noqa: T201

    gpu = settings.uses_gpu_server
    pools = {
        NARRATION: "tts",
        KEYFRAME: "gpu" if gpu else "render",
        CLIP: "gpu" if gpu else "render",
    }
    engine_kind = {"piper": "piper", "espeak": "espeak", "chatterbox": "chatterbox"}[settings.tts]
    kinds = {
        NARRATION: {"wav", engine_kind},
        SHOT: {"json", "llm" if resources["llm"].is_configured else "python"},
        KEYFRAME: {"png", "comfyui" if gpu else "pillow"},
        CLIP: {"mp4", "comfyui" if gpu else "ffmpeg"},
    }
    assets: list[dg.AssetsDefinition | dg.SourceAsset] = []
    automated: set[str] = set()
    loaded: list[ProjectBrief] = []
    for brief in briefs:
        try:
            project_assets = _project_assets(brief, resources, pools, kinds)
        except Exception as exc:  # one project's failure must not hide the others
            reason = f"{brief.name}: its assets cannot be built ({type(exc).__name__}: {exc})"
            invalid[brief.name] = reason
            print(f"videogen: project skipped: {_one_line(reason)}", file=sys.stderr)  # noqa: T201
            continue
        loaded.append(brief)
        if brief.automation:
            automated.add(brief.name)
        assets += project_assets
    briefs = loaded
    specs = [invalid_project_asset(n, r) for n, r in sorted(invalid.items())]
    sensors: list[dg.SensorDefinition] = [build_script_watcher([b.name for b in briefs], automated)]
    if automated:
        sensors.append(
            dg.AutomationConditionSensorDefinition(
                "automation",
                target=dg.AssetSelection.groups(*sorted(automated)),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=3,
                description="Regenerates missing and stale sentences and project outputs.",
            )
        )
    return dg.Definitions(
        assets=[*assets, *specs],
        sensors=sensors,
        resources=resources,
        executor=build_executor(),
    )


def _project_assets(
    brief: ProjectBrief, resources: dict[str, Any], pools: dict[str, str], kinds: dict[str, Any]
) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """The asset graph of one project."""
    style_v = _style_version(brief.style)
    llm_v = resources["llm"].model if resources["llm"].is_configured else "none"
    versions = {
        NARRATION: resources["narrator"].version(),
        SHOT: f"{SHOT_RULES_VERSION}-{style_v}-{llm_v}",
        KEYFRAME: f"{resources['keyframes'].version(brief.image_workflow)}-{style_v}",
        CLIP: resources["clips"].version(brief.video_workflow),
    }
    project_assets: list[dg.AssetsDefinition | dg.SourceAsset] = []
    project_assets += build_observed_assets(brief.name)
    project_assets += build_sentence_assets(
        brief.name,
        versions=versions,
        automation=automation_for(brief, partitioned=True),
        pools=pools,
        kinds=kinds,
    )
    project_assets += build_project_assets(
        brief.name,
        versions=versions,
        automation=automation_for(brief, partitioned=False),
        graph_assets=project_assets,
    )
    return project_assets


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's Definitions (loaded by `dagster dev -w workspace.yaml`)."""
    return build_definitions()

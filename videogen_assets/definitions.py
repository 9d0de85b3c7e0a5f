"""Assemble the studio's Definitions: one asset group per project, sensors and resources."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from videogen_assets.conditions import OlderThanInputs, OutOfDate
from videogen_assets.executors import build_executor
from videogen_assets.observed import build_observed_assets
from videogen_assets.progress import build_progress_checks, build_progress_sensor
from videogen_assets.project_assets import build_project_assets
from videogen_assets.run_workers import WatchedStudioResource
from videogen_assets.sensors import build_script_watcher
from videogen_assets.sentence_assets import SENTENCE_SPECS
from videogen_assets.specs import ProjectSetup, SentenceAssetSpec, build_sentence_assets
from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_domain.project import ProjectBrief, load_brief
from videogen_resources.errors import ServiceError
from videogen_resources.settings import BackendSettings, build_resources


def made_when_first_seen() -> dg.AutomationCondition:
    """A missing asset on its condition's first evaluation: a project created before the daemon
    started, or while it runs (its automation sensor is new), is made without waiting for an
    edit. Dagster's ``since_last_handled`` counts the first evaluation as handled, so
    ``newly_missing`` alone never fires for what is already missing then."""
    a: Any = dg.AutomationCondition
    return (a.initial_evaluation() & a.missing()).with_label("missing_when_first_seen")


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

    The triggers are events; the last term asks for the state: a partition is requested only
    when it is missing or stale now (or joins an input requested with it). An input change
    seen while the asset's own run was still in progress therefore never requests it a second
    time once that run has made it from that input (`conditions.OutOfDate`).
    """
    a: Any = dg.AutomationCondition  # the builders' generic types defeat mypy's operator checks
    trigger = (
        a.newly_missing()
        | a.any_deps_match(a.data_version_changed() | a.will_be_requested()).with_label(
            "any_dep_data_version_changed_or_requested"
        )
        | a.code_version_changed()
    ).since_last_handled() | made_when_first_seen()
    return (
        a.in_latest_time_window()
        & trigger
        & ~a.any_deps_match(a.missing() & ~a.will_be_requested()).with_label("any_deps_missing")
        & ~a.any_deps_in_progress()
        & ~a.in_progress()
        & (OutOfDate() | a.any_deps_match(a.will_be_requested())).with_label(
            "out_of_date_or_joins_a_requested_input"
        )
    ).with_label("regenerate")


def refresh_condition() -> dg.AutomationCondition:
    """Rebuild a project output once no input is missing or in progress after an input was
    updated (Dagster's ``eager()``), and only while it is missing or older than an input's
    latest materialization (`conditions.OlderThanInputs`): an output built in the same run as
    the clip it follows is not built again. An output that reads another output (the export
    reads the rough cut and the subtitles) waits while that one is out of date, unless both
    are requested together (then one run builds them in order)."""
    a: Any = dg.AutomationCondition
    return (
        (a.eager() | (made_when_first_seen() & ~a.any_deps_missing() & ~a.any_deps_in_progress()))
        & OlderThanInputs()
        & ~a.any_deps_match(OlderThanInputs() & ~a.will_be_requested()).with_label(
            "an_output_it_reads_is_out_of_date"
        )
    ).with_label("refresh")


def automation_for(brief: ProjectBrief, *, partitioned: bool) -> dg.AutomationCondition | None:
    """How a project's assets regenerate by themselves, or None with `automation: false`.

    Per-sentence assets use `regenerate_condition` (an edited sentence's chain in one run, an
    unchanged data version stops the cascade). Project-level outputs use `refresh_condition`
    (``eager()``): they run once no input is missing or in progress, after any input was
    updated. (A data-version rule over all of a partitioned input's sentences did not fire for
    them under Dagster 1.13.)
    """
    if not brief.automation:
        return None
    return regenerate_condition() if partitioned else refresh_condition()


def automation_sensor_name(project: str) -> str:
    """The name of the sensor that runs a project's declarative automation."""
    return f"automation_{project}"


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
    the reason (the group ``invalid_project`` lists them; valid projects load as usual)."""
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
    root: str | Path | None = None,
    settings: BackendSettings | None = None,
    sentence_specs: Sequence[SentenceAssetSpec] = SENTENCE_SPECS,
) -> dg.Definitions:
    """The Definitions of a studio root (default: $VIDEOGEN_HOME or ./studio);
    ``sentence_specs``: the per-sentence assets of each project."""
    root_path = paths.studio_root(root)
    settings = settings or BackendSettings.from_env()
    briefs, invalid = discover_all_projects(root_path)
    for err in invalid.values():
        print(f"videogen: project skipped: {_one_line(err)}", file=sys.stderr)  # noqa: T201
    resources = build_resources(settings, root_path, briefs, studio_type=WatchedStudioResource)

    assets: list[dg.AssetsDefinition | dg.SourceAsset] = []
    checks: list[dg.AssetChecksDefinition] = []
    automated: set[str] = set()
    loaded: list[ProjectBrief] = []
    for brief in briefs:
        try:
            project_assets = _project_assets(brief, resources, settings, sentence_specs)
        except Exception as exc:  # one project's failure (a missing workflow...) hides no other
            detail = (
                str(exc)
                if isinstance(exc, InputError | ServiceError)
                else (f"{type(exc).__name__}: {exc}")
            )
            reason = f"{brief.name}: its assets cannot be built ({detail})"
            invalid[brief.name] = reason
            print(f"videogen: project skipped: {_one_line(reason)}", file=sys.stderr)  # noqa: T201
            continue
        loaded.append(brief)
        if brief.automation:
            automated.add(brief.name)
        assets += project_assets
        checks += build_progress_checks(brief.name, project_assets)
    briefs = loaded
    specs = [invalid_project_asset(n, r) for n, r in sorted(invalid.items())]
    sensors: list[dg.SensorDefinition] = [build_script_watcher([b.name for b in briefs], automated)]
    sensors.append(build_progress_sensor([b.name for b in briefs]))
    sensors += automation_sensors(sorted(automated))
    return dg.Definitions(
        assets=[*assets, *specs],
        asset_checks=checks,
        sensors=sensors,
        resources=resources,
        executor=build_executor(),
    )


def _project_assets(
    brief: ProjectBrief,
    resources: dict[str, Any],
    settings: BackendSettings,
    specs: Sequence[SentenceAssetSpec] = SENTENCE_SPECS,
) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """The asset graph of one project.

    Each kind's engine is the project's own (mixed backends): the pool, the kinds shown in the
    UI and the code version follow it (each spec reads them from the project's setup), so
    switching one kind's engine marks exactly that kind stale.
    """
    setup = ProjectSetup(brief=brief, resources=resources, settings=settings)
    per_sentence = build_sentence_assets(
        brief.name, specs, setup, automation=automation_for(brief, partitioned=True)
    )
    versions = {
        a.key.path[-1]: version
        for a in per_sentence
        for version in [a.code_versions_by_key.get(a.key)]
        if version is not None
    }
    project_assets: list[dg.AssetsDefinition | dg.SourceAsset] = []
    project_assets += build_observed_assets(brief.name)
    project_assets += per_sentence
    project_assets += build_project_assets(
        brief.name,
        versions=versions,
        automation=automation_for(brief, partitioned=False),
        graph_assets=project_assets,
    )
    return project_assets


def automation_sensors(projects: list[str]) -> list[dg.AutomationConditionSensorDefinition]:
    """One automation sensor per project with automation (`automation_<project>`): its on/off
    switch in the UI's Automation page and from the CLI (`dagster sensor stop ...`), kept in the
    instance. Evaluated in the code location's process every 3 s, as Dagster requires for the
    studio's own state checks in the conditions (`conditions.py`); Dagster allows such a sensor
    at most 500 assets and checks, and one project has a few dozen."""
    return [
        dg.AutomationConditionSensorDefinition(
            automation_sensor_name(project),
            target=dg.AssetSelection.groups(project),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=3,
            use_user_code_server=True,
            description=f"Regenerates {project}'s missing and stale sentences and outputs.",
        )
        for project in projects
    ]


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's Definitions (`dg dev`, `dg launch`; see [tool.dg] in pyproject)."""
    return build_definitions()

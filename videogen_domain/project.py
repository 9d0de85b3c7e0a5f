"""The project brief (``project.yaml``): what a creator asked for."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from videogen_domain import paths
from videogen_domain.atomic import atomic_write_text
from videogen_domain.errors import InputError
from videogen_domain.names import WORKFLOW_NAME_RE, normalize_name
from videogen_domain.styles import list_styles
from videogen_domain.yamlio import load_yaml_model

DEFAULT_IMAGE_WORKFLOW = "flux-2-v1"
DEFAULT_VIDEO_WORKFLOW = "wan-2.2-v1"


def known_styles() -> list[str]:
    """The visual style presets shipped as data files."""
    return list_styles()


VOICE_MAX = 120
MINUTES_MAX = 60.0


def validation_message(err: Mapping[str, Any]) -> str:
    """The message of one pydantic error, without pydantic's "Value error, " prefix."""
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


class WorkflowCatalog(Protocol):
    """The registered workflows a studio renders with: name -> kind ("image" or "video").

    ``studio`` None: the shipped registry and $VIDEOGEN_WORKFLOWS. Raises when the registry
    cannot be read."""

    def __call__(self, studio: Path | None, /) -> Mapping[str, str]: ...


_CATALOG: WorkflowCatalog | None = None

_STUDIO: ContextVar[Path | None] = ContextVar("videogen_brief_studio", default=None)
"""The studio whose workflow registry (shipped + ``<studio>/workflows/`` + $VIDEOGEN_WORKFLOWS)
a brief's workflow names are checked against; None: the shipped one and $VIDEOGEN_WORKFLOWS."""


def use_workflow_catalog(catalog: WorkflowCatalog | None) -> None:
    """Check the workflow names of briefs against ``catalog`` (the resources layer installs
    the workflow registry); None: only the form of a name is checked."""
    global _CATALOG
    _CATALOG = catalog


@contextlib.contextmanager
def studio_registry(studio: Path | None) -> Iterator[None]:
    """Check the workflow names of briefs validated inside against ``studio``'s registry (the
    overlay the studio renders with), not only the shipped one."""
    token = _STUDIO.set(studio)
    try:
        yield
    finally:
        _STUDIO.reset(token)


def _registered_workflows(kind: str) -> tuple[list[str], dict[str, str]] | None:
    """The names of ``kind`` in the registry of the studio being read (see `studio_registry`)
    and every registered name's kind, or None when no catalog is installed or the registry
    cannot be read (then the render that needs a workflow says why)."""
    if _CATALOG is None:
        return None
    try:
        kinds = dict(_CATALOG(_STUDIO.get()))
    except Exception:
        return None
    return sorted(n for n, k in kinds.items() if k == kind), kinds


def _character_name(name: str) -> str:
    clean = normalize_name(name)
    if "/" in clean or "\\" in clean or ".." in clean or "|" in clean or "," in clean or not clean:
        raise ValueError(f"invalid character name {name!r}")
    return clean


CharacterName = Annotated[str, AfterValidator(_character_name)]
"""A cast member's name, checked one by one so an error names its item and line."""


class ProjectBrief(BaseModel):
    """The brief of one project, as stored in ``project.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Project name: lowercase letters, digits, '_'.")
    title: str = Field(min_length=1, max_length=200)
    topic: str = Field(default="", max_length=2000)
    minutes: float = Field(
        default=3.0, gt=0, le=60, allow_inf_nan=False, description="Target length in minutes."
    )
    style: str = Field(default="documentary", description="Visual style preset.")
    voice: str | None = Field(
        default=None, description="Narration voice (engine default if unset)."
    )
    cast: list[CharacterName] = Field(
        default_factory=list, description="Characters from the library."
    )
    image_workflow: str = DEFAULT_IMAGE_WORKFLOW
    video_workflow: str = DEFAULT_VIDEO_WORKFLOW
    keyframes: Literal["comfyui", "cards"] | None = Field(
        default=None,
        description="Keyframe engine: comfyui (image_workflow) or cards; unset = the studio's "
        "default (comfyui when COMFYUI_URL is set). VIDEOGEN_KEYFRAMES overrides it for a run.",
    )
    clips: Literal["comfyui", "kenburns"] | None = Field(
        default=None,
        description="Clip engine: comfyui (video_workflow) or kenburns; unset = the studio's "
        "default (comfyui when COMFYUI_URL is set). VIDEOGEN_CLIPS overrides it for a run.",
    )
    fps: int = Field(default=30, description="Frames per second of clips and the rough cut.")
    loudness_target: float = Field(
        default=-16.0, ge=-30.0, le=-9.0, allow_inf_nan=False, description="LUFS."
    )
    start_timecode: str = Field(
        default="00:00:00:00",
        pattern=r"^[0-9]{2}:[0-5][0-9]:[0-5][0-9]:[0-9]{2}$",
        description="Timecode of the exported timelines' first frame (broadcast: 01:00:00:00).",
    )
    automation: bool = Field(default=True, description="Regenerate stale/missing assets by itself.")
    grounding: bool = Field(default=False, description="Give the LLM the sources (FR-105).")
    sources: list[str] = Field(default_factory=list, description="URLs or files for grounding.")
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not paths.PROJECT_NAME_RE.fullmatch(v) or ".." in v or "/" in v:
            raise ValueError(
                f"invalid project name {v!r}: use lowercase letters, digits or '_' "
                "(no '/', '..' or spaces)"
            )
        return v

    @field_validator("minutes", mode="before")
    @classmethod
    def _minutes(cls, v: object) -> object:
        # nan and inf are no length (pydantic's reason for nan, 'not finite', puzzles).
        try:
            value = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return v  # not a number: pydantic says so
        if not math.isfinite(value):
            raise ValueError(
                f"{v!r} is not a number of minutes; give the target length in minutes, more "
                f"than 0 and at most {MINUTES_MAX:g}"
            )
        return v

    @field_validator("voice")
    @classmethod
    def _voice(cls, v: str | None) -> str | None:
        if v is None:
            return None
        clean = v.strip()
        if len(clean) > VOICE_MAX or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in clean):
            shown = clean if len(clean) <= 40 else clean[:40] + "..."
            raise ValueError(
                f"invalid voice {shown!r} ({len(clean)} characters): at most {VOICE_MAX} "
                "characters, no control characters; see `videogen voices`"
            )
        return clean or None

    @field_validator("style")
    @classmethod
    def _style(cls, v: str) -> str:
        styles = known_styles()
        if v not in styles:
            raise ValueError(f"unknown style {v!r}; known styles: {', '.join(styles)}")
        return v

    @field_validator("image_workflow", "video_workflow")
    @classmethod
    def _workflow(cls, v: str, info: ValidationInfo) -> str:
        kind = "image" if info.field_name == "image_workflow" else "video"
        if not WORKFLOW_NAME_RE.fullmatch(v):
            raise ValueError(
                f"invalid workflow name {v!r}: use letters, digits, '.', '_' or '-' "
                "(a name from workflows.yaml, not a path)"
            )
        registered = _registered_workflows(kind)
        if registered is None:
            return v
        known, kinds = registered
        if v in kinds and kinds[v] != kind:
            raise ValueError(
                f"{v!r} is an {kinds[v]} workflow, not a {kind} workflow; {kind} workflows: "
                f"{', '.join(known)}"
            )
        if v not in known:
            raise ValueError(
                f"unknown {kind} workflow {v!r}; known {kind} workflows: {', '.join(known)}"
            )
        return v

    @field_validator("fps")
    @classmethod
    def _fps(cls, v: int) -> int:
        if v not in (24, 25, 30):
            raise ValueError("fps must be 24, 25 or 30")
        return v

    @field_validator("start_timecode", mode="before")
    @classmethod
    def _start_timecode_from_yaml(cls, v: object) -> object:
        # YAML 1.1 reads an unquoted 1:00:00:00 as a base-60 number: give the timecode back
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            parts = []
            for _ in range(4):
                v, digit = divmod(v, 60)
                parts.append(f"{digit:02d}")
            return ":".join(reversed(parts)) if v == 0 else str(v)
        return v

    @field_validator("start_timecode")
    @classmethod
    def _start_timecode(cls, v: str, info: ValidationInfo) -> str:
        fps = info.data.get("fps", 30)
        if int(v.rsplit(":", 1)[1]) >= fps:
            raise ValueError(
                f"frames {v.rsplit(':', 1)[1]} must be below the fps ({fps}); use e.g. 01:00:00:00"
            )
        return v


def brief_path(project_dir: Path) -> Path:
    """The brief file of a project folder."""
    return project_dir / paths.PROJECT_FILE


def load_brief(project_dir: Path) -> ProjectBrief:
    """Read and validate ``project.yaml``; errors name the file, line and field."""
    path = brief_path(project_dir)
    # A project folder is <studio>/projects/<name>: its workflows are the studio's overlay.
    # (A folder outside a studio: the shipped registry and $VIDEOGEN_WORKFLOWS.)
    parent = project_dir.parent
    studio = parent.parent if paths.projects_dir(parent.parent) == parent else None
    with studio_registry(studio):
        brief = load_yaml_model(path, ProjectBrief)
    if brief.name != project_dir.name:
        raise InputError(
            f"name {brief.name!r} does not match the project folder {project_dir.name!r}",
            file=path,
            field="name",
        )
    return brief


def save_brief(project_dir: Path, brief: ProjectBrief) -> Path:
    """Write ``project.yaml`` atomically."""
    text = yaml.safe_dump(brief.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return atomic_write_text(brief_path(project_dir), text)

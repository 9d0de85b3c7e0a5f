"""Which engine makes each kind of asset, per project: mixed backends.

Keyframes are made by ``comfyui`` (an image workflow) or ``cards`` (the embedded title cards);
clips by ``comfyui`` (a video workflow) or ``kenburns`` (the embedded Ken Burns move). The
choice of one project, strongest first:

1. the run's: ``VIDEOGEN_KEYFRAMES`` / ``VIDEOGEN_CLIPS`` (or ``videogen render --keyframes ...
   --clips ...``), for every project the code location serves;
2. the project's: ``keyframes:`` / ``clips:`` in ``project.yaml``;
3. the studio's default: ComfyUI when ``COMFYUI_URL`` is set, else the embedded engine.

`KeyframeEngines` and `ClipEngines` are the ``keyframes`` / ``clips`` resources: they hold every
engine and the choice of each project (resolved when the Definitions are built, so the code
version of each project's keyframe and clip assets follows its engine: switching one kind's
engine marks exactly that kind stale). An asset asks for its project's maker with ``for_project``;
a plain maker passed as the resource (tests, benchmarks) serves every project.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Literal

from pydantic import Field

from videogen_resources.base import (
    ClipJob,
    ClipMakerResource,
    ClipResult,
    ImageResult,
    KeyframeJob,
    KeyframeMakerResource,
)
from videogen_resources.comfyui_makers import ComfyUIClips, ComfyUIKeyframes
from videogen_resources.embedded.cards import CardKeyframes
from videogen_resources.embedded.kenburns import KenBurnsClips
from videogen_resources.errors import ServiceError

KeyframeEngine = Literal["comfyui", "cards"]
ClipEngine = Literal["comfyui", "kenburns"]


def _check_comfyui(engine: str, urls: Sequence[str], kind: str, project: str) -> None:
    if engine == "comfyui" and not urls:
        other = "cards" if kind == "keyframes" else "kenburns"
        raise ServiceError(
            "comfyui",
            f"project {project!r} makes its {kind} with ComfyUI but COMFYUI_URL is not set; "
            f"set COMFYUI_URL, or choose `{kind}: {other}` in project.yaml "
            f"(or VIDEOGEN_{kind.upper()}={other} for a run)",
        )


class KeyframeEngines(KeyframeMakerResource):
    """Every keyframe engine, and the one each project uses."""

    cards: CardKeyframes
    comfyui: ComfyUIKeyframes
    default: KeyframeEngine = "cards"
    projects: dict[str, str] = Field(default_factory=dict)  # project -> engine (resolved)

    def engine_for(self, project: str) -> str:
        return self.projects.get(project, self.default)

    def maker(self, engine: str) -> KeyframeMakerResource:
        return self.comfyui if engine == "comfyui" else self.cards

    def for_project(self, project: str) -> KeyframeMakerResource:
        """The project's maker (an error naming the fix when its engine is not set up)."""
        engine = self.engine_for(project)
        _check_comfyui(engine, self.comfyui.comfyui.urls, "keyframes", project)
        return self.maker(engine)

    def version(self, workflow: str | None = None) -> str:
        return self.maker(self.default).version(workflow)

    def make_keyframe(self, job: KeyframeJob) -> ImageResult:
        return self.maker(self.default).make_keyframe(job)

    def make_keyframes(self, jobs: Iterable[KeyframeJob]) -> Generator[ImageResult, None, None]:
        return self.maker(self.default).make_keyframes(jobs)


class ClipEngines(ClipMakerResource):
    """Every clip engine, and the one each project uses."""

    kenburns: KenBurnsClips
    comfyui: ComfyUIClips
    default: ClipEngine = "kenburns"
    projects: dict[str, str] = Field(default_factory=dict)  # project -> engine (resolved)

    def engine_for(self, project: str) -> str:
        return self.projects.get(project, self.default)

    def maker(self, engine: str) -> ClipMakerResource:
        return self.comfyui if engine == "comfyui" else self.kenburns

    def for_project(self, project: str) -> ClipMakerResource:
        """The project's maker (an error naming the fix when its engine is not set up)."""
        engine = self.engine_for(project)
        _check_comfyui(engine, self.comfyui.comfyui.urls, "clips", project)
        return self.maker(engine)

    def version(self, workflow: str | None = None) -> str:
        return self.maker(self.default).version(workflow)

    def make_clip(self, job: ClipJob) -> ClipResult:
        return self.maker(self.default).make_clip(job)

    def make_clips(self, jobs: Iterable[ClipJob]) -> Generator[ClipResult, None, None]:
        return self.maker(self.default).make_clips(jobs)

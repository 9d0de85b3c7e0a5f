"""The abstract resources the asset graph depends on; each has an embedded and a remote maker.

Assets annotate these base types; `videogen_assets.definitions` binds an implementation chosen by
configuration (embedded defaults unless a service URL/key is configured). Every implementation
writes its output atomically to the ``out_path`` it is given and returns a pydantic result.
A maker may also offer ``make_keyframes(jobs)`` / ``make_clips(jobs)`` (jobs: `KeyframeJob` /
`ClipJob`, results yielded in order); the assets use them when present, so a GPU server's queue
never runs dry between the sentences of one step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic import BaseModel, Field

from videogen_domain.models import Shot

ProgressFn = Callable[[str], None]
"""Called with a human-readable progress line (goes to the Dagster log)."""


class CharacterRef(BaseModel):
    """A cast member as the makers see it."""

    name: str
    description: str = ""
    reference_image: Path | None = None  # a PNG inside the studio
    lora: str | None = None
    lora_strength: float = 1.0
    voice: str | None = None


class SpeechResult(BaseModel):
    """A narration WAV that was written."""

    path: Path
    duration_ms: int
    sample_rate: int
    num_samples: int
    voice: str
    engine: str
    loudness_lufs: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ImageResult(BaseModel):
    """A keyframe PNG that was written."""

    path: Path
    width: int
    height: int
    seed: int
    engine: str
    workflow_version: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # prompt id, server, progress...


class ClipResult(BaseModel):
    """A clip MP4 that was written."""

    path: Path
    duration_s: float
    num_frames: int
    fps: int
    engine: str
    workflow_version: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class KeyframeJob:
    """The keyword arguments of one ``make_keyframe`` call, for makers that take a batch."""

    shot: Shot
    sentence_text: str
    section_title: str
    style: str
    characters: Sequence[CharacterRef]
    out_path: Path
    progress: ProgressFn | None = None
    workflow: str | None = None
    cancel_check: Callable[[], bool] | None = None


@dataclass(frozen=True, kw_only=True)
class ClipJob:
    """The keyword arguments of one ``make_clip`` call, for makers that take a batch."""

    shot: Shot
    keyframe: Path
    narration: Path
    out_path: Path
    progress: ProgressFn | None = None
    workflow: str | None = None
    cancel_check: Callable[[], bool] | None = None


class NarratorResource(dg.ConfigurableResource, ABC):
    """Speaks one sentence into a WAV file."""

    @abstractmethod
    def speak(
        self,
        *,
        text: str,
        out_path: Path,
        voice: str | None = None,
        progress: ProgressFn | None = None,
    ) -> SpeechResult:
        """Synthesize ``text`` with ``voice`` (None = the configured default) into ``out_path``."""

    @abstractmethod
    def version(self) -> str:
        """A short string that changes whenever the engine/voice settings change (code_version)."""


class KeyframeMakerResource(dg.ConfigurableResource, ABC):
    """Makes the 1920x1080 keyframe image of one shot."""

    @abstractmethod
    def make_keyframe(
        self,
        *,
        shot: Shot,
        sentence_text: str,
        section_title: str,
        style: str,
        characters: Sequence[CharacterRef],
        out_path: Path,
        progress: ProgressFn | None = None,
        workflow: str | None = None,
    ) -> ImageResult:
        """Render or generate the keyframe into ``out_path`` (PNG, 1920x1080)."""

    @abstractmethod
    def version(self, workflow: str | None = None) -> str:
        """Changes when the renderer or the workflow file changes (code_version of keyframe).

        ``workflow`` is the project's workflow name (project.yaml ``image_workflow``); makers
        that use no workflow ignore it.
        """


class ClipMakerResource(dg.ConfigurableResource, ABC):
    """Makes the video clip of one shot, exactly as long as its narration."""

    @abstractmethod
    def make_clip(
        self,
        *,
        shot: Shot,
        keyframe: Path,
        narration: Path,
        out_path: Path,
        progress: ProgressFn | None = None,
        workflow: str | None = None,
    ) -> ClipResult:
        """Write an MP4 (H.264, yuv420p, 1920x1080, narration muxed as AAC 48 kHz)."""

    @abstractmethod
    def version(self, workflow: str | None = None) -> str:
        """Changes when the clip engine or workflow file changes (code_version of clip).

        ``workflow`` is the project's ``video_workflow``; makers without workflows ignore it.
        """


M = TypeVar("M", KeyframeMakerResource, ClipMakerResource)


def maker_for(resource: M, project: str) -> M:
    """The maker that serves ``project``: its engine's when ``resource`` holds one per project
    (`videogen_resources.engines`), else ``resource`` itself."""
    pick = getattr(resource, "for_project", None)
    return pick(project) if callable(pick) else resource

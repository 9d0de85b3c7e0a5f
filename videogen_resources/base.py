"""The abstract resources the asset graph depends on; each has an embedded and a remote maker.

Assets annotate these base types; `videogen_assets.definitions` binds an implementation chosen by
configuration (embedded defaults unless a service URL/key is configured). Every implementation
writes its output atomically to the ``out_path`` it is given and returns a pydantic result.
Each method takes one job model (`SpeechJob`, `KeyframeJob`, `ClipJob`: the one place the
arguments are declared). The assets call the batch forms ``make_keyframes(jobs)`` /
``make_clips(jobs)`` (results yielded in order); their defaults loop over the single-item
method, and a GPU server's maker overrides them so its queue never runs dry between the
sentences of one step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
class SpeechJob:
    """One sentence to speak: the only place a narrator's arguments are declared."""

    text: str
    out_path: Path
    voice: str | None = None  # None: the narrator's configured voice
    progress: ProgressFn | None = None


@dataclass(frozen=True, kw_only=True)
class KeyframeJob:
    """One keyframe to make: the only place a keyframe maker's arguments are declared."""

    shot: Shot
    sentence_text: str
    section_title: str
    style: str
    characters: Sequence[CharacterRef]
    out_path: Path
    progress: ProgressFn | None = None
    workflow: str | None = None  # the project's ``image_workflow``; ignored without workflows
    cancel_check: Callable[[], bool] | None = None  # True: the run is being cancelled


@dataclass(frozen=True, kw_only=True)
class ClipJob:
    """One clip to make: the only place a clip maker's arguments are declared."""

    shot: Shot
    keyframe: Path
    narration: Path
    out_path: Path
    progress: ProgressFn | None = None
    workflow: str | None = None  # the project's ``video_workflow``; ignored without workflows
    cancel_check: Callable[[], bool] | None = None  # True: the run is being cancelled


class NarratorResource(dg.ConfigurableResource, ABC):
    """Speaks one sentence into a WAV file."""

    @abstractmethod
    def speak(self, job: SpeechJob) -> SpeechResult:
        """Synthesize ``job.text`` with ``job.voice`` (None = the configured default) into
        ``job.out_path``."""

    @abstractmethod
    def version(self) -> str:
        """A short string that changes whenever the engine/voice settings change (code_version)."""


class KeyframeMakerResource(dg.ConfigurableResource, ABC):
    """Makes the 1920x1080 keyframe images of shots."""

    @abstractmethod
    def make_keyframe(self, job: KeyframeJob) -> ImageResult:
        """Render or generate the keyframe into ``job.out_path`` (PNG, 1920x1080)."""

    def make_keyframes(self, jobs: Iterable[KeyframeJob]) -> Generator[ImageResult, None, None]:
        """One result per job, in order, as each is made. This default makes them one by one;
        a maker with a queue (a GPU server) overrides it to keep the queue fed."""
        for job in jobs:
            yield self.make_keyframe(job)

    @abstractmethod
    def version(self, workflow: str | None = None) -> str:
        """Changes when the renderer or the workflow file changes (code_version of keyframe).

        ``workflow`` is the project's workflow name (project.yaml ``image_workflow``); makers
        that use no workflow ignore it.
        """

    def for_project(self, project: str) -> KeyframeMakerResource:
        """The maker that serves ``project``: this one, unless the resource holds one engine
        per project (`videogen_resources.engines`)."""
        return self


class ClipMakerResource(dg.ConfigurableResource, ABC):
    """Makes the video clips of shots, each exactly as long as its narration."""

    @abstractmethod
    def make_clip(self, job: ClipJob) -> ClipResult:
        """Write an MP4 (H.264, yuv420p, 1920x1080, narration muxed as AAC 48 kHz)."""

    def make_clips(self, jobs: Iterable[ClipJob]) -> Generator[ClipResult, None, None]:
        """One result per job, in order, as each is made. This default makes them one by one;
        a maker with a queue (a GPU server) overrides it to keep the queue fed."""
        for job in jobs:
            yield self.make_clip(job)

    @abstractmethod
    def version(self, workflow: str | None = None) -> str:
        """Changes when the clip engine or workflow file changes (code_version of clip).

        ``workflow`` is the project's ``video_workflow``; makers without workflows ignore it.
        """

    def for_project(self, project: str) -> ClipMakerResource:
        """The maker that serves ``project``: this one, unless the resource holds one engine
        per project (`videogen_resources.engines`)."""
        return self

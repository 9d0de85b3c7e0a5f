"""The studio's shared value types: what a sentence, its directives and its shot are."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

CameraMovement = Literal[
    "static",
    "pan-left",
    "pan-right",
    "tilt-up",
    "tilt-down",
    "zoom-in",
    "zoom-out",
    "dolly",
    "orbit",
]
CAMERA_MOVEMENTS: tuple[str, ...] = get_args(CameraMovement)


class Directives(BaseModel):
    """Per-sentence overrides a creator types in script.md; ``None`` means "not given"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_prompt: str | None = None
    video_prompt: str | None = None
    camera: CameraMovement | None = None
    motion: float | None = Field(default=None, ge=0.0, le=1.0)
    characters: tuple[str, ...] = ()
    speaker: str | None = None  # a cast character whose voice narrates this line


class Shot(BaseModel):
    """What the camera sees for one sentence: prompts, movement and who is in frame."""

    model_config = ConfigDict(frozen=True)

    image_prompt: str
    video_prompt: str
    negative_prompt: str = ""
    camera_movement: CameraMovement = "static"
    motion_strength: float = Field(default=0.5, ge=0.0, le=1.0)
    characters: tuple[str, ...] = ()
    key_phrase: str = ""  # the words the embedded renderer puts on the card
    seed: int = 0
    source: Literal["rules", "llm", "directive"] = "rules"
    # What the image maker also gets for the characters in frame (LoRAs, reference images):
    # part of the shot so that editing a character regenerates exactly the shots it is in.
    cast_fingerprint: str = ""


AssetStatus = Literal["missing", "stale", "running", "done", "failed"]


class ProjectItem(BaseModel):
    """One sentence of a project as the storyboard, subtitles and export see it."""

    index: int  # 1-based position in the video
    sentence_id: str  # the Dagster partition key, e.g. "volcanoes.s0007"
    section: str
    section_slug: str
    text: str
    narration: str | None = None  # absolute paths of the studio's files, when made
    keyframe: str | None = None
    clip: str | None = None
    narration_ms: int | None = None
    clip_frames: int | None = None  # frame-exact clip length
    shot: Shot | None = None
    workflow_versions: dict[str, str] = Field(default_factory=dict)  # asset kind -> version
    updated_at: str | None = None  # ISO 8601
    status: dict[str, AssetStatus] = Field(default_factory=dict)  # asset kind -> status


class ProjectView(BaseModel):
    """A whole project at one moment: its brief and its sentences in order."""

    name: str
    title: str
    topic: str
    style: str
    fps: int = 30
    width: int = 1920
    height: int = 1080
    start_timecode: str = "00:00:00:00"  # of the exported timelines' first frame
    items: list[ProjectItem] = Field(default_factory=list)

"""Writing with the model: the script and shot drafts it answers, its prompts, and script.md."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from videogen_domain.models import CAMERA_MOVEMENTS, CameraMovement, Shot
from videogen_resources.llm.messages import ChatMessage, LLMUsage
from videogen_resources.llm.sources import Source

if TYPE_CHECKING:
    from videogen_resources.llm.client import LLMResource

log = logging.getLogger(__name__)

WORDS_PER_MINUTE = 150  # spoken narration pace the word budget is computed from
SERVER_TOOLS = ("deepseek_web_search", "deepseek_read_url")


class CastMember(BaseModel):
    """A character the script may put on screen."""

    name: str
    description: str = ""


def _normalize_camera(value: Any) -> Any:
    if not isinstance(value, str):
        return "static" if value is None else value
    key = re.sub(r"[\s_]+", "-", value.strip().lower())
    aliases = {
        "none": "static",
        "still": "static",
        "zoom": "zoom-in",
        "pan": "pan-right",
        "tilt": "tilt-up",
        "dolly-in": "dolly",
        "dolly-out": "dolly",
        "push-in": "zoom-in",
    }
    key = aliases.get(key, key)
    return key if key in CAMERA_MOVEMENTS else "static"


def _clamp_motion(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.5
    if number != number:  # NaN
        return 0.5
    return min(1.0, max(0.0, number))


class _Visuals(BaseModel):
    """The visual fields a sentence and a shot share, leniently read from model output."""

    image_prompt: str = ""
    video_prompt: str = ""
    camera: CameraMovement = "static"
    motion: float = Field(default=0.5, ge=0.0, le=1.0)
    characters: list[str] = Field(default_factory=list)

    @field_validator("camera", mode="before")
    @classmethod
    def _camera(cls, value: Any) -> Any:
        return _normalize_camera(value)

    @field_validator("motion", mode="before")
    @classmethod
    def _motion(cls, value: Any) -> float:
        return _clamp_motion(value)

    @field_validator("characters", mode="before")
    @classmethod
    def _characters(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class SentenceDraft(_Visuals):
    """One narrated sentence with its visuals."""

    text: str = Field(min_length=1)


class SectionDraft(BaseModel):
    """A titled section of the script."""

    title: str
    sentences: list[SentenceDraft] = Field(min_length=1)


class ScriptDraft(BaseModel):
    """A whole script as written by the model, plus what was used to write it."""

    title: str
    sections: list[SectionDraft] = Field(min_length=1)
    sources: list[str] = Field(default_factory=list)  # refs/URLs of the sources used
    model: str = ""
    usage: LLMUsage = Field(default_factory=LLMUsage)

    @property
    def word_count(self) -> int:
        return sum(len(s.text.split()) for sec in self.sections for s in sec.sentences)


class ScriptBrief(BaseModel):
    """What the script is to be about."""

    title: str
    topic: str
    minutes: float = Field(gt=0, le=180)
    style: str = "documentary"
    cast: list[CastMember] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    grounding: bool = False  # let the server search the web / read URLs (DeepSeek tools)

    @property
    def target_words(self) -> int:
        return max(20, round(self.minutes * WORDS_PER_MINUTE))


class ShotRequest(BaseModel):
    """A sentence whose shot is wanted."""

    id: str
    text: str
    section: str = ""


class ShotDraft(_Visuals):
    """The model's shot for one sentence."""

    key_phrase: str = ""

    def to_shot(self, *, seed: int = 0, negative_prompt: str = "") -> Shot:
        return Shot(
            image_prompt=self.image_prompt,
            video_prompt=self.video_prompt,
            negative_prompt=negative_prompt,
            camera_movement=self.camera,
            motion_strength=self.motion,
            characters=tuple(self.characters),
            key_phrase=self.key_phrase,
            seed=seed,
            source="llm",
        )


class _ShotReplyItem(ShotDraft):
    model_config = ConfigDict(extra="ignore")
    id: str


class _ShotsReply(BaseModel):
    shots: list[_ShotReplyItem]


# --------------------------------------------------------------------------------------------
# script.md
# --------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _directive_value(text: str) -> str:
    return _one_line(text).replace("|", "/")


def render_script_markdown(draft: ScriptDraft) -> str:
    """Render ``draft`` in the studio's script.md format.

    ``# Title``, then per section a ``## Section`` heading followed by one sentence per line,
    each optionally followed by ``> key: value`` directive lines; a blank line between sections.
    """
    lines = [f"# {_one_line(draft.title)}", ""]
    for i, section in enumerate(draft.sections):
        if i:
            lines.append("")
        lines.append(f"## {_one_line(section.title)}")
        for sentence in section.sentences:
            text = _one_line(sentence.text).lstrip("#> ").strip()
            if not text:
                continue
            lines.append(text)
            if sentence.image_prompt.strip():
                lines.append(f"> image: {_directive_value(sentence.image_prompt)}")
            if sentence.video_prompt.strip():
                lines.append(f"> video: {_directive_value(sentence.video_prompt)}")
            lines.append(f"> camera: {sentence.camera} | motion: {round(sentence.motion, 2):g}")
            names = [_directive_value(n).replace(",", " ") for n in sentence.characters]
            names = [n for n in names if n]
            if names:
                lines.append(f"> characters: {', '.join(names)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------

_SCRIPT_EXAMPLE = {
    "title": "How Volcanoes Work",
    "sections": [
        {
            "title": "Fire Beneath Our Feet",
            "sentences": [
                {
                    "text": "Deep under the crust, rock melts into glowing magma.",
                    "image_prompt": "cross-section of the earth, glowing orange magma chamber "
                    "beneath a snowy volcano, dramatic lighting",
                    "video_prompt": "magma slowly churns and rises through cracks in the rock",
                    "camera": "zoom-in",
                    "motion": 0.6,
                    "characters": [],
                }
            ],
        }
    ],
}

_SHOTS_EXAMPLE = {
    "shots": [
        {
            "id": "s0001",
            "image_prompt": "wide shot of a snow-capped volcano at dawn, plume of ash, "
            "cinematic documentary photo",
            "video_prompt": "ash plume drifts slowly to the right, clouds move",
            "camera": "pan-right",
            "motion": 0.4,
            "characters": [],
            "key_phrase": "a sleeping giant",
        }
    ]
}

_CAMERA_RULE = "camera is one of: " + ", ".join(CAMERA_MOVEMENTS) + "; motion is 0.0 to 1.0"


def _script_messages(brief: ScriptBrief, source_budget_chars: int) -> list[ChatMessage]:
    words = brief.target_words
    sections = max(1, min(8, round(brief.minutes * 1.2)))
    system = (
        "You are a scriptwriter for narrated explainer videos. You write spoken narration: "
        "short, concrete sentences of 8 to 25 words, one idea each, easy to say aloud, no lists, "
        "no stage directions, no markdown. For every sentence you also describe the picture: "
        "image_prompt is a detailed prompt for a single still keyframe in the requested visual "
        "style; video_prompt says what moves in that picture over a few seconds; "
        f"{_CAMERA_RULE}; characters lists only names from the cast who are on screen. "
        "Reply with one json object and nothing else, shaped exactly like this example:\n"
        + json.dumps(_SCRIPT_EXAMPLE, ensure_ascii=False)
    )
    request = {
        "title": brief.title,
        "topic": brief.topic,
        "minutes": brief.minutes,
        "target_words": words,
        "sections": sections,
        "style": brief.style,
        "cast": [c.model_dump() for c in brief.cast],
    }
    user = [
        f"Write the narration script for a {brief.minutes:g}-minute video as json.",
        f"Aim for about {words} spoken words in total ({WORDS_PER_MINUTE} words per minute), "
        f"in about {sections} sections.",
        "Brief (json): " + json.dumps(request, ensure_ascii=False),
    ]
    if brief.sources:
        user.append(
            "Use these sources for facts; do not state facts that contradict them. "
            "Do not mention the sources in the narration."
        )
        budget = max(1000, source_budget_chars)
        per_source = max(500, budget // len(brief.sources))
        for n, src in enumerate(brief.sources, 1):
            text = src.text[:per_source]
            user.append(f"[Source {n}] {src.title or src.ref} ({src.ref})\n{text}")
    if brief.grounding:
        user.append("Check current facts on the web where it helps accuracy.")
    return [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content="\n\n".join(user)),
    ]


def _shots_messages(
    batch: Sequence[ShotRequest], style_prompt_prefix: str, cast: Sequence[CastMember]
) -> list[ChatMessage]:
    system = (
        "You are the director of photography of a narrated video. For each narrated sentence "
        "you design one shot: image_prompt is a detailed prompt for the still keyframe (start it "
        "with the style prefix given), video_prompt says what moves over a few seconds, "
        f"{_CAMERA_RULE}, characters lists only cast names visible in the shot, key_phrase is "
        "2 to 6 words from the sentence worth showing on screen. Keep a consistent look across "
        "shots of the same section. Reply with one json object and nothing else, with one entry "
        "in shots for every id given, shaped exactly like this example:\n"
        + json.dumps(_SHOTS_EXAMPLE, ensure_ascii=False)
    )
    payload = [s.model_dump() for s in batch]
    user = "\n\n".join(
        [
            f"Design shots for these {len(batch)} sentences and reply in json.",
            "Style prefix: " + (style_prompt_prefix or "(none)"),
            "Cast (json): " + json.dumps([c.model_dump() for c in cast], ensure_ascii=False),
            "Sentences (json): " + json.dumps(payload, ensure_ascii=False),
        ]
    )
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]


def write_script(llm: LLMResource, brief: ScriptBrief) -> ScriptDraft:
    """Write a whole script for ``brief`` (~150 spoken words per minute)."""
    messages = _script_messages(brief, llm.source_budget_chars)
    tools = SERVER_TOOLS if brief.grounding else ()
    draft, usage, citations = llm.chat_json_cited(messages, schema=ScriptDraft, server_tools=tools)
    names = {c.name.lower(): c.name for c in brief.cast}
    sections = []
    for section in draft.sections:
        sentences = [
            s.model_copy(
                update={
                    "characters": [names[c.lower()] for c in s.characters if c.lower() in names]
                }
            )
            for s in section.sentences
        ]
        sections.append(section.model_copy(update={"sentences": sentences}))
    used = [s.ref for s in brief.sources] + citations
    return draft.model_copy(
        update={
            "sections": sections,
            "sources": list(dict.fromkeys(used)),
            "model": llm.model,
            "usage": usage,
        }
    )


def write_shots(
    llm: LLMResource,
    sentences: Sequence[ShotRequest | Mapping[str, str]],
    *,
    style_prompt_prefix: str = "",
    cast: Sequence[CastMember | Mapping[str, str]] = (),
) -> dict[str, ShotDraft]:
    """Shots for many sentences, ``shots_batch_size`` per request; keyed by sentence id.

    Ids the model leaves out are asked for once more; ids still missing are absent from the
    result (the caller falls back to rule-based shots for them).
    """
    reqs = [s if isinstance(s, ShotRequest) else ShotRequest.model_validate(s) for s in sentences]
    members = [c if isinstance(c, CastMember) else CastMember.model_validate(c) for c in cast]
    names = {c.name.lower(): c.name for c in members}
    size = max(1, llm.shots_batch_size)
    result: dict[str, ShotDraft] = {}
    for start in range(0, len(reqs), size):
        batch = reqs[start : start + size]
        for attempt in range(2):
            wanted = [r for r in batch if r.id not in result]
            if not wanted:
                break
            reply, _ = llm.chat_json(
                _shots_messages(wanted, style_prompt_prefix, members), schema=_ShotsReply
            )
            ids = {r.id for r in wanted}
            for item in reply.shots:
                if item.id in ids and item.id not in result:
                    chars = [names[c.lower()] for c in item.characters if c.lower() in names]
                    data = item.model_dump(exclude={"id"})
                    data["characters"] = chars
                    result[item.id] = ShotDraft.model_validate(data)
            missing = [r.id for r in wanted if r.id not in result]
            if missing and attempt == 0:
                log.warning("llm: %d shot(s) missing from the reply; asking again", len(missing))
        missing = [r.id for r in batch if r.id not in result]
        if missing:
            log.warning("llm: no shot for %s; rule-based shots will be used", missing)
    return result

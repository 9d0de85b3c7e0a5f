"""Rule-based shot writing: prompts, camera and motion from the sentence and the style preset.

Used when no LLM is configured; script directives override whatever the rules (or the LLM) chose.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from videogen_domain.models import Directives, Shot

_STOP = {
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "is",
    "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "as",
    "by", "from", "we", "you", "they", "he", "she", "i", "our", "your", "their", "so", "then",
    "than", "into", "can", "will", "just", "very", "there", "here", "what", "which", "who",
}  # fmt: skip

_CAMERA_WORDS = {
    "static": "a still, steady frame",
    "pan-left": "the camera pans slowly to the left",
    "pan-right": "the camera pans slowly to the right",
    "tilt-up": "the camera tilts up",
    "tilt-down": "the camera tilts down",
    "zoom-in": "the camera slowly zooms in",
    "zoom-out": "the camera slowly zooms out",
    "dolly": "a smooth dolly move forward",
    "orbit": "the camera orbits the subject",
}


def stable_seed(sentence_id: str) -> int:
    """A seed that belongs to the sentence (kept through edits of its text)."""
    return int.from_bytes(hashlib.sha256(sentence_id.encode()).digest()[:4], "big")


def key_phrase(text: str, max_chars: int = 90) -> str:
    """The words a title card shows: the sentence itself, or its first clause when long."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    for sep in (";", ":", " — ", " - ", ","):
        head = text.split(sep)[0].strip()
        if 12 <= len(head) <= max_chars:
            return head + "…"
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut + "…"


def subject_of(text: str, max_words: int = 12) -> str:
    """The content words of a sentence, in order, for an image prompt."""
    words = re.findall(r"[\w'’-]+", text)
    content = [w for w in words if w.lower() not in _STOP]
    return " ".join(content[:max_words]) or text


def rule_based_shot(
    *,
    sentence_id: str,
    text: str,
    section: str,
    index: int,
    prompt_prefix: str,
    prompt_suffix: str,
    negative_prompt: str,
    default_camera: list[str],
    default_motion: float,
    directives: Directives,
    cast: Mapping[str, str] | None = None,
) -> Shot:
    """Write the shot of one sentence from simple rules, then apply the creator's directives."""
    characters = tuple(directives.characters)
    who = ""
    if characters and cast:
        who = "; ".join(f"{n}: {cast[n]}" for n in characters if cast.get(n))
    subject = subject_of(text)
    image_prompt = ", ".join(
        p for p in (prompt_prefix, subject, who, f"scene from '{section}'", prompt_suffix) if p
    )
    camera = directives.camera or (
        default_camera[index % len(default_camera)] if default_camera else "static"
    )
    motion = directives.motion if directives.motion is not None else default_motion
    video_prompt = f"{_CAMERA_WORDS.get(camera, camera)}, {subject}"
    source = "rules"
    if directives.image_prompt:
        image_prompt = ", ".join(p for p in (prompt_prefix, directives.image_prompt, who) if p)
        source = "directive"
    if directives.video_prompt:
        video_prompt = directives.video_prompt
        source = "directive"
    return Shot(
        image_prompt=image_prompt,
        video_prompt=video_prompt,
        negative_prompt=negative_prompt,
        camera_movement=camera,  # type: ignore[arg-type]
        motion_strength=motion,
        characters=characters,
        key_phrase=key_phrase(text),
        seed=stable_seed(sentence_id),
        source=source,  # type: ignore[arg-type]
    )

"""What every asset needs to know about its project and its sentences."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from videogen_domain.models import Shot
from videogen_resources.base import CharacterRef
from videogen_resources.studio import StudioResource
from videogen_store.database import SentenceInfo, StudioDatabase

SENTENCE = "sentence"
DIRECTION = "direction"
NARRATION = "narration"
SHOT = "shot"
KEYFRAME = "keyframe"
CLIP = "clip"
ROUGH_CUT = "rough_cut"
SUBTITLES = "subtitles"
STORYBOARD = "storyboard"
EXPORT = "export"
SCRIPT = "script"

PER_PROJECT = (ROUGH_CUT, SUBTITLES, STORYBOARD, EXPORT)


def key(project: str, name: str) -> dg.AssetKey:
    """The asset key of ``name`` in ``project`` (e.g. ``volcanoes/narration``)."""
    return dg.AssetKey([project, name])


def file_digest(path: Path) -> str:
    """A short content hash of a file: the data version of a media asset."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_sentence(db: StudioDatabase, sentence_id: str) -> SentenceInfo:
    """The sentence behind a partition key; a clear failure if it was deleted meanwhile."""
    info = db.sentence_info(sentence_id)
    if info is None:
        raise dg.Failure(
            f"sentence {sentence_id} is not in the script any more (deleted or not synced)"
        )
    return info


def cast_of(db: StudioDatabase, studio: StudioResource, project: str) -> dict[str, CharacterRef]:
    """The project's cast (plus library characters named in the script), by name."""
    out: dict[str, CharacterRef] = {}
    for c in db.cast(project):
        ref = None
        if c.reference_images:
            ref = studio.root_path / c.reference_images[0]
        out[c.name] = CharacterRef(
            name=c.name,
            description=c.description,
            reference_image=ref,
            lora=c.style_lora,
            lora_strength=c.lora_strength,
            voice=c.voice,
        )
    return out


def read_shot(path: Path) -> Shot:
    """Read a shot.json written by the shot asset."""
    return Shot.model_validate_json(path.read_text(encoding="utf-8"))


def sentence_order(db: StudioDatabase, project: str) -> list[SentenceInfo]:
    """All sentences of a project in script order."""
    return db.sentence_infos(project)

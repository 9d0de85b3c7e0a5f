"""What every asset needs to know about its project and its sentences."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from videogen_domain.models import Directives, Shot
from videogen_resources.base import CharacterRef
from videogen_resources.studio import StudioResource
from videogen_store.database import Character, ProjectCast, Section, Sentence, StudioDatabase

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


@dataclass(frozen=True)
class SentenceInfo:
    """One sentence row, detached from the database session."""

    id: str
    project: str
    order: int
    line: int
    text: str
    section: str
    directives: Directives


def load_sentence(db: StudioDatabase, sentence_id: str) -> SentenceInfo:
    """The sentence behind a partition key; a clear failure if it was deleted meanwhile."""
    with db.session() as s:
        row = s.get(Sentence, sentence_id)
        if row is None:
            raise dg.Failure(
                f"sentence {sentence_id} is not in the script any more (deleted or not synced)"
            )
        section = s.get(Section, row.section_id)
        return SentenceInfo(
            id=row.id,
            project=row.project_id,
            order=row.order,
            line=row.line,
            text=row.text,
            section=section.title if section else "",
            directives=Directives(
                image_prompt=row.image_prompt,
                video_prompt=row.video_prompt,
                camera=row.camera_movement,  # type: ignore[arg-type]
                motion=row.motion_strength,
                characters=tuple(row.characters or ()),
                speaker=row.speaker,
            ),
        )


def cast_of(db: StudioDatabase, studio: StudioResource, project: str) -> dict[str, CharacterRef]:
    """The project's cast (plus library characters named in the script), by name."""
    from sqlalchemy import select

    with db.session() as s:
        rows = s.execute(
            select(Character).join(ProjectCast).where(ProjectCast.project_id == project)
        ).scalars()
        out: dict[str, CharacterRef] = {}
        for c in rows:
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
    with db.session() as s:
        from sqlalchemy import select

        rows = s.scalars(
            select(Sentence).where(Sentence.project_id == project).order_by(Sentence.order)
        ).all()
        sections = {
            sec.id: sec.title
            for sec in s.scalars(select(Section).where(Section.project_id == project))
        }
        return [
            SentenceInfo(
                id=r.id,
                project=r.project_id,
                order=r.order,
                line=r.line,
                text=r.text,
                section=sections.get(r.section_id, ""),
                directives=Directives(
                    image_prompt=r.image_prompt,
                    video_prompt=r.video_prompt,
                    camera=r.camera_movement,  # type: ignore[arg-type]
                    motion=r.motion_strength,
                    characters=tuple(r.characters or ()),
                    speaker=r.speaker,
                ),
            )
            for r in rows
        ]

"""Sync a project's ``script.md`` into the studio database, keeping sentence ids stable."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videogen_domain import paths
from videogen_domain.align import align
from videogen_domain.project import ProjectBrief, load_brief
from videogen_domain.script import (
    ParsedScript,
    read_script,
    read_script_bytes,
    resolve_character_names,
)
from videogen_store.database import (
    Character,
    ScriptUpdate,
    StoredScript,
    StudioDatabase,
)


@dataclass
class SentenceVersions:
    """The data versions of one sentence's observed assets."""

    sentence: str
    direction: str


@dataclass
class SyncResult:
    """What a sync changed."""

    project: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    text_changed: list[str] = field(default_factory=list)
    direction_changed: list[str] = field(default_factory=list)
    reordered: bool = False
    unchanged_file: bool = False  # script.md identical to the last sync: nothing was read
    order: list[str] = field(default_factory=list)
    versions: dict[str, SentenceVersions] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether anything downstream may need to react."""
        return bool(
            self.added
            or self.removed
            or self.text_changed
            or self.direction_changed
            or self.reordered
        )


def sentence_key(project: str, number: int) -> str:
    """The partition key of a project's n-th sentence ever made, e.g. ``volcanoes.s0007``."""
    return f"{project}.s{number:04d}"


def section_id(project: str, index: int, title: str) -> str:
    """A section's id: stable for the same title at the same position."""
    return f"{project}:{index:03d}:{paths.slugify(title, max_len=60) or 'section'}"


def _character_fingerprints(
    characters: Sequence[Character],
) -> tuple[dict[str, str], dict[str, str]]:
    """Per character (lower-case name): a hash of what a shot uses (description, LoRA,
    reference images) and of what narration uses (voice)."""
    looks: dict[str, str] = {}
    voices: dict[str, str] = {}
    for c in characters:
        looks[c.name.lower()] = hashlib.sha256(
            json.dumps(
                [c.description, c.style_lora, c.lora_strength, list(c.reference_images or [])],
                sort_keys=True,
            ).encode()
        ).hexdigest()[:12]
        voices[c.name.lower()] = c.voice or ""
    return looks, voices


def _with_cast(version: str, names: list[str], prints: dict[str, str]) -> str:
    """Fold the fingerprints of the named characters into a data version (unchanged if none)."""
    parts = [prints.get(n.lower(), "") for n in names]
    if not any(parts):
        return version
    return hashlib.sha256("|".join([version, *parts]).encode()).hexdigest()[:16]


def directive_tag(
    image_prompt: str | None,
    video_prompt: str | None,
    camera: str | None,
    motion: float | None,
    characters: Sequence[str] | None,
    speaker: str | None,
) -> str:
    """What, besides its text, tells a sentence apart from an identical one: its directives
    (``""`` when it has none). Alignment uses it so repeated lines keep their ids."""
    parts = [image_prompt, video_prompt, camera, motion, list(characters or []), speaker]
    if not any(parts):
        return ""
    return json.dumps(parts, sort_keys=True, default=str)


def ensure_project_row(db: StudioDatabase, brief: ProjectBrief) -> None:
    """Create or update the project's row from its brief."""
    db.upsert_project(brief)


def sync_project(
    db: StudioDatabase,
    project_dir: Path,
    *,
    parsed: ParsedScript | None = None,
    force: bool = False,
    split_cache: Path | None = None,
) -> SyncResult:
    """Read ``script.md`` and mirror it into the database.

    Nothing is written when the script is invalid (the parse happens before any change) or when
    the file's bytes are the ones last synced (unless ``force``). ``split_cache``: the file
    keeping the script's sentence splits between processes (`read_script`).
    """
    brief = load_brief(project_dir)
    name = brief.name
    script_path = project_dir / paths.SCRIPT_FILE
    result = SyncResult(project=name)
    raw = read_script_bytes(script_path) if os.path.lexists(script_path) else None
    sha = hashlib.sha256(raw).hexdigest() if raw is not None else None
    state = db.script_state(name)
    if (raw is None and parsed is None) or (
        not force and parsed is None and sha == state.script_sha256
    ):
        result.unchanged_file = raw is not None
        result.order = [r[0] for r in state.versions]
        result.versions = {r[0]: SentenceVersions(r[1], r[2]) for r in state.versions}
        if not state.has_project:
            ensure_project_row(db, brief)
        return result
    # Parse before touching anything: a bad script changes nothing.
    script = (
        parsed if parsed is not None else read_script(script_path, raw, split_cache=split_cache)
    )
    script = resolve_character_names(script, db.character_names(), file=script_path)
    ensure_project_row(db, brief)

    def plan(stored: StoredScript) -> ScriptUpdate:
        old_rows = stored.sentences
        looks, voices = _character_fingerprints(stored.characters)
        matched = align(
            [(r.id, r.text) for r in old_rows],
            [p.text for p in script.sentences],
            old_tags=[
                directive_tag(
                    r.image_prompt,
                    r.video_prompt,
                    r.camera_movement,
                    r.motion_strength,
                    r.characters,
                    r.speaker,
                )
                for r in old_rows
            ],
            new_tags=[
                directive_tag(
                    p.directives.image_prompt,
                    p.directives.video_prompt,
                    p.directives.camera,
                    p.directives.motion,
                    p.directives.characters,
                    p.directives.speaker,
                )
                for p in script.sentences
            ],
        )
        by_id = {r.id: r for r in old_rows}
        sec_ids = [section_id(name, i, t) for i, t in enumerate(script.sections)]
        sentences: list[tuple[str, dict[str, Any]]] = []
        keep: set[str] = set()
        next_number = stored.next_sentence_number
        old_order = [r.id for r in old_rows]
        for order, (parsed_sentence, old_id) in enumerate(
            zip(script.sentences, matched, strict=True)
        ):
            d = parsed_sentence.directives
            fields: dict[str, Any] = {
                "section_id": sec_ids[parsed_sentence.section_index],
                "text": parsed_sentence.text,
                "order": order,
                "line": parsed_sentence.line,
                "image_prompt": d.image_prompt,
                "video_prompt": d.video_prompt,
                "camera_movement": d.camera,
                "motion_strength": d.motion,
                "characters": list(d.characters),
                "speaker": d.speaker,
                "sentence_version": _with_cast(
                    parsed_sentence.sentence_version,
                    [d.speaker] if d.speaker else [],
                    voices,
                ),
                "direction_version": _with_cast(
                    parsed_sentence.direction_version, list(d.characters), looks
                ),
            }
            if old_id is None:
                sid = sentence_key(name, next_number)
                next_number += 1
                result.added.append(sid)
            else:
                sid = old_id
                row = by_id[sid]
                if row.sentence_version != fields["sentence_version"]:
                    result.text_changed.append(sid)
                if row.direction_version != fields["direction_version"]:
                    result.direction_changed.append(sid)
            sentences.append((sid, fields))
            keep.add(sid)
            result.order.append(sid)
            result.versions[sid] = SentenceVersions(
                str(fields["sentence_version"]), str(fields["direction_version"])
            )
        result.removed = [r.id for r in old_rows if r.id not in keep]
        old_ids = set(old_order)  # (built once: no n² scans)
        result.reordered = [i for i in result.order if i in old_ids] != [
            i for i in old_order if i in keep
        ]
        return ScriptUpdate(
            sections=list(zip(sec_ids, script.sections, strict=True)),
            sentences=sentences,
            next_sentence_number=next_number,
            script_sha256=sha,
        )

    db.replace_script(name, plan)
    return result

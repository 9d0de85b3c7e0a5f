"""The character library (FR-201..204): recurring people with descriptions, references and LoRAs.

Characters live in the studio database (``characters`` table); their reference images live in
the studio under ``characters/<sha256-prefix>.png``. Every operation validates its whole input
before it writes anything: a bad name, image, LoRA, strength or voice raises an
:class:`~videogen_domain.errors.InputError` naming the field (and the file, for images) and
leaves the database and the studio folder as they were.

Casting a character in a project updates both the ``project_cast`` table and the ``cast`` list
of the project's ``project.yaml``; either both change or neither does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy.exc import IntegrityError

from videogen_domain import paths
from videogen_domain.atomic import atomic_write_bytes
from videogen_domain.errors import InputError
from videogen_domain.names import normalize_name, skeleton
from videogen_domain.project import ProjectBrief, brief_path, load_brief, save_brief
from videogen_domain.safeio import read_limited
from videogen_store.database import Character, StudioDatabase

CHARACTERS_DIR = "characters"
"""The studio folder holding the normalized reference images."""

IMAGE_HASH_CHARS = 16
"""How many hex digits of the PNG's SHA-256 name a reference image."""

NAME_MAX = 120
DESCRIPTION_MAX = 4000
LORA_MAX = 200
VOICE_MAX = 120
IMAGE_MAX_BYTES = 100 * 1024 * 1024
REFERENCE_MAX_SIDE = 2048
"""Reference images are stored at most this many pixels on their longer side: the workflows
scale references to about one megapixel, so more is only disk and upload time."""
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
LORA_STRENGTH_MIN = 0.0
LORA_STRENGTH_MAX = 2.0

# "," and "|" separate names and directives in script.md (`> characters: Ada, Bob | ...`).
_NAME_FORBIDDEN = ("/", "\\", ",", "|")


@dataclass(frozen=True)
class CharacterInfo:
    """A character of the library as the commands show it."""

    name: str
    description: str
    images: tuple[str, ...]  # studio-relative paths, e.g. "characters/0123abcd.png"
    lora: str | None
    lora_strength: float
    voice: str | None
    projects: tuple[str, ...]  # the projects that cast this character

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["images"] = list(self.images)
        data["projects"] = list(self.projects)
        return data


@dataclass(frozen=True)
class _Image:
    source: Path
    png: bytes

    @property
    def relpath(self) -> str:
        digest = hashlib.sha256(self.png).hexdigest()[:IMAGE_HASH_CHARS]
        return f"{CHARACTERS_DIR}/{digest}.png"


# ---------------------------------------------------------------------------------------------
# Validation (pure: nothing here touches the studio)


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text)


def check_character_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` stripped, or raise InputError unless it is a safe character name."""
    if not isinstance(name, str):
        raise InputError(f"a character name must be text, got {name!r}", field=field)
    clean = normalize_name(name)
    if not clean:
        raise InputError("a character name cannot be empty", field=field)
    if len(clean) > NAME_MAX:
        raise InputError(
            f"a character name has at most {NAME_MAX} characters, got {len(clean)}", field=field
        )
    if _has_control(clean):
        raise InputError(f"invalid character name {clean!r}: control characters", field=field)
    if ".." in clean or any(ch in clean for ch in _NAME_FORBIDDEN):
        raise InputError(
            f"invalid character name {clean!r}: no '/', '\\', '..', ',' or '|'; "
            "use a plain name such as 'Ada'",
            field=field,
        )
    return clean


def check_lora(lora: str | None) -> str | None:
    """Return the LoRA file name (None or "" for none), refusing paths."""
    if lora is None:
        return None
    clean = lora.strip()
    if not clean:
        return None
    if (
        "/" in clean
        or "\\" in clean
        or ".." in clean
        or Path(clean).is_absolute()
        or (len(clean) > 1 and clean[1] == ":")  # a drive letter
    ):
        raise InputError(
            f"a LoRA is a file name in ComfyUI's loras folder (e.g. 'ada_v2.safetensors'), "
            f"not a path: {clean!r}",
            field="lora",
        )
    if _has_control(clean) or len(clean) > LORA_MAX:
        raise InputError(
            f"invalid LoRA name {clean!r} (at most {LORA_MAX} characters, no control characters)",
            field="lora",
        )
    return clean


def check_lora_strength(strength: float) -> float:
    """Return the LoRA strength as a float in 0..2, or raise InputError."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise InputError(
            f"LoRA strength must be a number, got {strength!r}", field="lora_strength"
        ) from None
    if math.isnan(value) or not LORA_STRENGTH_MIN <= value <= LORA_STRENGTH_MAX:
        raise InputError(
            f"LoRA strength must be from {LORA_STRENGTH_MIN:g} to {LORA_STRENGTH_MAX:g}, "
            f"got {strength!r}",
            field="lora_strength",
        )
    return value


def _check_description(description: str) -> str:
    if not isinstance(description, str):
        raise InputError("a description must be text", field="description")
    clean = description.strip()
    if len(clean) > DESCRIPTION_MAX:
        raise InputError(
            f"a description has at most {DESCRIPTION_MAX} characters, got {len(clean)}",
            field="description",
        )
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in clean):
        raise InputError("a description cannot hold control characters", field="description")
    return clean


def _check_voice(voice: str | None) -> str | None:
    if voice is None:
        return None
    clean = voice.strip()
    if not clean:
        return None
    if _has_control(clean) or len(clean) > VOICE_MAX:
        raise InputError(
            f"invalid voice {clean!r} (at most {VOICE_MAX} characters, no control characters)",
            field="voice",
        )
    return clean


def normalize_image(path: Path | str) -> bytes:
    """The PNG bytes of an image file in any format Pillow reads (first frame; alpha kept),
    scaled down to at most ``REFERENCE_MAX_SIDE`` pixels on its longer side."""
    if isinstance(path, str) and _URL.match(path.strip()):
        raise InputError(
            f"{path.strip()!r} is a URL; download the image and give the path of the file",
            field="images",
        )
    path = Path(path)
    data = read_limited(path, IMAGE_MAX_BYTES, field="images")
    if len(data) > IMAGE_MAX_BYTES:
        raise InputError(
            f"image is larger than {IMAGE_MAX_BYTES // (1024 * 1024)} MB; "
            "give a smaller image (references are stored at most "
            f"{REFERENCE_MAX_SIDE} pixels wide)",
            file=path,
            field="images",
        )
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.seek(0)
            opened.draft(None, (REFERENCE_MAX_SIDE, REFERENCE_MAX_SIDE))  # JPEG: decode small
            opened.load()
            im = ImageOps.exif_transpose(opened) or opened
            if max(im.size) > REFERENCE_MAX_SIDE:
                im = im.copy()
                im.thumbnail((REFERENCE_MAX_SIDE, REFERENCE_MAX_SIDE), Image.Resampling.LANCZOS)
            alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                im.mode == "P" and "transparency" in im.info
            )
            im = im.convert("RGBA" if alpha else "RGB")
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        why = "cannot identify image file" if isinstance(exc, Image.UnidentifiedImageError) else exc
        raise InputError(
            f"not a readable image ({why}); give a PNG, JPEG or WebP file",
            file=path,
            field="images",
        ) from None
    return buf.getvalue()


def _read_images(images: Iterable[Path | str]) -> list[_Image]:
    out: list[_Image] = []
    seen: set[str] = set()
    for item in images:
        img = _Image(Path(item), normalize_image(item))
        if img.relpath not in seen:
            seen.add(img.relpath)
            out.append(img)
    return out


# ---------------------------------------------------------------------------------------------
# Studio helpers


def _db(root: Path) -> StudioDatabase:
    return StudioDatabase.for_studio(root)


def _store_images(root: Path, images: Sequence[_Image]) -> list[Path]:
    """Write the images that are not in the studio yet; return the files written."""
    written: list[Path] = []
    try:
        for img in images:
            target = root / img.relpath
            if not target.exists():
                atomic_write_bytes(target, img.png)
                written.append(target)
    except BaseException:
        _unlink(written)
        raise
    return written


def _unlink(files: Iterable[Path]) -> None:
    for f in files:
        with contextlib.suppress(OSError):
            f.unlink()


def _collect_unused_images(root: Path, candidates: Iterable[str]) -> None:
    """Delete reference images no character uses any more."""
    candidates = set(candidates)
    if not candidates:
        return
    used = _db(root).reference_images_in_use()
    for rel in candidates - used:
        if rel.startswith(f"{CHARACTERS_DIR}/") and "/" not in rel[len(CHARACTERS_DIR) + 1 :]:
            _unlink([root / rel])


def _find(library: Sequence[Character], name: str) -> Character | None:
    key = normalize_name(name).casefold()
    for row in library:
        if normalize_name(row.name).casefold() == key:
            return row
    return None


def _refuse_lookalike(
    library: Sequence[Character], name: str, *, field: str, but: int | None = None
) -> None:
    """Refuse a name that only looks like an existing character's (``Аda`` with a Cyrillic А
    beside ``Ada``): scripts and the UI could not tell the two apart."""
    key = skeleton(name)
    for row in library:
        if row.id != but and skeleton(row.name) == key:
            raise InputError(
                f"{name!r} looks like the existing character {row.name!r} (look-alike letters); "
                "use a name that reads differently",
                field=field,
            )


def _require(library: Sequence[Character], name: str, *, field: str = "name") -> Character:
    row = _find(library, name)
    if row is None:
        known = ", ".join(sorted(r.name for r in library)) or "none yet"
        raise InputError(f"no character named {name!r} (library: {known})", field=field)
    return row


def _briefs(root: Path) -> dict[str, ProjectBrief]:
    """The readable briefs of the studio's projects, by project name."""
    folder = paths.projects_dir(root)
    out: dict[str, ProjectBrief] = {}
    if not folder.exists():
        return out
    for sub in sorted(folder.iterdir()):
        if (sub / paths.PROJECT_FILE).exists():
            with contextlib.suppress(InputError, ValueError):
                out[sub.name] = load_brief(sub)
    return out


def _projects_casting(
    root: Path,
    row: Character,
    links: dict[int, set[str]],
    briefs: dict[str, ProjectBrief] | None = None,
) -> list[str]:
    """The projects casting ``row``: in the project_cast table (``links``:
    `StudioDatabase.cast_projects`) or in a project.yaml cast list."""
    names = set(links.get(row.id, ()))
    key = row.name.casefold()
    for project, brief in (briefs if briefs is not None else _briefs(root)).items():
        if any(n.casefold() == key for n in brief.cast):
            names.add(project)
    return sorted(names)


def _info(row: Character, projects: Sequence[str]) -> CharacterInfo:
    return CharacterInfo(
        name=row.name,
        description=row.description,
        images=tuple(row.reference_images or ()),
        lora=row.style_lora,
        lora_strength=row.lora_strength,
        voice=row.voice,
        projects=tuple(projects),
    )


def _project_folder(root: Path, project: str) -> Path:
    try:
        folder = paths.project_dir(root, project)
    except InputError as exc:
        raise InputError(exc.message, field="project") from None
    if not (folder / paths.PROJECT_FILE).exists():
        known = ", ".join(_briefs(root)) or "none yet"
        raise InputError(f"no project named {project!r} (projects: {known})", field="project")
    return folder


# ---------------------------------------------------------------------------------------------
# Library operations


def add_character(
    root: Path,
    *,
    name: str,
    description: str = "",
    images: Sequence[Path | str] = (),
    lora: str | None = None,
    lora_strength: float = 1.0,
    voice: str | None = None,
) -> CharacterInfo:
    """Add a character to the library; names are unique regardless of case."""
    name = check_character_name(name)
    description = _check_description(description)
    lora = check_lora(lora)
    strength = check_lora_strength(lora_strength)
    voice = _check_voice(voice)
    refs = _read_images(images)
    written: list[Path] = []
    db = _db(root)
    try:
        library = db.characters()
        existing = _find(library, name)
        if existing is not None:
            raise InputError(f"a character named {existing.name!r} already exists", field="name")
        _refuse_lookalike(library, name, field="name")
        written = _store_images(root, refs)
        row = db.add_character(
            name=name,
            description=description,
            reference_images=[img.relpath for img in refs],
            style_lora=lora,
            lora_strength=strength,
            voice=voice,
        )
        info = _info(row, [])
    except IntegrityError:
        _unlink(written)
        raise InputError(f"a character named {name!r} already exists", field="name") from None
    except BaseException:
        _unlink(written)
        raise
    return info


def edit_character(
    root: Path,
    name: str,
    *,
    new_name: str | None = None,
    description: str | None = None,
    images: Sequence[Path | str] | None = None,
    add_images: Sequence[Path | str] = (),
    lora: str | None = None,
    lora_strength: float | None = None,
    voice: str | None = None,
) -> CharacterInfo:
    """Change a character. ``None`` leaves a field as it is; ``""`` clears ``lora``/``voice``.

    ``images`` replaces the reference images (``[]`` removes them all); ``add_images`` appends.
    Renaming is refused while a project casts the character (its scripts name it).
    """
    clean_name = check_character_name(new_name, field="new_name") if new_name is not None else None
    clean_desc = _check_description(description) if description is not None else None
    clean_lora = check_lora(lora) if lora is not None else None
    strength = check_lora_strength(lora_strength) if lora_strength is not None else None
    clean_voice = _check_voice(voice) if voice is not None else None
    replaced = _read_images(images) if images is not None else None
    added = _read_images(add_images)
    written: list[Path] = []
    dropped: list[str] = []
    try:
        db = _db(root)
        library = db.characters()
        row = _require(library, name)
        projects = _projects_casting(root, row, db.cast_projects())
        if clean_name is not None and clean_name != row.name:
            other = _find(library, clean_name)
            if other is not None and other.id != row.id:
                raise InputError(
                    f"a character named {other.name!r} already exists", field="new_name"
                )
            _refuse_lookalike(library, clean_name, field="new_name", but=row.id)
            if projects:
                raise InputError(
                    f"{row.name!r} is cast in {', '.join(projects)}; remove them from the "
                    "cast before renaming",
                    field="new_name",
                )
        old_images = list(row.reference_images or [])
        new_images = [img.relpath for img in replaced] if replaced is not None else old_images
        new_images = list(new_images)
        for img in added:
            if img.relpath not in new_images:
                new_images.append(img.relpath)
        written = _store_images(root, [*(replaced or []), *added])
        changes: dict[str, Any] = {"reference_images": new_images}
        if clean_name is not None:
            changes["name"] = clean_name
        if clean_desc is not None:
            changes["description"] = clean_desc
        if lora is not None:
            changes["style_lora"] = clean_lora
        if strength is not None:
            changes["lora_strength"] = strength
        if voice is not None:
            changes["voice"] = clean_voice
        row = db.update_character(row.id, **changes)
        dropped = [p for p in old_images if p not in new_images]
        info = _info(row, projects)
    except IntegrityError:
        _unlink(written)
        raise InputError(
            f"a character named {new_name!r} already exists", field="new_name"
        ) from None
    except BaseException:
        _unlink(written)
        raise
    _collect_unused_images(root, dropped)
    return info


def remove_character(root: Path, name: str) -> None:
    """Remove a character from the library; refused while a project casts them."""
    db = _db(root)
    row = _require(db.characters(), name)
    projects = _projects_casting(root, row, db.cast_projects())
    if projects:
        raise InputError(
            f"{row.name!r} is cast in {', '.join(projects)}; remove them from the cast first "
            f"(videogen cast remove PROJECT {row.name!r})",
            field="name",
        )
    images = list(row.reference_images or [])
    db.remove_character(row.id)
    _collect_unused_images(root, images)


def list_characters(root: Path) -> list[CharacterInfo]:
    """The library, sorted by name."""
    if not paths.database_path(root).exists():
        return []
    db = _db(root)
    rows = sorted(db.characters(), key=lambda r: r.name.casefold())
    links, briefs = db.cast_projects(), _briefs(root)
    return [_info(r, _projects_casting(root, r, links, briefs)) for r in rows]


def show_character(root: Path, name: str) -> CharacterInfo:
    """One character (name matched regardless of case)."""
    db = _db(root)
    row = _require(db.characters(), name)
    return _info(row, _projects_casting(root, row, db.cast_projects()))


# ---------------------------------------------------------------------------------------------
# Project cast


def _save_brief_cast(folder: Path, brief: ProjectBrief, cast: list[str]) -> bytes | None:
    """Write the new cast into project.yaml; return the old file bytes (None: unchanged)."""
    if cast == brief.cast:
        return None
    old = brief_path(folder).read_bytes()
    save_brief(folder, brief.model_copy(update={"cast": cast}))
    return old


def cast_add(root: Path, project: str, character: str) -> list[str]:
    """Cast a library character in a project; return the project's new cast list."""
    folder = _project_folder(root, project)
    brief = load_brief(folder)
    db = _db(root)
    row = _require(db.characters(), character, field="character")
    key = row.name.casefold()
    cast = [n for n in brief.cast if n.casefold() != key]
    if len(cast) < len(brief.cast):  # keep its place, with the library's spelling
        index = next(i for i, n in enumerate(brief.cast) if n.casefold() == key)
        cast.insert(index, row.name)
    else:
        cast.append(row.name)
    # Both or neither: the link is undone when project.yaml cannot be written.
    linked = db.link_cast(brief, row.id)
    try:
        _save_brief_cast(folder, brief, cast)
    except BaseException:
        if linked:
            db.unlink_cast(project, row.id)
        raise
    return cast


def cast_remove(root: Path, project: str, character: str) -> list[str]:
    """Take a character out of a project's cast; return the project's new cast list."""
    folder = _project_folder(root, project)
    brief = load_brief(folder)
    check_character_name(character, field="character")
    key = character.strip().casefold()
    db = _db(root)
    row = _find(db.characters(), character)
    linked = row is not None and project in db.cast_projects().get(row.id, set())
    if row is not None:
        key = row.name.casefold()
    cast = [n for n in brief.cast if n.casefold() != key]
    if not linked and len(cast) == len(brief.cast):
        current = ", ".join(brief.cast) or "nobody"
        raise InputError(
            f"{character!r} is not in the cast of {project!r} (cast: {current})",
            field="character",
        )
    # Both or neither: project.yaml is restored when the link cannot be removed.
    old_yaml = _save_brief_cast(folder, brief, cast)
    try:
        if row is not None:
            db.unlink_cast(project, row.id)
    except BaseException:
        if old_yaml is not None:
            atomic_write_bytes(brief_path(folder), old_yaml)
        raise
    return cast


def cast_list(root: Path, project: str) -> list[tuple[str, CharacterInfo | None]]:
    """A project's cast in project.yaml order (then any cast only in the database).

    Each name comes with its library entry, or None when the library has no such character.
    """
    folder = _project_folder(root, project)
    brief = load_brief(folder)
    names = list(brief.cast)
    out: list[tuple[str, CharacterInfo | None]] = []
    if not paths.database_path(root).exists():
        return [(n, None) for n in names]
    db = _db(root)
    keys = {n.casefold() for n in names}
    names += [c.name for c in db.cast(project) if c.name.casefold() not in keys]
    library, links, briefs = db.characters(), db.cast_projects(), _briefs(root)
    for n in names:
        row = _find(library, n)
        out.append((n, _info(row, _projects_casting(root, row, links, briefs)) if row else None))
    return out

"""Where things live in a studio: the studio root, project folders and their files."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from videogen_domain.errors import InputError

PROJECT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")
"""Project names are also Dagster group names and asset-key prefixes: lowercase, digits, '_'.
Always matched whole (``fullmatch``): ``$`` would also match before a final newline."""

PROJECT_FILE = "project.yaml"
SCRIPT_FILE = "script.md"
DATABASE_FILE = "studio.db"


def studio_root(explicit: str | Path | None = None) -> Path:
    """The studio root: ``explicit``, else ``$VIDEOGEN_HOME``, else ``./studio``."""
    if explicit is not None:
        return Path(explicit).resolve()
    env = os.environ.get("VIDEOGEN_HOME")
    return Path(env).resolve() if env else (Path.cwd() / "studio").resolve()


def projects_dir(root: Path) -> Path:
    """The folder holding one sub-folder per project."""
    return root / "projects"


def project_dir(root: Path, name: str) -> Path:
    """The folder of project ``name`` (validated, so it can never escape the studio)."""
    check_project_name(name)
    return projects_dir(root) / name


def list_projects(root: Path) -> list[str]:
    """The names of the projects under a studio root (folders holding a project.yaml)."""
    folder = projects_dir(root)
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / PROJECT_FILE).exists())


def database_path(root: Path) -> Path:
    """The studio database file (SQLite)."""
    return root / DATABASE_FILE


CACHE_DIR = ".cache"


def cache_dir(root: Path) -> Path:
    """The studio's cache: files the studio rebuilds when they are missing (safe to delete)."""
    return root / CACHE_DIR


def sentence_splits_path(root: Path, name: str) -> Path:
    """The cached sentence splits of project ``name``'s script.md (see videogen_domain.script)."""
    check_project_name(name)
    return cache_dir(root) / "sentence-splits" / f"{name}.json"


def slugify(text: str, *, sep: str = "_", max_len: int = 40) -> str:
    """A lowercase ASCII slug of ``text`` ("How Volcanoes Work!" -> "how_volcanoes_work")."""
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", sep, norm.lower()).strip(sep)
    slug = slug[:max_len].rstrip(sep)
    return slug


def project_name_from_title(title: str) -> str:
    """Derive a valid project name from a title."""
    slug = slugify(title)
    if not slug:
        slug = "project"
    if not slug[0].isalpha():
        slug = "p_" + slug
    return slug[:48].rstrip("_")


def check_project_name(
    name: str, *, file: str | Path | None = None, line: int | None = None
) -> str:
    """Raise InputError unless ``name`` is a safe project name."""
    if not isinstance(name, str) or not PROJECT_NAME_RE.fullmatch(name) or ".." in name:
        raise InputError(
            f"invalid project name {name!r}: use 1-48 lowercase letters, digits or '_', "
            "starting with a letter (no '/', '..' or spaces)",
            file=file,
            line=line,
            field="name",
        )
    return name


def safe_join(base: Path, *parts: str) -> Path:
    """Join ``parts`` under ``base`` and refuse any result outside ``base``."""
    base_resolved = base.resolve()
    candidate = base_resolved.joinpath(*parts).resolve()
    if candidate != base_resolved and base_resolved not in candidate.parents:
        raise InputError(f"path {'/'.join(parts)!r} escapes {base}")
    return candidate


def media_url(base_url: str, studio_root: Path, path: str | Path) -> str:
    """The URL at which the media server started on ``studio_root`` serves ``path``.

    ``path`` is absolute or relative to the studio root; it must lie inside the root.
    """
    root = Path(os.path.abspath(studio_root))
    target = Path(path)
    if not target.is_absolute():
        target = root / target
    rel = Path(os.path.relpath(os.path.abspath(target), root))
    if rel.parts and rel.parts[0] == "..":
        # The lexical path leaves the root; accept it only if the real one stays inside.
        real_root = root.resolve()
        real = Path(os.path.abspath(target)).resolve()
        if real_root not in real.parents:
            raise ValueError(f"{path} is outside the studio root {studio_root}")
        rel = real.relative_to(real_root)
    if rel == Path("."):
        raise ValueError(f"{path} is the studio root itself, not a file in it")
    return f"{base_url.rstrip('/')}/{'/'.join(quote(part) for part in rel.parts)}"

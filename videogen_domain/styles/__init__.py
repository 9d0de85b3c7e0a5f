"""Visual style presets: one YAML file per style in this folder, validated by `StylePreset`.

Adding a style is adding a ``<name>.yaml`` file here (or in a folder passed as ``extra_dirs``);
no code changes. The embedded card renderer reads palette, typography and layout; the rule-based
shot writer cycles through ``default_camera``; image makers use the prompt parts and the LoRA.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from videogen_domain.errors import InputError
from videogen_domain.models import CameraMovement

STYLES_DIR = Path(__file__).resolve().parent
"""The folder holding the built-in presets."""

FontFamily = Literal["sans", "serif", "mono", "condensed", "default"]
"""Font families the card renderer knows: DejaVu/Liberation families when the system has them;
``default`` is the font bundled with Pillow (always available)."""

FONT_FAMILIES: tuple[str, ...] = ("sans", "serif", "mono", "condensed", "default")

Layout = Literal["lower-third", "centered", "split", "bold-block"]
"""Card layouts the embedded renderer draws."""

LAYOUTS: tuple[str, ...] = ("lower-third", "centered", "split", "bold-block")

_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class LoraRef(BaseModel):
    """A LoRA an image model applies for this style."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    strength: float = Field(default=1.0, ge=-4.0, le=4.0)


class Palette(BaseModel):
    """Colours as ``#rrggbb``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    background: str
    background_alt: str
    text: str
    accent: str
    muted: str

    @field_validator("*")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        if not _HEX.fullmatch(value):
            raise ValueError(f"expected a colour like '#1a2b3c', got {value!r}")
        return value.lower()

    def rgb(self, role: str) -> tuple[int, int, int]:
        """The colour of ``role`` (``background``, ``text``...) as an RGB tuple."""
        value: str = getattr(self, role)
        return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


class Typography(BaseModel):
    """How the card's text is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    font: FontFamily = "sans"
    weight: Literal["regular", "bold"] = "bold"
    case: Literal["as-is", "upper", "lower", "title"] = "as-is"
    title_font: FontFamily | None = None  # the section title; None = same as ``font``
    max_size: int = Field(default=110, ge=12, le=400)  # largest key-phrase size, pixels
    min_size: int = Field(default=28, ge=8, le=200)  # never shrink below this
    line_spacing: float = Field(default=1.18, ge=0.8, le=2.5)
    align: Literal["left", "center"] = "left"

    def apply_case(self, text: str) -> str:
        """``text`` in this style's letter case."""
        if self.case == "upper":
            return text.upper()
        if self.case == "lower":
            return text.lower()
        if self.case == "title":
            return text.title()
        return text


class StylePreset(BaseModel):
    """One visual style: prompt parts for image models and the look of embedded cards."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    prompt_prefix: str = ""
    prompt_suffix: str = ""
    negative_prompt: str = ""
    lora: LoraRef | None = None
    palette: Palette
    typography: Typography = Typography()
    layout: Layout = "centered"
    decoration: Literal["none", "letterbox", "rule", "dots", "paper"] = "none"
    default_camera: list[CameraMovement] = Field(default=["static"], min_length=1)
    motion_strength: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("use lowercase letters, digits, '-' or '_'")
        return value

    def image_prompt(self, prompt: str) -> str:
        """``prompt`` wrapped in this style's prefix and suffix."""
        parts = [self.prompt_prefix.strip(), prompt.strip(), self.prompt_suffix.strip()]
        return ", ".join(p.strip(", ") for p in parts if p.strip(", "))

    def camera_for(self, index: int) -> CameraMovement:
        """The camera movement the rule-based shot writer uses for the ``index``-th shot."""
        return self.default_camera[index % len(self.default_camera)]


def _dirs(extra_dirs: Iterable[str | Path] | None) -> list[Path]:
    # Later folders win: a project's own folder may override a built-in preset.
    return [STYLES_DIR, *(Path(d) for d in (extra_dirs or ()))]


def _style_files(extra_dirs: Iterable[str | Path] | None) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in _dirs(extra_dirs):
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                files[path.stem] = path
    return files


def list_styles(extra_dirs: Iterable[str | Path] | None = None) -> list[str]:
    """The names of all known styles, sorted."""
    return sorted(_style_files(extra_dirs))


def parse_style(path: str | Path) -> StylePreset:
    """Read and validate one preset file; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"not valid YAML: {exc}", file=path, line=line) from exc
    except OSError as exc:
        raise InputError(f"cannot read the style file: {exc}", file=path) from exc
    if not isinstance(raw, dict):
        raise InputError("a style file must be a mapping of fields", file=path)
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise InputError(
            f"the name {raw['name']!r} differs from the file name {path.stem!r}",
            file=path,
            field="name",
        )
    try:
        return StylePreset.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InputError(first["msg"], file=path, field=field) from exc


def load_style(name: str, extra_dirs: Iterable[str | Path] | None = None) -> StylePreset:
    """The preset called ``name``; an unknown name raises an error listing the known ones."""
    files = _style_files(extra_dirs)
    path = files.get(name)
    if path is None:
        known = ", ".join(sorted(files)) or "(none)"
        raise InputError(f"unknown style {name!r}; known styles: {known}", field="style")
    return parse_style(path)


__all__ = [
    "FONT_FAMILIES",
    "LAYOUTS",
    "STYLES_DIR",
    "FontFamily",
    "Layout",
    "LoraRef",
    "Palette",
    "StylePreset",
    "Typography",
    "list_styles",
    "load_style",
    "parse_style",
]

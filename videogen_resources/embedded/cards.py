"""Styled title cards: the embedded keyframe maker, 1920x1080 PNGs drawn with Pillow.

Each visual style preset (``videogen_domain.styles``) gives the palette, typography and layout. The
card shows the shot's key phrase (or the sentence), the section title and the characters in the
shot (a circular cut-out of the reference image, or a name card). Text wraps and shrinks until it
fits its box, so it never overflows; characters the style's font lacks are drawn with a fallback
font (DejaVu or another system font when present, else the font bundled with Pillow, so it works
with no system fonts at all). The same inputs always give the same PNG bytes.

A character no installed font draws (an emoji or CJK text on a system without such fonts) would
show as an empty box: `CardKeyframes.make_keyframe` then warns once per card, naming the
sentence and the characters, and says which fonts to install (`FONT_HINT`); the card is still
made.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from videogen_domain.atomic import atomic_path
from videogen_domain.models import Shot
from videogen_domain.styles import STYLES_DIR, StylePreset, load_style
from videogen_resources.base import CharacterRef, ImageResult, KeyframeJob, KeyframeMakerResource

ENGINE = "cards"
_RENDER_VERSION = "3"  # bump when the drawing changes

AnyFont = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]

# Files for each (family, weight), best first; found in the usual system font folders.
_FAMILY_FILES: dict[tuple[str, str], tuple[str, ...]] = {
    ("sans", "regular"): ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"),
    ("sans", "bold"): ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf"),
    ("serif", "regular"): ("DejaVuSerif.ttf", "LiberationSerif-Regular.ttf", "Georgia.ttf"),
    ("serif", "bold"): ("DejaVuSerif-Bold.ttf", "LiberationSerif-Bold.ttf", "Georgia Bold.ttf"),
    ("mono", "regular"): ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf"),
    ("mono", "bold"): ("DejaVuSansMono-Bold.ttf", "LiberationMono-Bold.ttf"),
    ("condensed", "regular"): ("DejaVuSansCondensed.ttf", "LiberationSansNarrow-Regular.ttf"),
    ("condensed", "bold"): ("DejaVuSansCondensed-Bold.ttf", "LiberationSansNarrow-Bold.ttf"),
}
# Wide-coverage fonts tried, in order, for characters the style's font lacks.
_FALLBACK_PATTERNS: tuple[str, ...] = (
    r"^DejaVuSans\.ttf$",
    r"^NotoSans-Regular\.ttf$",
    r"^NotoSansCJK.*-Regular\.tt[cf]$",
    r"^NotoSansCJK.*\.tt[cf]$",
    r"^(DroidSansFallback.*|wqy-.*|SourceHanSans.*)\.tt[cf]$",
    r"^NotoSans(Arabic|Hebrew|Devanagari|Thai|Symbols2?)-Regular\.ttf$",
    r"^NotoEmoji-Regular\.ttf$",
    r"^Symbola.*\.ttf$",
    r"^FreeSans\.ttf$",
)

FONT_HINT = (
    "install fonts that cover them (Debian/Ubuntu: apt-get install fonts-noto-cjk fonts-symbola; "
    "any font file in ~/.fonts works), or write the text without them"
)


def _font_dirs() -> list[Path]:
    home = Path.home()
    dirs = [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        home / ".local/share/fonts",
        home / ".fonts",
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
        home / "Library/Fonts",
    ]
    windir = os.environ.get("WINDIR")
    if windir:
        dirs.append(Path(windir) / "Fonts")
    return dirs


@functools.cache
def system_fonts() -> dict[str, Path]:
    """Font files of this system by file name (first found wins; sorted, so deterministic)."""
    found: dict[str, Path] = {}
    for folder in _font_dirs():
        if not folder.is_dir():
            continue
        for root, dirnames, files in os.walk(folder):
            dirnames.sort()
            for name in sorted(files):
                if name.lower().endswith((".ttf", ".otf", ".ttc")):
                    found.setdefault(name, Path(root) / name)
    return found


@dataclass(frozen=True)
class FontChoice:
    """A font file (None = the font bundled with Pillow) and whether it is a bold face."""

    path: str | None
    bold: bool


def resolve_family(family: str, weight: str, *, use_system: bool = True) -> FontChoice:
    """The font for a style's ``family``/``weight``; Pillow's bundled font when none is found."""
    if use_system and family != "default":
        files = system_fonts()
        for name in _FAMILY_FILES.get((family, weight), ()):
            if name in files:
                return FontChoice(str(files[name]), weight == "bold")
    return FontChoice(None, False)


def fallback_choices(use_system: bool = True) -> list[FontChoice]:
    """Fonts tried, in order, for characters the main font lacks."""
    out: list[FontChoice] = []
    if use_system:
        names = sorted(system_fonts())
        for pattern in _FALLBACK_PATTERNS:
            rx = re.compile(pattern)
            for name in names:
                if rx.match(name):
                    choice = FontChoice(str(system_fonts()[name]), False)
                    if choice not in out:
                        out.append(choice)
    out.append(FontChoice(None, False))
    return out


@functools.lru_cache(maxsize=512)
def _load_font(path: str | None, size: int) -> AnyFont:
    if path is None:
        return ImageFont.load_default(size=size)
    try:
        return ImageFont.truetype(path, size=size)
    except OSError:
        return ImageFont.load_default(size=size)


_PROBE_SIZE = 32
_MISSING = "\U0010fffd"  # a private-use code point no font maps: renders as .notdef


@functools.lru_cache(maxsize=64)
def _notdef_signature(path: str | None) -> tuple[tuple[int, int, int, int], bytes]:
    font = _load_font(path, _PROBE_SIZE)
    mask = font.getmask(_MISSING)
    return (mask.getbbox() or (0, 0, 0, 0)), bytes(mask)


@functools.lru_cache(maxsize=65536)
def has_glyph(path: str | None, char: str) -> bool:
    """Whether the font at ``path`` draws ``char`` (rather than its missing-glyph box)."""
    if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Mn", "Me"):
        return True
    font = _load_font(path, _PROBE_SIZE)
    try:
        mask = font.getmask(char)
    except (OSError, ValueError, UnicodeEncodeError):
        return False
    signature = ((mask.getbbox() or (0, 0, 0, 0)), bytes(mask))
    return signature != _notdef_signature(path)


class FontStack:
    """A main font plus fallbacks at one size; splits text into runs each font can draw."""

    def __init__(self, main: FontChoice, fallbacks: Sequence[FontChoice], size: int) -> None:
        self.size = size
        self.choices = [main, *[f for f in fallbacks if f != main]]
        self.fonts = [_load_font(c.path, size) for c in self.choices]
        # Fake a bold weight with a thin stroke when the main face is not bold itself.
        self.main_bold = main.bold

    @property
    def main(self) -> AnyFont:
        return self.fonts[0]

    def font_index(self, char: str) -> int:
        for i, choice in enumerate(self.choices):
            if has_glyph(choice.path, char):
                return i
        return 0

    def runs(self, text: str) -> list[tuple[str, int]]:
        """``text`` split into (substring, font index) runs."""
        out: list[tuple[str, int]] = []
        for char in text:
            idx = self.font_index(char)
            if char.isspace() and out:
                idx = out[-1][1]
            if out and out[-1][1] == idx:
                out[-1] = (out[-1][0] + char, idx)
            else:
                out.append((char, idx))
        return out

    def width(self, text: str) -> float:
        return float(sum(self.fonts[i].getlength(run) for run, i in self.runs(text)))

    def line_height(self) -> int:
        font = self.main
        if isinstance(font, ImageFont.FreeTypeFont):
            ascent, descent = font.getmetrics()
            return int(ascent + descent)
        return int(self.size)

    def ascent(self) -> int:
        font = self.main
        if isinstance(font, ImageFont.FreeTypeFont):
            return int(font.getmetrics()[0])
        return int(self.size * 0.8)


_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3040-\u30ff"
_TOKEN = re.compile(rf"\s+|[{_CJK}]|[^\s{_CJK}]+")


def _is_rtl(text: str) -> bool:
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def wrap_text(text: str, stack: FontStack, max_width: float) -> list[str]:
    """Greedy word wrap by pixel width; CJK breaks between characters, long words anywhere."""
    lines: list[str] = []
    line = ""
    for token in _TOKEN.findall(text):
        if token.isspace():
            if line:
                line += " "
            continue
        candidate = line + token
        if stack.width(candidate) <= max_width:
            line = candidate
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = ""
        if stack.width(token) <= max_width:
            line = token
            continue
        for char in token:  # a word longer than the line: break it anywhere
            if line and stack.width(line + char) > max_width:
                lines.append(line)
                line = ""
            line += char
    if line.strip():
        lines.append(line.rstrip())
    return lines


@dataclass
class TextBlock:
    """Wrapped text at a size that fits its box."""

    stack: FontStack
    lines: list[str]
    line_step: int

    @property
    def height(self) -> int:
        if not self.lines:
            return 0
        return self.line_step * (len(self.lines) - 1) + self.stack.line_height()

    def width(self) -> float:
        return max((self.stack.width(line) for line in self.lines), default=0.0)


def _ellipsize(text: str, stack: FontStack, max_width: float) -> str:
    if stack.width(text) <= max_width:
        return text
    while text and stack.width(text + "…") > max_width:
        text = text[:-1]
    return (text.rstrip() + "…") if text else ""


def fit_text(
    text: str,
    main: FontChoice,
    fallbacks: Sequence[FontChoice],
    box: tuple[int, int],
    *,
    max_size: int,
    min_size: int,
    line_spacing: float = 1.2,
    max_lines: int | None = None,
) -> TextBlock:
    """The largest size (``min_size``..``max_size``) at which ``text`` fits ``box`` when wrapped.

    If it does not fit even at ``min_size`` the text is cut after the last line that fits and
    ends with an ellipsis: the block never exceeds the box.
    """
    box_w, box_h = box

    def attempt(size: int) -> tuple[bool, TextBlock]:
        stack = FontStack(main, fallbacks, size)
        lines = wrap_text(text, stack, box_w)
        block = TextBlock(stack, lines, max(1, round(stack.line_height() * line_spacing)))
        ok = block.height <= box_h and block.width() <= box_w
        if max_lines is not None and len(lines) > max_lines:
            ok = False
        return ok, block

    lo, hi = min_size, max(min_size, max_size)
    ok, best = attempt(lo)
    if ok:
        while lo < hi:  # binary search for the largest size that fits
            mid = (lo + hi + 1) // 2
            fits, block = attempt(mid)
            if fits:
                lo, best = mid, block
            else:
                hi = mid - 1
        return best
    # Too long even at the smallest size: keep the lines that fit, end with an ellipsis.
    block = best
    room = max(1, (box_h - block.stack.line_height()) // block.line_step + 1)
    if max_lines is not None:
        room = min(room, max_lines)
    kept = block.lines[:room]
    if kept:
        kept[-1] = _ellipsize(kept[-1] + "…", block.stack, box_w)
    block.lines = [line for line in kept if line]
    return block


def draw_block(
    draw: ImageDraw.ImageDraw,
    block: TextBlock,
    box: tuple[int, int, int, int],
    fill: RGB,
    *,
    align: str = "left",
    valign: str = "center",
    bold: bool = False,
) -> tuple[int, int, int, int]:
    """Draw ``block`` inside ``box`` (x0, y0, x1, y1); returns the box actually covered.

    ``bold`` thickens the strokes when the font itself is not a bold face."""
    x0, y0, x1, y1 = box
    if valign == "center":
        top = y0 + (y1 - y0 - block.height) // 2
    elif valign == "bottom":
        top = y1 - block.height
    else:
        top = y0
    stack = block.stack
    stroke = max(1, stack.size // 36) if bold and not stack.main_bold else 0
    covered = [x1, y1, x0, y0]
    for i, line in enumerate(block.lines):
        width = stack.width(line)
        line_align = "right" if align == "left" and _is_rtl(line) else align
        if line_align == "center":
            x = x0 + (x1 - x0 - width) / 2
        elif line_align == "right":
            x = x1 - width
        else:
            x = float(x0)
        baseline = top + i * block.line_step + stack.ascent()
        covered[0] = min(covered[0], int(x))
        covered[2] = max(covered[2], math.ceil(x + width))
        for run, idx in stack.runs(line):
            font = stack.fonts[idx]
            draw.text(
                (x, baseline),
                run,
                font=font,
                fill=fill,
                anchor="ls",
                stroke_width=stroke,
                stroke_fill=fill,
            )
            x += font.getlength(run)
    covered[1] = top
    covered[3] = top + block.height
    return (covered[0], covered[1], covered[2], covered[3])


# --------------------------------------------------------------------------------------------
# drawing helpers


def _luminance(c: RGB) -> float:
    def ch(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * ch(c[0]) + 0.7152 * ch(c[1]) + 0.0722 * ch(c[2])


def _contrast(a: RGB, b: RGB) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _background(style: StylePreset, size: tuple[int, int], seed: int) -> Image.Image:
    """A vertical gradient with a soft accent glow placed by the shot's seed."""
    # lazy: numpy loads with the first card, not with every command that builds the resources
    import numpy as np

    w, h = size
    pal = style.palette
    top = np.array(pal.rgb("background"), dtype=np.float32)
    bottom = np.array(pal.rgb("background_alt"), dtype=np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = top * (1 - t) + bottom * t
    img = np.broadcast_to(img, (h, w, 3)).copy()
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.1, 0.5) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.sqrt(((xx - cx) / (0.6 * w)) ** 2 + ((yy - cy) / (0.6 * h)) ** 2)
    glow = np.clip(1.0 - dist, 0.0, 1.0)[..., None] ** 2 * 0.18
    accent = np.array(pal.rgb("accent"), dtype=np.float32)
    img = img * (1 - glow) + accent * glow
    if style.decoration == "paper":
        grain = np.random.default_rng(7).normal(0.0, 5.0, (h, w, 1)).astype(np.float32)
        vignette = (
            1.0
            - 0.12
            * np.clip(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2, 0, 1)[
                ..., None
            ]
        )
        img = img * vignette + grain
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def _decorate(img: Image.Image, style: StylePreset) -> None:
    w, h = img.size
    pal = style.palette
    draw = ImageDraw.Draw(img, "RGBA")
    if style.decoration == "dots":
        color = (*pal.rgb("muted"), 70)
        step = 44
        for row in range(7):
            for col in range(9):
                x = w - 90 - col * step
                y = 70 + row * step
                r = 5 if (row + col) % 2 == 0 else 3
                draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
    elif style.decoration == "rule":
        color = (*pal.rgb("muted"), 110)
        draw.line((96, 60, w - 96, 60), fill=color, width=2)
        draw.line((96, h - 60, w - 96, h - 60), fill=color, width=2)


def _letterbox(img: Image.Image, style: StylePreset) -> int:
    """Draws cinematic bars when the style has them; returns the bar height."""
    if style.decoration != "letterbox":
        return 0
    w, h = img.size
    bar = round(h * 0.1)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, bar), fill=(0, 0, 0))
    draw.rectangle((0, h - bar, w, h), fill=(0, 0, 0))
    return bar


def _circle_mask(diameter: int) -> Image.Image:
    scale = 4
    big = Image.new("L", (diameter * scale, diameter * scale), 0)
    ImageDraw.Draw(big).ellipse((0, 0, diameter * scale - 1, diameter * scale - 1), fill=255)
    return big.resize((diameter, diameter), Image.Resampling.LANCZOS)


def _initials(name: str) -> str:
    parts = [p for p in re.split(r"[\s_\-]+", name.strip()) if p]
    letters = "".join(p[0] for p in parts[:2]).upper()
    return letters or "?"


# --------------------------------------------------------------------------------------------
# the renderer


@dataclass(frozen=True)
class _Fonts:
    body: FontChoice
    title: FontChoice
    fallbacks: tuple[FontChoice, ...]


def _style_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(STYLES_DIR.glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


class CardKeyframes(KeyframeMakerResource):
    """Embedded keyframe maker: a designed title card per visual style (no AI model)."""

    width: int = 1920
    height: int = 1080
    system_fonts: bool = True  # False = only the font bundled with Pillow
    styles_dir: str | None = None  # a folder of extra/overriding style presets

    def version(self, workflow: str | None = None) -> str:
        """Changes with the drawing code, the canvas size or any built-in style preset.

        ``workflow`` is ignored: cards use no workflow file.
        """
        key = f"{_RENDER_VERSION}|{self.width}x{self.height}|{self.system_fonts}|{_style_hash()}"
        return f"{ENGINE}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def _fonts(self, style: StylePreset) -> _Fonts:
        typo = style.typography
        body = resolve_family(typo.font, typo.weight, use_system=self.system_fonts)
        title = resolve_family(typo.title_font or typo.font, "bold", use_system=self.system_fonts)
        return _Fonts(body, title, tuple(fallback_choices(self.system_fonts)))

    def render(
        self,
        *,
        shot: Shot,
        sentence_text: str,
        section_title: str,
        style: str | StylePreset,
        characters: Sequence[CharacterRef] = (),
    ) -> Image.Image:
        """The card as a Pillow image (see `make_keyframe`)."""
        preset = (
            style
            if isinstance(style, StylePreset)
            else load_style(style, [self.styles_dir] if self.styles_dir else None)
        )
        w, h = self.width, self.height
        sx = w / 1920
        img = _background(preset, (w, h), shot.seed)
        _decorate(img, preset)
        bar = _letterbox(img, preset)
        fonts = self._fonts(preset)
        pal = preset.palette
        typo = preset.typography
        phrase = " ".join((shot.key_phrase or sentence_text).split()) or " "
        phrase = typo.apply_case(phrase)
        title = " ".join(section_title.split()).upper()
        people = self._people(shot, characters)
        margin = round(110 * sx)
        draw = ImageDraw.Draw(img)
        text_rgb = pal.rgb("text")
        accent = pal.rgb("accent")

        def body(box: tuple[int, int, int, int], fill: RGB, align: str, valign: str) -> None:
            block = fit_text(
                phrase,
                fonts.body,
                fonts.fallbacks,
                (box[2] - box[0], box[3] - box[1]),
                max_size=round(typo.max_size * sx),
                min_size=round(typo.min_size * sx),
                line_spacing=typo.line_spacing,
            )
            bold = typo.weight == "bold"
            draw_block(draw, block, box, fill, align=align, valign=valign, bold=bold)

        def heading(box: tuple[int, int, int, int], fill: RGB, align: str) -> int:
            if not title:
                return box[1]
            block = fit_text(
                title,
                fonts.title,
                fonts.fallbacks,
                (box[2] - box[0], box[3] - box[1]),
                max_size=round(40 * sx),
                min_size=round(20 * sx),
                max_lines=1,
            )
            return draw_block(draw, block, box, fill, align=align, valign="top")[3]

        layout = preset.layout
        if layout == "lower-third":
            band_top = round(h * (0.6 if people else 0.5))
            band = (0, band_top, w, h - max(bar, round(40 * sx)))
            draw.rectangle(band, fill=pal.rgb("background_alt"))
            draw.rectangle((0, band_top, round(18 * sx), band[3]), fill=accent)
            bottom = heading(
                (margin, band_top + round(36 * sx), w - margin, band[3]), accent, "left"
            )
            body(
                (margin, bottom + round(20 * sx), w - margin, band[3] - round(36 * sx)),
                text_rgb,
                typo.align,
                "center",
            )
            self._draw_people(
                img,
                people,
                preset,
                (margin, bar + margin // 2, w - margin, band_top - round(30 * sx)),
                fonts,
            )
        elif layout == "split":
            panel_w = round(w * 0.36)
            draw.rectangle((0, 0, panel_w, h), fill=pal.rgb("background_alt"))
            draw.rectangle((panel_w - round(10 * sx), 0, panel_w, h), fill=accent)
            bottom = heading(
                (
                    margin // 2 + 20,
                    bar + margin,
                    panel_w - margin // 2,
                    bar + margin + round(200 * sx),
                ),
                accent,
                "left",
            )
            self._draw_people(
                img,
                people,
                preset,
                (margin // 2, bottom + round(40 * sx), panel_w - margin // 2, h - bar - margin),
                fonts,
            )
            body(
                (panel_w + margin, bar + margin, w - margin, h - bar - margin),
                text_rgb,
                typo.align,
                "center",
            )
        elif layout == "bold-block":
            top = bar + round(h * 0.2)
            block_box = (margin, top, w - margin, h - bar - round(h * 0.16))
            draw.rounded_rectangle(block_box, radius=round(36 * sx), fill=accent)
            ink = max((text_rgb, pal.rgb("background")), key=lambda c: _contrast(c, accent))
            heading(
                (margin, bar + round(70 * sx), w - margin, top - round(20 * sx)),
                text_rgb,
                typo.align,
            )
            pad = round(60 * sx)
            right = block_box[2] - pad - (round(300 * sx) if people else 0)
            body(
                (block_box[0] + pad, block_box[1] + pad, right, block_box[3] - pad),
                ink,
                typo.align,
                "center",
            )
            if people:
                self._draw_people(
                    img,
                    people,
                    preset,
                    (
                        right + round(20 * sx),
                        block_box[1] + pad,
                        block_box[2] - pad // 2,
                        block_box[3] - pad,
                    ),
                    fonts,
                )
        else:  # centered
            y_title = bar + round(80 * sx)
            bottom = heading(
                (margin, y_title, w - margin, y_title + round(60 * sx)), accent, "center"
            )
            rule_w = round(120 * sx)
            draw.rectangle(
                (
                    w // 2 - rule_w // 2,
                    bottom + round(18 * sx),
                    w // 2 + rule_w // 2,
                    bottom + round(24 * sx),
                ),
                fill=accent,
            )
            low = h - bar - round(70 * sx) - (round(260 * sx) if people else 0)
            body(
                (
                    margin + round(60 * sx),
                    bottom + round(60 * sx),
                    w - margin - round(60 * sx),
                    low,
                ),
                text_rgb,
                "center",
                "center",
            )
            if people:
                self._draw_people(
                    img,
                    people,
                    preset,
                    (margin, low + round(20 * sx), w - margin, h - bar - round(40 * sx)),
                    fonts,
                )
        return img

    @staticmethod
    def _people(shot: Shot, characters: Sequence[CharacterRef]) -> list[CharacterRef]:
        by_name = {c.name.casefold(): c for c in characters}
        out: list[CharacterRef] = []
        for name in shot.characters:
            out.append(by_name.get(name.casefold()) or CharacterRef(name=name))
        return out

    def _draw_people(
        self,
        img: Image.Image,
        people: Sequence[CharacterRef],
        style: StylePreset,
        box: tuple[int, int, int, int],
        fonts: _Fonts,
    ) -> None:
        """Portraits (circle cut-outs or name cards) with names, centred in ``box``."""
        if not people:
            return
        shown = list(people[:4])
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        n = len(shown)
        label_h = max(24, round(bh * 0.16))
        gap = max(12, round(bw * 0.03))
        vertical = bw < bh  # a narrow side panel stacks portraits
        if vertical:
            d = min(bw - 20, (bh - n * (label_h + gap)) // n)
        else:
            d = min(bh - label_h - 10, (bw - (n - 1) * gap) // n - 10)
        d = max(40, min(d, 320))
        pal = style.palette
        draw = ImageDraw.Draw(img)
        ring = max(3, d // 40)
        # One label size for every name: the size at which the longest one fits.
        label_size = min(
            fit_text(
                p.name,
                fonts.title,
                fonts.fallbacks,
                (d + gap, label_h),
                max_size=round(label_h * 0.75),
                min_size=10,
                max_lines=1,
            ).stack.size
            for p in shown
        )
        for i, person in enumerate(shown):
            if vertical:
                cx = x0 + bw // 2
                top = y0 + i * (d + label_h + gap)
            else:
                total = n * d + (n - 1) * gap
                cx = x0 + (bw - total) // 2 + i * (d + gap) + d // 2
                top = y0 + (bh - d - label_h) // 2
            left = cx - d // 2
            draw.ellipse(
                (left - ring, top - ring, left + d + ring, top + d + ring), fill=pal.rgb("accent")
            )
            portrait = self._portrait(person, d, style, fonts)
            img.paste(portrait, (left, top), _circle_mask(d))
            name_block = fit_text(
                person.name,
                fonts.title,
                fonts.fallbacks,
                (d + gap, label_h),
                max_size=label_size,
                min_size=min(10, label_size),
                max_lines=1,
            )
            draw_block(
                draw,
                name_block,
                (
                    cx - (d + gap) // 2,
                    top + d + ring + 4,
                    cx + (d + gap) // 2,
                    top + d + ring + 4 + label_h,
                ),
                pal.rgb("text"),
                align="center",
                valign="top",
            )
        if len(people) > len(shown):
            more = fit_text(
                f"+{len(people) - len(shown)}",
                fonts.title,
                fonts.fallbacks,
                (80, label_h),
                max_size=label_h,
                min_size=10,
                max_lines=1,
            )
            draw_block(draw, more, (x1 - 80, y1 - label_h, x1, y1), pal.rgb("muted"))

    @staticmethod
    def _portrait(person: CharacterRef, d: int, style: StylePreset, fonts: _Fonts) -> Image.Image:
        ref = person.reference_image
        if ref is not None and Path(ref).is_file():
            try:
                with Image.open(ref) as opened:
                    upright: Image.Image = ImageOps.exif_transpose(opened).convert("RGB")
                    return ImageOps.fit(
                        upright, (d, d), Image.Resampling.LANCZOS, centering=(0.5, 0.4)
                    )
            except (OSError, ValueError):
                pass  # unreadable reference: fall back to a name card
        pal = style.palette
        card = Image.new("RGB", (d, d), pal.rgb("background_alt"))
        draw = ImageDraw.Draw(card)
        block = fit_text(
            _initials(person.name),
            fonts.title,
            fonts.fallbacks,
            (round(d * 0.7), round(d * 0.5)),
            max_size=round(d * 0.42),
            min_size=8,
            max_lines=1,
        )
        draw_block(draw, block, (0, 0, d, d), pal.rgb("accent"), align="center")
        return card

    def uncovered(
        self,
        *,
        shot: Shot,
        sentence_text: str,
        section_title: str,
        style: str | StylePreset,
    ) -> str:
        """The characters of the card's text that no font here draws (each once, in order)."""
        preset = (
            style
            if isinstance(style, StylePreset)
            else load_style(style, [self.styles_dir] if self.styles_dir else None)
        )
        fonts = self._fonts(preset)
        choices = [fonts.body, fonts.title, *fonts.fallbacks]
        text = " ".join([shot.key_phrase or sentence_text, section_title, *shot.characters])
        text = preset.typography.apply_case(text)
        out: list[str] = []
        for char in text:
            if char in out or any(has_glyph(c.path, char) for c in choices):
                continue
            out.append(char)
        return "".join(out)

    def make_keyframe(self, job: KeyframeJob) -> ImageResult:
        """Draw the card and write it as a PNG, atomically.

        Characters no font draws are reported once through ``job.progress`` (a line starting
        with ``warning:``) and in the result's ``extra["missing_glyphs"]``.
        """
        shot, sentence_text, section_title = job.shot, job.sentence_text, job.section_title
        style, progress = job.style, job.progress
        missing = self.uncovered(
            shot=shot, sentence_text=sentence_text, section_title=section_title, style=style
        )
        if missing and progress:
            codes = ", ".join(f"U+{ord(c):04X}" for c in missing[:8])
            shown = sentence_text if len(sentence_text) <= 80 else sentence_text[:77] + "..."
            progress(
                f"warning: card for the sentence {shown!r}: no installed font draws "
                f"{missing[:8]!r} ({codes}), drawn as empty boxes; {FONT_HINT}"
            )
        img = self.render(
            shot=shot,
            sentence_text=sentence_text,
            section_title=section_title,
            style=style,
            characters=job.characters,
        )
        out_path = Path(job.out_path)
        with atomic_path(out_path) as tmp:
            img.save(tmp, format="PNG", compress_level=6)
        if progress:
            progress(f"cards: {style} card written ({self.width}x{self.height})")
        return ImageResult(
            path=out_path,
            width=self.width,
            height=self.height,
            seed=shot.seed,
            engine=ENGINE,
            workflow_version=self.version(),
            extra={
                "style": style,
                "text": shot.key_phrase or sentence_text,
                **({"missing_glyphs": missing} if missing else {}),
            },
        )


def thumbnail_markdown(png_path: str | Path, width: int = 320) -> str:
    """A markdown image with the picture scaled to ``width`` as a base64 PNG data URI."""
    with Image.open(png_path) as src:
        img = src.convert("RGB")
    height = max(1, round(img.height * width / img.width))
    # reduce by whole factors first, then resample: a fraction of LANCZOS over the full frame
    img = img.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=2.0)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"![{Path(png_path).name}](data:image/png;base64,{data})"

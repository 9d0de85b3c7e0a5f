"""The storyboard: one self-contained HTML page of every shot, plus a contact-sheet PNG.

``write_storyboard`` renders ``storyboard.html`` into a project folder. The page works opened
straight from disk (``file://``): it links the studio's media with paths relative to the
project folder, carries its CSS and its few lines of JavaScript inline, and loads nothing from
the network. It stays quick for long scripts: keyframes are shown as small JPEG thumbnails kept
in ``thumbs/`` (made again only when a keyframe changes), images load lazily and the audio and
video players fetch nothing until played.

``contact_sheet`` tiles every keyframe into one numbered PNG and ``contact_sheet_markdown``
turns it into markdown for Dagster asset metadata: an http link served by the studio's media
server when one runs, or an inline, downscaled data URI otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import jinja2
from PIL import Image, ImageDraw, ImageFont, ImageOps

from videogen_assets.sentence_assets import SENTENCE_SPECS
from videogen_domain.atomic import atomic_path, atomic_write_text
from videogen_domain.models import AssetStatus, ProjectItem, ProjectView, Shot
from videogen_domain.paths import projects_dir

__all__ = [
    "CONTACT_SHEET_GAP",
    "CONTACT_SHEET_NAME",
    "MEDIA_KINDS",
    "ROUGH_CUT_NAME",
    "STATUSES",
    "STORYBOARD_NAME",
    "THUMBS_DIR",
    "THUMB_BOX",
    "StoryboardReport",
    "chapter_starts",
    "contact_sheet",
    "contact_sheet_markdown",
    "contact_sheet_size",
    "item_seconds",
    "write_storyboard",
]

STORYBOARD_NAME = "storyboard.html"
TEMPLATE_NAME = "storyboard.html.j2"  # in videogen_assets/templates
ROUGH_CUT_NAME = "rough_cut.mp4"
CONTACT_SHEET_NAME = "storyboard_contact.png"
THUMBS_DIR = "thumbs"
THUMB_BOX = (384, 216)  # landscape bounding box; portrait projects use it turned on its side
THUMB_QUALITY = 82
CONTACT_SHEET_GAP = 6  # pixels around and between contact-sheet tiles

STATUSES: tuple[AssetStatus, ...] = ("missing", "stale", "running", "done", "failed")
MEDIA_KINDS: tuple[str, ...] = tuple(s.name for s in SENTENCE_SPECS if s.export is not None)
# The order badges appear in; kinds a view names beyond these follow, sorted.
_KIND_ORDER: tuple[str, ...] = ("script", "shot", *MEDIA_KINDS)
# The worst status of a card decides its colour and what the filter matches.
_SEVERITY: dict[str, int] = {"done": 0, "missing": 1, "stale": 2, "running": 3, "failed": 4}
# The status filter's choices after "all shots" and "needs attention".
_FILTER_ORDER: tuple[str, ...] = ("failed", "stale", "running", "missing", "done")

_THUMB_NAME = re.compile(r"^(?P<stem>.+)-(?P<sig>[0-9a-f]{12})\.jpg$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WORKERS = max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class StoryboardReport:
    """What ``write_storyboard`` wrote and what the project looks like."""

    path: Path
    sentences: int
    sections: int
    total_seconds: float
    status_counts: dict[str, int]  # status -> count, over every asset kind of every sentence
    kind_status_counts: dict[str, dict[str, int]]  # asset kind -> status -> count
    missing_keyframes: int
    thumbs_written: int
    thumbs_reused: int
    thumbs_removed: int
    elapsed_s: float
    thumbs: dict[str, Path] = field(default_factory=dict)  # sentence_id -> thumbnail

    def as_metadata(self) -> dict[str, object]:
        """Plain values for Dagster asset metadata."""
        return {
            "storyboard": str(self.path),
            "sentences": self.sentences,
            "sections": self.sections,
            "total_seconds": round(self.total_seconds, 3),
            **{f"status_{name}": count for name, count in self.status_counts.items()},
            "missing_keyframes": self.missing_keyframes,
            "thumbs_written": self.thumbs_written,
            "thumbs_reused": self.thumbs_reused,
        }


# --------------------------------------------------------------------------------------------
# small helpers


def _existing(path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    return p if p.is_file() else None


class _Media(NamedTuple):
    """A sentence's media files that exist on disk (looked up once per page)."""

    narration: Path | None
    keyframe: Path | None
    clip: Path | None


def _media_of(item: ProjectItem) -> _Media:
    return _Media(_existing(item.narration), _existing(item.keyframe), _existing(item.clip))


def item_seconds(item: ProjectItem, fps: int) -> float | None:
    """A sentence's length: its frame-exact clip when made, else its narration."""
    if item.clip_frames and fps > 0:
        return item.clip_frames / fps
    if item.narration_ms is not None:
        return item.narration_ms / 1000.0
    return None


def _format_seconds(seconds: float) -> str:
    total = round(seconds, 1)
    minutes, secs = divmod(total, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:04.1f}"
    return f"{minutes}:{secs:04.1f}"


def _statuses(item: ProjectItem, media: _Media) -> dict[str, str]:
    """Every asset kind's status, in display order; media kinds not given are inferred."""
    given: dict[str, str] = dict(item.status)
    for kind, path in media._asdict().items():
        if kind not in given:
            given[kind] = "done" if path is not None else "missing"
    ordered = [k for k in _KIND_ORDER if k in given]
    ordered += sorted(k for k in given if k not in _KIND_ORDER)
    return {k: given[k] for k in ordered}


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _SEVERITY.get(s, 1), default="done")


def _rel_url(target: Path, base_dir: str) -> str:
    """A URL to ``target`` relative to ``base_dir`` (absolute), each segment percent-encoded."""
    absolute = os.path.abspath(target)
    prefix = os.path.join(base_dir, "")
    if absolute.startswith(prefix):  # inside the folder: no need to walk both paths
        rel = absolute[len(prefix) :]
    else:
        try:
            rel = os.path.relpath(absolute, base_dir)
        except ValueError:  # another drive: only an absolute file URL reaches it
            return Path(absolute).as_uri()
    return "/".join(quote(part) for part in rel.split(os.sep))


# --------------------------------------------------------------------------------------------
# thumbnails


def _thumb_box(view: ProjectView) -> tuple[int, int]:
    w, h = THUMB_BOX
    return (w, h) if view.width >= view.height else (h, w)


def _thumb_signature(source: Path, box: tuple[int, int]) -> str:
    st = source.stat()
    key = f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}|{box}|{THUMB_QUALITY}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def _safe_stem(sentence_id: str) -> str:
    return _UNSAFE.sub("_", sentence_id).strip("._") or "shot"


def _flatten(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (24, 24, 27))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _load_scaled(source: Path, box: tuple[int, int]) -> Image.Image:
    with Image.open(source) as img:
        img.draft("RGB", box)  # JPEG sources decode at a reduced scale
        flat = _flatten(img)
    flat.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return flat


def _make_thumb(source: Path, target: Path, box: tuple[int, int]) -> tuple[int, int]:
    thumb = _load_scaled(source, box)
    target.parent.mkdir(exist_ok=True)
    with atomic_path(target) as tmp:
        thumb.save(tmp, format="JPEG", quality=THUMB_QUALITY, optimize=True, progressive=True)
    return thumb.size


@dataclass
class _Thumb:
    path: Path
    size: tuple[int, int]
    written: bool


def _thumb_target(sentence_id: str, source: Path, thumbs_dir: Path, box: tuple[int, int]) -> Path:
    """The thumbnail's path: named after the sentence and its keyframe's signature."""
    return thumbs_dir / f"{_safe_stem(sentence_id)}-{_thumb_signature(source, box)}.jpg"


def _thumb_for(
    item: ProjectItem, source: Path | None, thumbs_dir: Path, box: tuple[int, int]
) -> _Thumb | None:
    if source is None:
        return None
    try:
        target = _thumb_target(item.sentence_id, source, thumbs_dir, box)
        if target.is_file():
            try:
                with Image.open(target) as img:
                    return _Thumb(target, img.size, written=False)
            except OSError:
                pass  # a damaged thumbnail is made again
        return _Thumb(target, _make_thumb(source, target, box), written=True)
    except OSError:
        return None  # an unreadable keyframe shows as a placeholder, never fails the page


def _prune_thumbs(thumbs_dir: Path, keep: set[str]) -> int:
    removed = 0
    if not thumbs_dir.is_dir():
        return 0
    for entry in thumbs_dir.iterdir():
        if entry.name in keep or not _THUMB_NAME.match(entry.name) or not entry.is_file():
            continue
        try:
            entry.unlink()
            removed += 1
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------------------------
# HTML: the page is templates/storyboard.html.j2; this part computes what each card shows


@functools.cache
def _template() -> jinja2.Template:
    """The page template, loaded once; autoescape on, so creator text is always escaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("videogen_assets", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(TEMPLATE_NAME)


@dataclass(frozen=True)
class _Card:
    """One shot's card, every value as the page shows it."""

    sentence_id: str
    index: int
    text: str
    worst: str
    badges: tuple[tuple[str, str], ...]  # (status, "kind: status"), in display order
    status_words: str
    duration: str
    frames: str
    thumb_url: str | None
    thumb_size: tuple[int, int]
    keyframe_url: str | None
    narration_url: str | None
    clip_url: str | None
    shot: Shot | None  # its prompts; None: no shot planned yet
    workflows: str  # "name version" of each workflow that made its media
    updated_at: str
    start: str | None  # the chapter start in the rough cut, seconds
    start_label: str
    chapter_label: str


@dataclass(frozen=True)
class _Section:
    anchor: str
    slug: str
    title: str
    duration: str
    cards: list[_Card]


@dataclass(frozen=True)
class _Mark:
    start: str
    left: str  # percent of the rough cut
    label: str


@dataclass(frozen=True)
class _Player:
    src: str
    duration: str
    marks: list[_Mark]


def _card(
    item: ProjectItem,
    view: ProjectView,
    base: str,
    media: _Media,
    thumb: _Thumb | None,
    start: float | None = None,
) -> tuple[_Card, dict[str, str], float | None]:
    statuses = _statuses(item, media)
    seconds = item_seconds(item, view.fps)
    narration, keyframe, clip = media
    card = _Card(
        sentence_id=item.sentence_id,
        index=item.index,
        text=item.text,
        worst=_worst(statuses.values()),
        badges=tuple((st, f"{kind}: {st}") for kind, st in statuses.items()),
        status_words=" ".join(sorted(set(statuses.values()))),
        duration=_format_seconds(seconds) if seconds is not None else "—",
        frames=f" · {item.clip_frames} frames" if item.clip_frames else "",
        thumb_url=_rel_url(thumb.path, base) if thumb is not None else None,
        thumb_size=thumb.size if thumb is not None else (0, 0),
        keyframe_url=_rel_url(keyframe, base) if keyframe is not None else None,
        narration_url=_rel_url(narration, base) if narration is not None else None,
        clip_url=_rel_url(clip, base) if clip is not None else None,
        shot=item.shot,
        workflows=", ".join(f"{k} {v}" for k, v in sorted(item.workflow_versions.items())),
        updated_at=item.updated_at or "",
        start=f"{start:.3f}" if start is not None else None,
        start_label=_format_seconds(start) if start is not None else "",
        chapter_label=_chapter_label(item, start) if start is not None else "",
    )
    return card, statuses, seconds


def chapter_starts(items: Sequence[ProjectItem], fps: int) -> dict[str, float] | None:
    """Where each sentence starts in the rough cut (seconds): its clips back to back in script
    order. None while a sentence has no length yet (no rough cut can hold it)."""
    starts: dict[str, float] = {}
    t = 0.0
    for item in sorted(items, key=lambda it: it.index):
        seconds = item_seconds(item, fps)
        if seconds is None:
            return None
        starts[item.sentence_id] = t
        t += seconds
    return starts


def _chapter_label(item: ProjectItem, start: float) -> str:
    text = item.text if len(item.text) <= 80 else item.text[:79].rstrip() + "…"
    return f"{_format_seconds(start)} · #{item.index} · {text}"


def _rough_cut_player(
    cut: Path, base: str, items: Sequence[ProjectItem], starts: dict[str, float], fps: int
) -> _Player:
    """The rough cut's player with a chapter mark at every sentence start."""
    total = sum(item_seconds(it, fps) or 0.0 for it in items) or 1.0
    marks = [
        _Mark(
            start=f"{starts[it.sentence_id]:.3f}",
            left=f"{100.0 * starts[it.sentence_id] / total:.3f}",
            label=_chapter_label(it, starts[it.sentence_id]),
        )
        for it in items
    ]
    return _Player(src=_rel_url(cut, base), duration=_format_seconds(total), marks=marks)


def _sections(items: Sequence[ProjectItem]) -> list[tuple[str, str, list[ProjectItem]]]:
    """Sentences grouped by section in order of first appearance: (slug, title, items)."""
    groups: dict[str, tuple[str, list[ProjectItem]]] = {}
    for item in items:
        key = item.section_slug or _safe_stem(item.section) or "section"
        groups.setdefault(key, (item.section, []))[1].append(item)
    return [(slug, title, members) for slug, (title, members) in groups.items()]


def write_storyboard(
    view: ProjectView, project_dir: Path, *, rough_cut: Path | None = None
) -> StoryboardReport:
    """Write ``storyboard.html`` (and fresh ``thumbs/``) into ``project_dir``; report totals.

    When a rough cut exists (``rough_cut``, default ``rough_cut.mp4`` in ``project_dir``), or
    every sentence has its clip (the rough cut is made of them, maybe after this page), and
    every sentence has a length, the page opens with its player and a chapter mark at every
    sentence start; clicking a shot's card (or a mark) plays the rough cut from there, and the
    card of the sentence playing is outlined.

    Media links are relative to ``project_dir`` so the page works from ``file://`` and from the
    studio's media server alike. Thumbnails are named after their keyframe's path, size and
    modification time, so a changed keyframe gets a new one and an unchanged one is reused;
    thumbnails no sentence uses any more are removed.
    """
    started = time.perf_counter()
    project_dir = Path(project_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    thumbs_dir = project_dir / THUMBS_DIR
    items = sorted(view.items, key=lambda it: it.index)
    box = _thumb_box(view)

    base = os.path.abspath(project_dir)

    def look(item: ProjectItem) -> tuple[_Media, _Thumb | None]:
        media = _media_of(item)
        return media, _thumb_for(item, media.keyframe, thumbs_dir, box)

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        found = list(pool.map(look, items))
    media = [m for m, _ in found]
    thumbs = [th for _, th in found]
    media_of = {it.sentence_id: m for it, m in zip(items, media, strict=True)}
    thumb_of = {it.sentence_id: th for it, th in zip(items, thumbs, strict=True)}
    removed = _prune_thumbs(thumbs_dir, {th.path.name for th in thumbs if th is not None})

    status_counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    kind_counts: dict[str, dict[str, int]] = {}
    total_seconds = 0.0
    timed = 0
    sections: list[_Section] = []
    cut = rough_cut if rough_cut is not None else project_dir / ROUGH_CUT_NAME
    # every clip made: the rough cut is (or is being) made of them, maybe after this page
    complete = bool(items) and all(m.clip for m in media)
    starts = chapter_starts(items, view.fps) if complete or cut.is_file() else None
    player = _rough_cut_player(cut, base, items, starts, view.fps) if starts else None
    for number, (slug, title, members) in enumerate(_sections(items), start=1):
        cards: list[_Card] = []
        section_seconds = 0.0
        for item in members:
            start = starts.get(item.sentence_id) if starts else None
            sid = item.sentence_id
            card, statuses, seconds = _card(item, view, base, media_of[sid], thumb_of[sid], start)
            cards.append(card)
            for kind, st in statuses.items():
                status_counts[st] = status_counts.get(st, 0) + 1
                per_kind = kind_counts.setdefault(kind, dict.fromkeys(STATUSES, 0))
                per_kind[st] = per_kind.get(st, 0) + 1
            if seconds is not None:
                total_seconds += seconds
                section_seconds += seconds
                timed += 1
        sections.append(
            _Section(
                anchor=f"section-{number}-{_safe_stem(slug)}",
                slug=slug,
                title=title or slug,
                duration=_format_seconds(section_seconds),
                cards=cards,
            )
        )

    untimed = len(items) - timed
    page = _template().render(
        title=view.title or view.name,
        name=view.name,
        topic=view.topic,
        style=view.style,
        width=view.width,
        height=view.height,
        fps=view.fps,
        aspect=f"{max(view.width, 1)} / {max(view.height, 1)}",
        sentences=len(items),
        sections=sections,
        duration=_format_seconds(total_seconds),
        duration_note=f" ({untimed} not timed yet)" if untimed else "",
        statuses=STATUSES,
        status_counts=[(s, status_counts.get(s, 0)) for s in STATUSES],
        kind_rows=[
            (kind, [counts.get(s, 0) for s in STATUSES]) for kind, counts in kind_counts.items()
        ],
        filter_statuses=_FILTER_ORDER,
        player=player,
        written=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    path = atomic_write_text(project_dir / STORYBOARD_NAME, page)
    written = sum(1 for th in thumbs if th is not None and th.written)
    reused = sum(1 for th in thumbs if th is not None and not th.written)
    return StoryboardReport(
        path=path,
        sentences=len(items),
        sections=len(sections),
        total_seconds=total_seconds,
        status_counts=status_counts,
        kind_status_counts=kind_counts,
        missing_keyframes=sum(1 for th in thumbs if th is None),
        thumbs_written=written,
        thumbs_reused=reused,
        thumbs_removed=removed,
        elapsed_s=time.perf_counter() - started,
        thumbs={sid: th.path for sid, th in thumb_of.items() if th is not None},
    )


# --------------------------------------------------------------------------------------------
# contact sheet


def _tile_height(view: ProjectView, thumb_width: int) -> int:
    return max(1, round(thumb_width * max(view.height, 1) / max(view.width, 1)))


def contact_sheet_size(
    count: int, view: ProjectView, columns: int = 6, thumb_width: int = 320
) -> tuple[int, int]:
    """The pixel size of the contact sheet of ``count`` sentences (an empty one shows one tile)."""
    cols = max(1, min(columns, max(count, 1)))
    rows = max(1, math.ceil(count / cols))
    tile_h = _tile_height(view, thumb_width)
    gap = CONTACT_SHEET_GAP
    return cols * thumb_width + (cols + 1) * gap, rows * tile_h + (rows + 1) * gap


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _tile(
    item: ProjectItem, size: tuple[int, int], thumbs_dir: Path | None, box: tuple[int, int]
) -> Image.Image | None:
    """The keyframe cropped to ``size``; ``None`` when there is none to show.

    A fresh storyboard thumbnail at least as large as the tile stands in for the keyframe,
    which spares decoding full-size frames again.
    """
    source = _existing(item.keyframe)
    if source is None:
        return None
    picture: Image.Image | None = None
    try:
        if thumbs_dir is not None and size[0] <= box[0] and size[1] <= box[1]:
            thumb = _thumb_target(item.sentence_id, source, thumbs_dir, box)
            if thumb.is_file():
                with contextlib.suppress(OSError), Image.open(thumb) as img:
                    img.load()
                    if img.width >= size[0] and img.height >= size[1]:
                        picture = img.convert("RGB")
        if picture is None:
            picture = _load_scaled(source, (size[0] * 2, size[1] * 2))
    except OSError:
        return None
    return ImageOps.fit(picture, size, Image.Resampling.LANCZOS)


def _draw_placeholder(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    size: tuple[int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    x, y = origin
    w, h = size
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=(40, 40, 46), outline=(90, 90, 98), width=2)
    draw.line((x, y, x + w - 1, y + h - 1), fill=(64, 64, 72), width=2)
    draw.line((x, y + h - 1, x + w - 1, y), fill=(64, 64, 72), width=2)
    msg = "no keyframe"
    box = draw.textbbox((0, 0), msg, font=font)
    tw, th = box[2] - box[0], box[3] - box[1]
    cx, cy = x + (w - tw) // 2, y + (h - th) // 2
    draw.rectangle((cx - 6, cy - 4, cx + tw + 6, cy + th + 6), fill=(40, 40, 46))
    draw.text((cx - box[0], cy - box[1]), msg, fill=(200, 200, 206), font=font)


def _draw_number(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    number: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    x, y = origin
    label = str(number)
    box = draw.textbbox((0, 0), label, font=font)
    tw, th = box[2] - box[0], box[3] - box[1]
    pad = 5
    draw.rectangle((x, y, x + tw + 2 * pad, y + th + 2 * pad), fill=(0, 0, 0))
    draw.text((x + pad - box[0], y + pad - box[1]), label, fill=(255, 255, 255), font=font)


def contact_sheet(
    view: ProjectView,
    out_png: Path,
    columns: int = 6,
    thumb_width: int = 320,
    *,
    thumbs_dir: Path | None = None,
) -> Path:
    """Tile every sentence's keyframe, numbered, into one PNG; missing ones get a placeholder.

    The sheet is ``contact_sheet_size(len(view.items), view, columns, thumb_width)`` pixels:
    tiles of ``thumb_width`` by the project's aspect, ``CONTACT_SHEET_GAP`` pixels apart.
    Storyboard thumbnails in ``thumbs_dir`` (default: ``thumbs/`` beside ``out_png``) are
    used where they are fresh and large enough.
    """
    if columns < 1 or thumb_width < 16:
        raise ValueError("columns must be >= 1 and thumb_width >= 16")
    out_png = Path(out_png)
    items = sorted(view.items, key=lambda it: it.index)
    width, height = contact_sheet_size(len(items), view, columns, thumb_width)
    cols = max(1, min(columns, max(len(items), 1)))
    tile_size = (thumb_width, _tile_height(view, thumb_width))
    font = _font(max(11, thumb_width // 14))
    thumbs = thumbs_dir if thumbs_dir is not None else out_png.parent / THUMBS_DIR
    box = _thumb_box(view)
    sheet = Image.new("RGB", (width, height), (18, 18, 20))
    draw = ImageDraw.Draw(sheet)
    gap = CONTACT_SHEET_GAP
    # Keyframes decode in parallel; all drawing stays on this thread (fonts are not shared).
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        tiles = pool.map(lambda it: _tile(it, tile_size, thumbs, box), items)
        for n, (item, tile) in enumerate(zip(items, tiles, strict=True)):
            row, col = divmod(n, cols)
            origin = (gap + col * (tile_size[0] + gap), gap + row * (tile_size[1] + gap))
            if tile is None:
                _draw_placeholder(draw, origin, tile_size, font)
            else:
                sheet.paste(tile, origin)
            _draw_number(draw, origin, item.index, font)
    if not items:
        draw.text((gap + 8, gap + 8), "no sentences yet", fill=(200, 200, 206), font=font)
    with atomic_path(out_png, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG", compress_level=6)
    return out_png


def contact_sheet_markdown(
    out_png: Path,
    media_base_url: str | None,
    *,
    studio_root: Path | None = None,
    max_inline_bytes: int = 150_000,
    inline_width: int = 480,
) -> str:
    """Markdown that shows the contact sheet in Dagster's metadata table.

    With ``media_base_url`` (the studio media server's root URL) it is an http image link: the
    sheet's path relative to ``studio_root`` when given, else ``projects/<project>/<file>``
    (or ``<project>/<file>`` for a folder outside a ``projects`` folder).
    Without one it is a data URI of a downscaled, palette PNG no bigger than
    ``max_inline_bytes`` of base64 (it halves the width until it fits, down to 60 pixels).
    """
    out_png = Path(out_png)
    if media_base_url:
        base = media_base_url.rstrip("/")
        if studio_root is not None:
            rel = Path(os.path.relpath(os.path.abspath(out_png), os.path.abspath(studio_root)))
            if rel.parts and rel.parts[0] == "..":
                raise ValueError(f"{out_png} is outside the studio root {studio_root}")
            parts: Sequence[str] = rel.parts
        else:  # the studio layout: <root>/projects/<project>/<file>
            project = out_png.parent
            parts = (project.parent.name, project.name, out_png.name)
            if project.parent.name != projects_dir(Path()).name:
                parts = parts[1:]
        return f"![storyboard]({base}/{'/'.join(quote(p) for p in parts if p)})"

    with Image.open(out_png) as img:
        img.load()
        source = img.convert("RGB")
    width = min(inline_width, source.width)
    while True:
        small = source.copy()
        small.thumbnail((width, 1 << 16), Image.Resampling.LANCZOS)
        small = small.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        encoded = base64.b64encode(buf.getvalue()).decode("ascii")
        if len(encoded) <= max_inline_bytes or width <= 60:
            return f"![storyboard](data:image/png;base64,{encoded})"
        width = max(60, width // 2)

"""What the Dagster UI shows of a made thing: a small inline preview, links, the sentence's words.

Every materialization carries, whoever made it (``videogen render``/``demo`` without the UI, a
run launched from the UI, the daemon's automation):

- ``preview``: markdown with a small picture (``PREVIEW_WIDTH`` pixels wide, a JPEG/PNG written
  beside the media under ``preview/``), itself a link to the full media. The markdown is a few
  hundred characters, so the Dagster UI renders it inline in the metadata table (it only folds
  values of 1,000 characters and more into a "[Show Markdown]" dialog);
- ``watch`` / ``listen`` / ``open`` / ``storyboard``: links through the studio's media server.

Links point at the media server that ``videogen ui`` starts (``DEFAULT_MEDIA_URL`` unless
``VIDEOGEN_MEDIA_URL`` names another), so they work whenever the UI runs, whoever made the
asset and whenever. Per-sentence metadata also names the sentence (``sentence_label``: its id,
section and first ~80 characters) so partitions, runs and events say which sentence is which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from videogen_domain import paths
from videogen_domain.atomic import atomic_path
from videogen_domain.paths import media_url

DEFAULT_MEDIA_URL = "http://127.0.0.1:3031"
PREVIEW_WIDTH = 480
PREVIEW_DIR = "preview"
TEXT_CHARS = 80
WAVE_HEIGHT = 72
# run tags naming the sentence of a run over one sentence
SENTENCE_TAG = "videogen/sentence"
SECTION_TAG = "videogen/section"


def short_id(sentence_id: str) -> str:
    """``how_volcanoes_work.s0004`` -> ``s0004`` (the id within its project)."""
    return sentence_id.rsplit(".", 1)[-1]


def short_text(text: str, limit: int = TEXT_CHARS) -> str:
    """The first ``limit`` characters of ``text`` on one line, cut at a word with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.-") + "…"


def sentence_label(sentence_id: str, text: str, limit: int = TEXT_CHARS) -> str:
    """``s0004 · "Gas bubbles expand…"``: how the UI names a sentence."""
    return f'{short_id(sentence_id)} · "{short_text(text, limit)}"'


def media_link(base_url: str, root: Path, path: Path) -> str:
    """The media server URL of a file inside the studio root."""
    return media_url(base_url, root, path)


def preview_path(project_dir: Path, name: str, sentence_id: str | None = None) -> Path:
    """Where a preview is kept: ``<project>/preview/[<sentence id>/]<name>``, outside the media
    folders (which hold only what a sentence is made of)."""
    folder = project_dir / PREVIEW_DIR
    return paths.safe_join(folder, sentence_id) / name if sentence_id else folder / name


def _save_jpeg(img, out: Path) -> Path:  # type: ignore[no-untyped-def]
    with atomic_path(out) as tmp:
        img.convert("RGB").save(tmp, format="JPEG", quality=80, optimize=True)
    return out


def image_preview(source: Path, out: Path, width: int = PREVIEW_WIDTH) -> Path:
    """A ``width``-pixel-wide JPEG of a picture (aspect kept).

    Decoding the full picture is most of the cost; it is then reduced by a whole factor (a box
    filter: 1920 -> 480 in one step) and resized only for what is left.
    """
    from PIL import Image

    with Image.open(source) as src:
        src.draft("RGB", (width, width))  # JPEG sources decode at a reduced scale
        img = src if src.mode == "RGB" else src.convert("RGB")
        factor = img.width // width
        small = img.reduce(factor) if factor >= 2 else img
        height = max(1, round(img.height * width / img.width))
        if small.size != (width, height):
            small = small.resize((width, height), Image.Resampling.BILINEAR)
        return _save_jpeg(small, out)


def video_preview(source: Path, out: Path, *, at: float = 0.0, width: int = PREVIEW_WIDTH) -> Path:
    """A ``width``-pixel-wide JPEG of a frame of a video (PyAV, no process spawned): the first
    frame, or with ``at`` (a fraction of its length) the key frame at or before that point,
    so nothing but one frame is decoded."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        base = float(stream.time_base or 0)
        if at > 0 and stream.duration and base:
            container.seek(int(stream.duration * at), stream=stream, backward=True)
        frame = next(container.decode(stream), None)
        if frame is None:
            raise ValueError(f"{source.name} has no video frame")
        height = max(2, round(frame.height * width / frame.width / 2) * 2)
        small = frame.reformat(width=width, height=height, format="rgb24").to_image()
    return _save_jpeg(small, out)


def safe_preview(
    log: Callable[[str], None], make: Callable[..., Path], *args: Any, **kwargs: Any
) -> Path | None:
    """``make(*args, **kwargs)``, or None (with a warning) when the preview cannot be made: a
    preview is never worth failing the media it shows."""
    try:
        return make(*args, **kwargs)
    except Exception as exc:  # a damaged file, a full disk, a codec PyAV lacks
        log(f"no preview: {exc}")
        return None


def waveform_preview(
    samples,  # type: ignore[no-untyped-def]
    out: Path,
    *,
    width: int = PREVIEW_WIDTH,
    height: int = WAVE_HEIGHT,
) -> Path:
    """A ``width`` x ``height`` PNG of a narration's waveform (peak envelope per column)."""
    import numpy as np
    from PIL import Image, ImageDraw

    data = np.abs(np.asarray(samples, dtype=np.float32).reshape(-1))
    img = Image.new("RGB", (width, height), (24, 24, 27))
    draw = ImageDraw.Draw(img)
    mid = height / 2
    draw.line((0, mid, width - 1, mid), fill=(70, 70, 78))
    if data.size:
        edges = np.linspace(0, data.size, width + 1).astype(np.int64)
        for x in range(width):
            chunk = data[edges[x] : max(edges[x + 1], edges[x] + 1)]
            peak = float(chunk.max()) if chunk.size else 0.0
            half = max(0.5, min(1.0, peak) * (mid - 2))
            draw.line((x, mid - half, x, mid + half), fill=(96, 165, 250))
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    return out


class MediaLinks:
    """Links and previews through the studio's media server, for one studio root."""

    def __init__(self, base_url: str | None, root: Path) -> None:
        self.base_url = (base_url or DEFAULT_MEDIA_URL).rstrip("/")
        self.root = Path(root)

    def url(self, path: Path) -> str:
        """The media server URL of ``path``."""
        return media_link(self.base_url, self.root, path)

    def link(self, path: Path) -> dg.MetadataValue:
        """A clickable URL metadata value."""
        return dg.MetadataValue.url(self.url(path))

    def preview(
        self, picture: Path | None, target: Path, label: str
    ) -> dict[str, dg.MetadataValue]:
        """``{"preview": markdown}``: the small ``picture`` inline, a link to the full
        ``target`` (nothing when there is no picture)."""
        if picture is None:
            return {}
        alt = label.replace("[", "(").replace("]", ")")
        return {
            "preview": dg.MetadataValue.md(f"[![{alt}]({self.url(picture)})]({self.url(target)})")
        }

    def storyboard(self, project_dir: Path, sentence_id: str | None = None) -> dg.MetadataValue:
        """The storyboard page, at a sentence's card when given."""
        url = self.url(project_dir / "storyboard.html")
        if sentence_id:
            from urllib.parse import quote

            url += f"#shot-{quote(sentence_id)}"
        return dg.MetadataValue.url(url)


def sentence_facts(sentence_id: str, text: str, section: str) -> dict[str, object]:
    """The first metadata entries of every per-sentence materialization."""
    return {"sentence": sentence_label(sentence_id, text), "section": section or "-"}


def sentence_links(
    links: MediaLinks, folder: Path, project_dir: Path, sentence_id: str
) -> dict[str, dg.MetadataValue]:
    """``watch`` (the clip), ``listen`` (the narration), ``open`` (the keyframe) and
    ``storyboard`` (the sentence's card): from any of the sentence's assets, the others are one
    click away (a link answers once its file is made: a keyframe made before its clip links
    the clip to come)."""
    return {
        "watch": links.link(folder / "clip.mp4"),
        "listen": links.link(folder / "narration.wav"),
        "open": links.link(folder / "keyframe.png"),
        "storyboard": links.storyboard(project_dir, sentence_id),
    }


def run_sentence_tags(sentence_id: str, text: str, section: str) -> dict[str, str]:
    """Run tags naming the one sentence a run makes."""
    return {SENTENCE_TAG: sentence_label(sentence_id, text), SECTION_TAG: section or "-"}


def tag_single_sentence_run(context: dg.AssetExecutionContext, tags: Mapping[str, str]) -> None:
    """Add ``tags`` to this run when it makes one sentence and does not carry them yet.

    Runs requested by declarative automation get their tags from the sensor, which knows no
    sentence text; the step adds them, so the Runs page names the sentence of every
    single-sentence run, whoever launched it.
    """
    if len(context.partition_keys) != 1:
        return
    current = context.run.tags
    missing = {k: v for k, v in tags.items() if current.get(k) != v}
    if missing:
        context.instance.add_run_tags(context.run_id, missing)

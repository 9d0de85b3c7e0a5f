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
import hashlib
import html
import io
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont, ImageOps

from videogen_assets.sentence_assets import SENTENCE_SPECS
from videogen_domain.atomic import atomic_path, atomic_write_text
from videogen_domain.models import AssetStatus, ProjectItem, ProjectView
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


def _statuses(item: ProjectItem) -> dict[str, str]:
    """Every asset kind's status, in display order; media kinds not given are inferred."""
    given: dict[str, str] = dict(item.status)
    inferred = {
        "narration": item.narration,
        "keyframe": item.keyframe,
        "clip": item.clip,
    }
    for kind, path in inferred.items():
        if kind not in given:
            given[kind] = "done" if _existing(path) else "missing"
    ordered = [k for k in _KIND_ORDER if k in given]
    ordered += sorted(k for k in given if k not in _KIND_ORDER)
    return {k: given[k] for k in ordered}


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _SEVERITY.get(s, 1), default="done")


def _rel_url(target: Path, base_dir: Path) -> str:
    """A URL to ``target`` relative to ``base_dir``, each segment percent-encoded."""
    try:
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(base_dir))
    except ValueError:  # another drive: only an absolute file URL reaches it
        return Path(os.path.abspath(target)).as_uri()
    return "/".join(quote(part) for part in Path(rel).parts)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


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


def _thumb_for(item: ProjectItem, thumbs_dir: Path, box: tuple[int, int]) -> _Thumb | None:
    source = _existing(item.keyframe)
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
# HTML


_CSS = """
:root{color-scheme:light dark;--bg:#f6f6f4;--fg:#1d1d1f;--muted:#5d5d63;--card:#fff;
--line:#d9d9dd;--chip:#ececef;--focus:#2f62d0;--done:#1f7a3d;--missing:#6b6b73;
--stale:#8a5a00;--running:#1f5fbf;--failed:#b3261e}
@media (prefers-color-scheme:dark){:root{--bg:#151517;--fg:#ececef;--muted:#a6a6ad;
--card:#1f1f23;--line:#34343a;--chip:#2a2a30;--focus:#8fb1ff;--done:#6fd18f;
--missing:#a6a6ad;--stale:#f0b44c;--running:#8fb1ff;--failed:#ff8a80}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
a{color:inherit}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--card);
padding:.5rem 1rem;z-index:2}
header{padding:1.25rem clamp(1rem,3vw,2rem);border-bottom:1px solid var(--line);
background:var(--card)}
h1{margin:0 0 .25rem;font-size:1.6rem;line-height:1.2}
.sub{margin:0;color:var(--muted)}
.totals{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;margin:.9rem 0 0;padding:0;list-style:none}
.totals b{font-variant-numeric:tabular-nums}
.kinds{border-collapse:collapse;margin-top:.75rem;font-size:.85rem}
.kinds th,.kinds td{padding:.15rem .6rem;border-bottom:1px solid var(--line);text-align:right;
font-variant-numeric:tabular-nums}.kinds th:first-child{text-align:left}
.controls{display:flex;flex-wrap:wrap;align-items:center;gap:.75rem;margin-top:.9rem}
select,input{font:inherit;color:inherit;background:var(--bg);border:1px solid var(--line);
border-radius:6px;padding:.3rem .5rem}
nav.toc{display:flex;flex-wrap:wrap;gap:.4rem;margin-top:.75rem;font-size:.85rem}
nav.toc a{background:var(--chip);border-radius:999px;padding:.15rem .65rem;text-decoration:none}
main{padding:0 clamp(1rem,3vw,2rem) 3rem}
section>h2{margin:1.75rem 0 .75rem;font-size:1.2rem}
section>h2 small{color:var(--muted);font-weight:normal;font-size:.85rem}
.grid{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(300px,1fr))}
.shot{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--done);
border-radius:10px;overflow:hidden;display:flex;flex-direction:column;
content-visibility:auto;contain-intrinsic-size:auto 520px}
.shot[data-worst=missing]{border-left-color:var(--missing)}
.shot[data-worst=stale]{border-left-color:var(--stale)}
.shot[data-worst=running]{border-left-color:var(--running)}
.shot[data-worst=failed]{border-left-color:var(--failed)}
.frame{margin:0;aspect-ratio:var(--ar);background:#0d0d0f;display:flex;align-items:center;
justify-content:center}
.frame a{display:block;width:100%;height:100%}
.frame img{width:100%;height:100%;object-fit:contain;display:block}
.frame .none{color:#b5b5bb;font-size:.9rem}
.body{padding:.7rem .85rem .85rem;display:flex;flex-direction:column;gap:.5rem}
.meta{display:flex;justify-content:space-between;gap:.5rem;color:var(--muted);font-size:.85rem;
font-variant-numeric:tabular-nums}
.text{margin:0;font-size:1rem}
.badges{display:flex;flex-wrap:wrap;gap:.3rem;margin:0;padding:0;list-style:none}
.badge{font-size:.75rem;border-radius:999px;padding:.1rem .55rem;background:var(--chip);
border:1px solid currentColor}
.badge.done{color:var(--done)}.badge.missing{color:var(--missing)}.badge.stale{color:var(--stale)}
.badge.running{color:var(--running)}.badge.failed{color:var(--failed);font-weight:600}
audio,video{width:100%;display:block}
video{aspect-ratio:var(--ar);background:#0d0d0f}
.absent{color:var(--muted);font-size:.85rem;margin:0}
details{font-size:.85rem}summary{cursor:pointer;color:var(--muted)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .6rem;margin:.5rem 0 0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.shot[hidden],section[hidden]{display:none}
footer{padding:1rem 2rem;color:var(--muted);font-size:.8rem}
.cut{position:sticky;top:0;z-index:1;background:var(--card);border-bottom:1px solid var(--line);
padding:.5rem clamp(1rem,3vw,2rem);display:flex;gap:1rem;align-items:flex-start;flex-wrap:wrap}
.cut video{width:min(480px,100%);max-height:34vh;aspect-ratio:var(--ar)}
.cut .side{flex:1;min-width:14rem;font-size:.85rem}
.cut .now{margin:.2rem 0 .5rem;color:var(--muted)}
.marks{position:relative;height:22px;background:var(--chip);border-radius:4px;margin:.25rem 0}
.mark{position:absolute;top:0;bottom:0;width:3px;margin-left:-1px;background:var(--focus);
border:0;padding:0;cursor:pointer}
.mark:hover,.mark:focus-visible{width:5px;margin-left:-2px}
.shot[data-start]{cursor:pointer}
.shot.playing{outline:3px solid var(--focus);outline-offset:-3px}
"""

_JS = """
(function(){
  var sel=document.getElementById('filter'),q=document.getElementById('search'),
      out=document.getElementById('shown');
  function apply(){
    var f=sel.value,t=q.value.trim().toLowerCase(),n=0;
    document.querySelectorAll('section.sec').forEach(function(s){
      var any=false;
      s.querySelectorAll('.shot').forEach(function(c){
        var st=c.getAttribute('data-statuses').split(' ');
        var ok=f==='all'||(f==='attention'?c.getAttribute('data-worst')!=='done'
              :st.indexOf(f)>=0);
        if(ok&&t){ok=c.textContent.toLowerCase().indexOf(t)>=0;}
        c.hidden=!ok;if(ok){any=true;n++;}
      });
      s.hidden=!any;
    });
    out.textContent=n+' shown';
  }
  sel.addEventListener('change',apply);q.addEventListener('input',apply);
  document.addEventListener('play',function(e){
    document.querySelectorAll('audio,video').forEach(function(m){
      if(m!==e.target&&!m.paused){m.pause();}
    });
  },true);
  var rc=document.getElementById('roughcut'),now=document.getElementById('cut-now'),want=null;
  function seek(t){
    if(!rc){return;}
    if(rc.readyState>0){rc.currentTime=t;return;}
    if(want===null){
      rc.addEventListener('loadedmetadata',function(){rc.currentTime=want;},{once:true});
      rc.preload='metadata';rc.load();
    }
    want=t;
  }
  var cards=[].slice.call(document.querySelectorAll('.shot[data-start]'));
  cards.forEach(function(c){
    c.addEventListener('click',function(e){
      if(e.target.closest('a,audio,video,button,summary,details,input,select')){return;}
      seek(parseFloat(c.getAttribute('data-start')));
    });
  });
  document.querySelectorAll('.mark').forEach(function(m){
    m.addEventListener('click',function(){seek(parseFloat(m.getAttribute('data-start')));});
  });
  if(rc){
    rc.addEventListener('timeupdate',function(){
      var t=rc.currentTime+0.001,cur=null;
      cards.forEach(function(c){if(parseFloat(c.getAttribute('data-start'))<=t){cur=c;}});
      cards.forEach(function(c){c.classList.toggle('playing',c===cur);});
      if(cur&&now){now.textContent=cur.getAttribute('data-label');}
    });
    var h=decodeURIComponent(location.hash.slice(1)),target=h&&document.getElementById(h);
    if(target&&target.hasAttribute('data-start')){seek(parseFloat(target.getAttribute('data-start')));}
  }
  apply();
})();
"""


def _badges(statuses: dict[str, str]) -> str:
    parts = [
        f'<li class="badge {_esc(st)}" title="{_esc(kind)}: {_esc(st)}">'
        f"{_esc(kind)}: {_esc(st)}</li>"
        for kind, st in statuses.items()
    ]
    return f'<ul class="badges" aria-label="Asset status">{"".join(parts)}</ul>'


def _prompts(item: ProjectItem) -> str:
    shot = item.shot
    if shot is None:
        return '<p class="absent">No shot planned yet.</p>'
    rows: list[tuple[str, str]] = [
        ("Image prompt", shot.image_prompt),
        ("Video prompt", shot.video_prompt),
    ]
    if shot.negative_prompt:
        rows.append(("Negative", shot.negative_prompt))
    rows += [
        ("Camera", shot.camera_movement),
        ("Motion", f"{shot.motion_strength:.2f}"),
        ("Characters", ", ".join(shot.characters) if shot.characters else "none"),
    ]
    if shot.key_phrase:
        rows.append(("Key phrase", shot.key_phrase))
    rows += [("Seed", str(shot.seed)), ("Source", shot.source)]
    if item.workflow_versions:
        rows.append(
            ("Workflows", ", ".join(f"{k} {v}" for k, v in sorted(item.workflow_versions.items())))
        )
    cells = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows)
    return f"<details><summary>Prompts</summary><dl>{cells}</dl></details>"


def _card(
    item: ProjectItem,
    view: ProjectView,
    project_dir: Path,
    thumb: _Thumb | None,
    start: float | None = None,
) -> tuple[str, dict[str, str], float | None]:
    statuses = _statuses(item)
    worst = _worst(statuses.values())
    seconds = item_seconds(item, view.fps)
    duration = _format_seconds(seconds) if seconds is not None else "—"
    label = f"Shot {item.index}"

    if thumb is not None:
        w, h = thumb.size
        frame = (
            f'<img src="{_esc(_rel_url(thumb.path, project_dir))}" width="{w}" height="{h}" '
            f'loading="lazy" decoding="async" alt="Keyframe of shot {item.index}">'
        )
        poster = f' poster="{_esc(_rel_url(thumb.path, project_dir))}"'
    else:
        frame = '<span class="none">No keyframe yet</span>'
        poster = ""
    keyframe = _existing(item.keyframe)
    if keyframe is not None:
        frame = (
            f'<a href="{_esc(_rel_url(keyframe, project_dir))}" '
            f'aria-label="Open the full keyframe of shot {item.index}">{frame}</a>'
        )

    narration = _existing(item.narration)
    if narration is not None:
        audio = (
            f'<audio controls preload="none" src="{_esc(_rel_url(narration, project_dir))}" '
            f'aria-label="Narration of shot {item.index}"></audio>'
        )
    else:
        audio = '<p class="absent">No narration yet.</p>'
    clip = _existing(item.clip)
    if clip is not None:
        video = (
            f'<video controls preload="none" playsinline{poster} '
            f'src="{_esc(_rel_url(clip, project_dir))}" '
            f'aria-label="Clip of shot {item.index}"></video>'
        )
    else:
        video = '<p class="absent">No clip yet.</p>'

    frames = f" · {item.clip_frames} frames" if item.clip_frames else ""
    updated = (
        f'<div class="meta"><span>updated {_esc(item.updated_at)}</span></div>'
        if item.updated_at
        else ""
    )
    chapter = (
        f'data-start="{start:.3f}" data-label="{_esc(_chapter_label(item, start))}" '
        f'title="Play the rough cut from here ({_esc(_format_seconds(start))})" '
        if start is not None
        else ""
    )
    card = (
        f'<article class="shot" id="shot-{_esc(item.sentence_id)}" {chapter}'
        f'data-sentence="{_esc(item.sentence_id)}" data-worst="{_esc(worst)}" '
        f'data-statuses="{_esc(" ".join(sorted(set(statuses.values()))))}" '
        f'aria-label="{_esc(label)}">'
        f'<figure class="frame">{frame}</figure>'
        f'<div class="body">'
        f'<div class="meta"><span>#{item.index} · {_esc(item.sentence_id)}</span>'
        f'<span title="duration">{_esc(duration)}{_esc(frames)}</span></div>'
        f'<p class="text">{_esc(item.text)}</p>'
        f"{_badges(statuses)}{audio}{video}{_prompts(item)}"
        f"{updated}</div></article>"
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
    cut: Path, project_dir: Path, items: Sequence[ProjectItem], starts: dict[str, float], fps: int
) -> str:
    """The rough cut's player with a chapter mark at every sentence start."""
    total = sum(item_seconds(it, fps) or 0.0 for it in items) or 1.0
    marks = "".join(
        f'<button type="button" class="mark" data-start="{starts[it.sentence_id]:.3f}" '
        f'style="left:{100.0 * starts[it.sentence_id] / total:.3f}%" '
        f'title="{_esc(_chapter_label(it, starts[it.sentence_id]))}" '
        f'aria-label="{_esc(_chapter_label(it, starts[it.sentence_id]))}"></button>'
        for it in items
    )
    return (
        '<section class="cut" aria-label="Rough cut">'
        f'<video id="roughcut" controls preload="none" playsinline '
        f'src="{_esc(_rel_url(cut, project_dir))}" aria-label="Rough cut"></video>'
        '<div class="side"><strong>Rough cut</strong> · '
        f"{_esc(_format_seconds(total))} · {len(items)} chapters"
        '<p class="now" id="cut-now">Click a shot or a mark to play from there.</p>'
        f'<div class="marks" role="group" aria-label="Chapters">{marks}</div></div></section>'
    )


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

    if any(_existing(it.keyframe) for it in items):
        thumbs_dir.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        thumbs = list(pool.map(lambda it: _thumb_for(it, thumbs_dir, box), items))
    thumb_of = {it.sentence_id: th for it, th in zip(items, thumbs, strict=True)}
    removed = _prune_thumbs(thumbs_dir, {th.path.name for th in thumbs if th is not None})

    status_counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    kind_counts: dict[str, dict[str, int]] = {}
    total_seconds = 0.0
    timed = 0
    body: list[str] = []
    toc: list[str] = []
    sections = _sections(items)
    cut = rough_cut if rough_cut is not None else project_dir / ROUGH_CUT_NAME
    # every clip made: the rough cut is (or is being) made of them, maybe after this page
    complete = bool(items) and all(_existing(it.clip) for it in items)
    starts = chapter_starts(items, view.fps) if complete or cut.is_file() else None
    player = _rough_cut_player(cut, project_dir, items, starts, view.fps) if starts else ""
    for number, (slug, title, members) in enumerate(sections, start=1):
        cards: list[str] = []
        section_seconds = 0.0
        for item in members:
            start = starts.get(item.sentence_id) if starts else None
            card, statuses, seconds = _card(
                item, view, project_dir, thumb_of[item.sentence_id], start
            )
            cards.append(card)
            for kind, st in statuses.items():
                status_counts[st] = status_counts.get(st, 0) + 1
                per_kind = kind_counts.setdefault(kind, dict.fromkeys(STATUSES, 0))
                per_kind[st] = per_kind.get(st, 0) + 1
            if seconds is not None:
                total_seconds += seconds
                section_seconds += seconds
                timed += 1
        anchor = f"section-{number}-{_safe_stem(slug)}"
        toc.append(f'<a href="#{_esc(anchor)}">{_esc(title or slug)}</a>')
        body.append(
            f'<section class="sec" id="{_esc(anchor)}" data-section="{_esc(slug)}" '
            f'aria-labelledby="{_esc(anchor)}-h">'
            f'<h2 id="{_esc(anchor)}-h">{_esc(title or slug)} '
            f"<small>{len(members)} sentence{'s' if len(members) != 1 else ''} · "
            f"{_esc(_format_seconds(section_seconds))}</small></h2>"
            f'<div class="grid">{"".join(cards)}</div></section>'
        )

    kinds_table = ""
    if kind_counts:
        head = "".join(f"<th scope='col'>{_esc(s)}</th>" for s in STATUSES)
        rows = "".join(
            f"<tr><th scope='row'>{_esc(kind)}</th>"
            + "".join(f"<td>{counts.get(s, 0)}</td>" for s in STATUSES)
            + "</tr>"
            for kind, counts in kind_counts.items()
        )
        kinds_table = (
            f'<table class="kinds"><caption class="skip">Asset status by kind</caption>'
            f"<thead><tr><th scope='col'>asset</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
    totals = "".join(
        f'<li><span class="badge {_esc(s)}">{_esc(s)}</span> <b>{status_counts.get(s, 0)}</b></li>'
        for s in STATUSES
    )
    untimed = len(items) - timed
    duration_note = f" ({untimed} not timed yet)" if untimed else ""
    options = "".join(
        f'<option value="{s}">{s}</option>'
        for s in ("failed", "stale", "running", "missing", "done")
    )
    title = view.title or view.name
    aspect = f"{max(view.width, 1)} / {max(view.height, 1)}"
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="generator" content="VideoGen Studio">'
        '<link rel="icon" href="data:,">'  # no favicon request, from disk or http
        '<meta http-equiv="Content-Security-Policy" content="default-src \'self\' file:; '
        "img-src 'self' file: data:; media-src 'self' file:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">"
        f"<title>{_esc(title)} — storyboard</title>"
        f"<style>:root{{--ar:{aspect}}}{_CSS}</style></head><body>"
        '<a class="skip" href="#shots">Skip to shots</a>'
        f'<header><h1>{_esc(title)}</h1><p class="sub">{_esc(view.topic)}'
        f"{' · ' + _esc(view.style) if view.style else ''} · {view.width}×{view.height} "
        f"@ {view.fps} fps</p>"
        f'<ul class="totals" aria-label="Totals"><li><b data-total="sentences">{len(items)}'
        f"</b> sentences</li><li><b>{len(sections)}</b> sections</li>"
        f'<li><b data-total="duration">{_esc(_format_seconds(total_seconds))}</b> total'
        f"{_esc(duration_note)}</li>{totals}</ul>{kinds_table}"
        '<div class="controls"><label for="filter">Show</label><select id="filter">'
        '<option value="all">all shots</option><option value="attention">needs attention'
        f'</option>{options}</select><label for="search">Find</label>'
        '<input id="search" type="search" placeholder="words, ids, prompts">'
        '<span id="shown" aria-live="polite"></span></div>'
        f'<nav class="toc" aria-label="Sections">{"".join(toc)}</nav></header>{player}'
        f'<main id="shots">{"".join(body)}</main>'
        f"<footer>{_esc(view.name)} · written {_esc(time.strftime('%Y-%m-%d %H:%M:%S'))}"
        f"</footer><script>{_JS}</script></body></html>\n"
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

"""The storyboard page, the contact sheet and the read-only media server.

Pins: ``storyboard.html`` shows every sentence once, grouped by section in script order, with
all creator text HTML-escaped; it links media only by relative paths that exist on disk and
loads nothing from the network; images are lazy and players fetch nothing until played;
keyframe thumbnails are small, reused while a keyframe is unchanged and replaced when it
changes; a 400-sentence storyboard writes in well under a few seconds. The contact sheet has
the size ``contact_sheet_size`` promises, one numbered tile per sentence and a placeholder for
a missing keyframe; its markdown is an http link with a media server and a small data URI
without one. The media server binds 127.0.0.1, answers GET/HEAD with the right content types
and byte ranges, and refuses ``..``, absolute paths, symlink escapes, other methods, foreign
Host headers and the studio database. With a rough cut (or every clip made) the page opens
with the rough cut's player and one chapter mark per sentence, at the sentence's start in the
cut (its clips back to back); each card carries that start, so a click plays from there.
"""

from __future__ import annotations

import base64
import http.client
import io
import os
import re
import shutil
import socket
import subprocess
import time
import wave
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from PIL import Image

from videogen.media_server import make_server, media_url, resolve_request_path, start_in_thread
from videogen_assets.storyboard import (
    CONTACT_SHEET_GAP,
    ROUGH_CUT_NAME,
    STORYBOARD_NAME,
    THUMBS_DIR,
    chapter_starts,
    contact_sheet,
    contact_sheet_markdown,
    contact_sheet_size,
    write_storyboard,
)
from videogen_domain.models import ProjectItem, ProjectView, Shot

# --------------------------------------------------------------------------------------------
# real, tiny media


def make_png(
    path: Path, size: tuple[int, int] = (160, 90), color: tuple[int, int, int] = (200, 60, 40)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def make_wav(path: Path, ms: int = 300, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = rate * ms // 1000
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        # a quiet square wave, so players have something real to decode
        wav.writeframes(
            b"".join((b"\x00\x10" if (i // 20) % 2 else b"\x00\xf0") for i in range(frames))
        )
    return path


def make_mp4(path: Path, frames: int = 15, fps: int = 30, size: str = "64x36") -> Path:
    """An H.264 clip made by the ffmpeg that imageio-ffmpeg ships."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=s={size}:r={fps}",
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


SECTIONS = ("Opening", "How <it> works", "Closing & credits")


def build_project(
    root: Path,
    count: int,
    *,
    name: str = "demo",
    mp4: Path | None = None,
    keyframe_size: tuple[int, int] = (160, 90),
    missing_keyframe: set[int] | None = None,
    texts: dict[int, str] | None = None,
) -> tuple[ProjectView, Path]:
    """A project under ``root/projects/<name>`` with real media for ``count`` sentences.

    Sentence 2's keyframe lives outside the project folder (in the studio cache) so links
    that climb out of the project folder are exercised too.
    """
    project = root / "projects" / name
    project.mkdir(parents=True, exist_ok=True)
    missing_keyframe = missing_keyframe or set()
    texts = texts or {}
    per_section = max(1, -(-count // len(SECTIONS)))
    items: list[ProjectItem] = []
    for i in range(1, count + 1):
        sid = f"{name}.s{i:04d}"
        section = SECTIONS[min((i - 1) // per_section, len(SECTIONS) - 1)]
        keyframe: Path | None = None
        if i not in missing_keyframe:
            folder = root / "cache" / "keyframes" if i == 2 else project / "keyframes"
            color = ((i * 53) % 256, (i * 97) % 256, (i * 31) % 256)
            keyframe = make_png(folder / f"{sid} frame.png", keyframe_size, color)
        narration = make_wav(project / "narration" / f"{sid}.wav") if i % 4 != 0 else None
        clip: Path | None = None
        if mp4 is not None and i % 3 != 0:
            clip = project / "clips" / f"{sid}.mp4"
            clip.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mp4, clip)
        status: dict[str, str] = {}
        if i == 1:
            status = {"keyframe": "stale", "clip": "running"}
        elif i == 3:
            status = {"clip": "failed"}
        items.append(
            ProjectItem(
                index=i,
                sentence_id=sid,
                section=section,
                section_slug=re.sub(r"[^a-z0-9]+", "_", section.lower()).strip("_"),
                text=texts.get(i, f"Sentence number {i} about volcanoes."),
                narration=str(narration) if narration else None,
                keyframe=str(keyframe) if keyframe else None,
                clip=str(clip) if clip else None,
                narration_ms=300 if narration else None,
                clip_frames=15 if clip else None,
                shot=Shot(
                    image_prompt=f"wide shot of a volcano {i}",
                    video_prompt=f"slow drift over lava {i}",
                    camera_movement="pan-left" if i % 2 else "zoom-in",
                    motion_strength=0.25,
                    characters=("Ada",) if i % 2 else (),
                ),
                status=status,  # type: ignore[arg-type]
            )
        )
    view = ProjectView(
        name=name,
        title="Volcanoes <Live> & Loud",
        topic="How volcanoes work",
        style="documentary",
        width=1920,
        height=1080,
        items=items,
    )
    return view, project


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mp4(tmp_path_factory.mktemp("media") / "clip.mp4")


# --------------------------------------------------------------------------------------------
# reading the page back


class PageParser(HTMLParser):
    """Collects sections, the shots inside each and every media/link attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[tuple[str, list[str]]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self.scripts += 1
        if tag == "section" and a.get("data-section"):
            self.sections.append((a["data-section"] or "", []))
        if tag == "article" and a.get("data-sentence"):
            self.sections[-1][1].append(a["data-sentence"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def media_links(parser: PageParser) -> list[str]:
    links: list[str] = []
    for tag, attrs in parser.tags:
        for key in ("src", "href", "poster"):
            value = attrs.get(key)
            if (
                value
                and tag in ("img", "audio", "video", "a", "source")
                and not value.startswith("#")
            ):
                links.append(value)
    return links


# --------------------------------------------------------------------------------------------
# the page


def test_every_shot_once_grouped_by_section_in_order(tmp_path: Path, tiny_mp4: Path) -> None:
    view, project = build_project(tmp_path, 9, mp4=tiny_mp4)
    report = write_storyboard(view, project)

    assert report.path == project / STORYBOARD_NAME
    parsed = parse(report.path.read_text(encoding="utf-8"))
    assert [slug for slug, _ in parsed.sections] == ["opening", "how_it_works", "closing_credits"]
    shown = [sid for _, sids in parsed.sections for sid in sids]
    assert shown == [it.sentence_id for it in view.items]
    for slug, sids in parsed.sections:
        assert {it.section_slug for it in view.items if it.sentence_id in sids} == {slug}
    assert report.sentences == 9 and report.sections == 3
    # total duration: frame-exact clips first, narration otherwise
    expected = sum(
        (it.clip_frames / view.fps) if it.clip_frames else (it.narration_ms or 0) / 1000
        for it in view.items
    )
    assert report.total_seconds == pytest.approx(expected)


def test_sections_are_grouped_even_when_a_section_returns(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 4)
    items = [
        it.model_copy(
            update={
                "section": "A" if it.index != 2 else "B",
                "section_slug": "a" if it.index != 2 else "b",
            }
        )
        for it in view.items
    ]
    view = view.model_copy(update={"items": list(reversed(items))})  # out of order, too
    parsed = parse(write_storyboard(view, project).path.read_text(encoding="utf-8"))
    assert parsed.sections == [
        ("a", ["demo.s0001", "demo.s0003", "demo.s0004"]),
        ("b", ["demo.s0002"]),
    ]


def test_creator_text_is_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script> & <b>bold</b> "quoted" \'single\''
    view, project = build_project(tmp_path, 3, texts={1: evil})
    shot = Shot(
        image_prompt="<img src=x onerror=alert(1)>", video_prompt="a&b", characters=("<Villain>",)
    )
    items = [view.items[0].model_copy(update={"shot": shot}), *view.items[1:]]
    view = view.model_copy(update={"items": items})
    page = write_storyboard(view, project).path.read_text(encoding="utf-8")
    parsed = parse(page)

    assert parsed.scripts == 1  # only the page's own inline script
    assert "<script>alert" not in page and "<img src=x" not in page and "<Villain>" not in page
    assert "<b>bold</b>" not in page and "<Live>" not in page and "<it>" not in page
    text = "".join(parsed.text)
    assert evil in text  # shown to the reader exactly as typed
    assert "<img src=x onerror=alert(1)>" in text and "<Villain>" in text
    assert "Volcanoes <Live> & Loud" in text and "How <it> works" in text


def test_links_are_relative_and_exist_and_nothing_external(tmp_path: Path, tiny_mp4: Path) -> None:
    view, project = build_project(tmp_path, 8, mp4=tiny_mp4, missing_keyframe={5})
    page = write_storyboard(view, project).path.read_text(encoding="utf-8")
    parsed = parse(page)
    links = media_links(parsed)

    assert links, "the page links media"
    for link in links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        assert (project / unquote(parts.path)).resolve().is_file(), link
    # the keyframe kept outside the project folder is reached by climbing out of it
    assert any(link.startswith("../../cache/") for link in links)
    # spaces in media names are percent-encoded
    assert any("%20frame.png" in link for link in links)
    # no network: no external URLs, stylesheets, script sources or web fonts
    assert not re.search(r"\b(?:https?:)?//[a-z0-9]", page.replace("http-equiv", ""), re.I)
    assert [a for t, a in parsed.tags if t == "link"] == [{"rel": "icon", "href": "data:,"}]
    assert not [a for t, a in parsed.tags if t == "script" and a.get("src")]
    assert "@import" not in page and "@font-face" not in page and "url(" not in page


def test_media_is_lazy_and_players_present(tmp_path: Path, tiny_mp4: Path) -> None:
    view, project = build_project(tmp_path, 9, mp4=tiny_mp4, missing_keyframe={4})
    parsed = parse(write_storyboard(view, project).path.read_text(encoding="utf-8"))
    imgs = [a for t, a in parsed.tags if t == "img"]
    audios = [a for t, a in parsed.tags if t == "audio"]
    videos = [a for t, a in parsed.tags if t == "video"]

    assert len(imgs) == sum(1 for it in view.items if it.keyframe)
    assert len(audios) == sum(1 for it in view.items if it.narration)
    assert len(videos) == sum(1 for it in view.items if it.clip)
    assert all(a.get("loading") == "lazy" and a.get("width") and a.get("alt") for a in imgs)
    assert all(a.get("preload") == "none" and "controls" in a for a in audios + videos)
    assert all((a.get("src") or "").startswith(f"{THUMBS_DIR}/") for a in imgs)


def test_status_badges_and_totals(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 4)  # no clips at all
    report = write_storyboard(view, project)
    page = report.path.read_text(encoding="utf-8")

    assert report.kind_status_counts["keyframe"] == {
        "missing": 0,
        "stale": 1,
        "running": 0,
        "done": 3,
        "failed": 0,
    }
    assert report.kind_status_counts["clip"]["running"] == 1
    assert report.kind_status_counts["clip"]["failed"] == 1
    assert report.kind_status_counts["clip"]["missing"] == 2  # inferred: no file
    assert report.kind_status_counts["narration"] == {
        "missing": 1,
        "stale": 0,
        "running": 0,
        "done": 3,
        "failed": 0,
    }
    assert sum(report.status_counts.values()) == 4 * 3
    for word in ("keyframe: stale", "clip: running", "clip: failed", "narration: missing"):
        assert word in page
    worst = dict(re.findall(r'data-sentence="([^"]+)" data-worst="([^"]+)"', page))
    assert worst == {
        "demo.s0001": "running",
        "demo.s0002": "missing",
        "demo.s0003": "failed",
        "demo.s0004": "missing",
    }
    assert '<b data-total="sentences">4</b>' in page
    assert report.as_metadata()["sentences"] == 4


def test_thumbnails_small_reused_and_replaced_when_keyframe_changes(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 3, keyframe_size=(1280, 720))
    first = write_storyboard(view, project)
    assert first.thumbs_written == 3 and first.thumbs_reused == 0
    for thumb in first.thumbs.values():
        assert thumb.parent == project / THUMBS_DIR
        with Image.open(thumb) as img:
            assert img.format == "JPEG" and img.size == (384, 216)

    again = write_storyboard(view, project)
    assert again.thumbs_written == 0 and again.thumbs_reused == 3
    assert again.thumbs == first.thumbs

    changed = Path(view.items[0].keyframe or "")
    make_png(changed, (1280, 720), (0, 0, 255))
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    third = write_storyboard(view, project)
    assert third.thumbs_written == 1 and third.thumbs_reused == 2 and third.thumbs_removed == 1
    new = third.thumbs[view.items[0].sentence_id]
    assert new != first.thumbs[view.items[0].sentence_id]
    assert not first.thumbs[view.items[0].sentence_id].exists()
    with Image.open(new) as img:
        r, _g, b = img.convert("RGB").getpixel((192, 108))  # type: ignore[misc]
        assert b > 200 and r < 40
    assert sorted(p.name for p in (project / THUMBS_DIR).iterdir()) == sorted(
        p.name for p in third.thumbs.values()
    )


def test_portrait_projects_get_portrait_thumbnails(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 1, keyframe_size=(720, 1280))
    view = view.model_copy(update={"width": 1080, "height": 1920})
    report = write_storyboard(view, project)
    with Image.open(next(iter(report.thumbs.values()))) as img:
        assert img.size == (216, 384)


def test_unreadable_keyframe_is_a_placeholder_not_a_failure(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 2)
    Path(view.items[0].keyframe or "").write_bytes(b"not a png")
    report = write_storyboard(view, project)
    assert report.missing_keyframes == 1
    assert "No keyframe yet" in report.path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_400_sentences_write_fast_and_atomically(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 400, keyframe_size=(192, 108))
    started = time.perf_counter()
    first = write_storyboard(view, project)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = write_storyboard(view, project)
    second_s = time.perf_counter() - started

    assert first.sentences == 400 and first.thumbs_written == 400
    assert second.thumbs_reused == 400
    assert first_s < 4.0, f"first write took {first_s:.2f}s"
    assert second_s < 1.5, f"re-render took {second_s:.2f}s"
    page = first.path.read_text(encoding="utf-8")
    assert page.count("<article ") == 400
    assert len(page) < 2_500_000
    assert not [p for p in project.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_empty_project(tmp_path: Path) -> None:
    view = ProjectView(name="empty", title="", topic="t", style="")
    report = write_storyboard(view, tmp_path / "empty")
    assert report.sentences == 0 and report.total_seconds == 0
    assert "<article" not in report.path.read_text(encoding="utf-8")
    out = contact_sheet(view, tmp_path / "empty" / "sheet.png", columns=4, thumb_width=64)
    with Image.open(out) as img:
        assert img.size == contact_sheet_size(0, view, 4, 64)


# --------------------------------------------------------------------------------------------
# contact sheet


def test_contact_sheet_size_numbering_and_placeholders(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 7, missing_keyframe={5})
    out = contact_sheet(view, project / "storyboard_contact.png", columns=3, thumb_width=100)
    tile_h = round(100 * 1080 / 1920)
    gap = CONTACT_SHEET_GAP
    assert contact_sheet_size(7, view, 3, 100) == (3 * 100 + 4 * gap, 3 * tile_h + 4 * gap)
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == contact_sheet_size(7, view, 3, 100)
        rgb = img.convert("RGB")

    def centre(n: int) -> tuple[int, int, int]:
        row, col = divmod(n - 1, 3)
        x = gap + col * (100 + gap) + 80
        y = gap + row * (tile_h + gap) + tile_h - 10
        return rgb.getpixel((x, y))  # type: ignore[return-value]

    for n in (1, 2, 3, 7):
        expected = ((n * 53) % 256, (n * 97) % 256, (n * 31) % 256)
        assert all(abs(a - b) <= 6 for a, b in zip(centre(n), expected, strict=True)), n
    assert centre(5) != ((5 * 53) % 256, (5 * 97) % 256, (5 * 31) % 256)
    # the number badge sits in each tile's top-left corner on black
    assert rgb.getpixel((gap + 1, gap + 1)) == (0, 0, 0)
    # fewer sentences than columns: the sheet is only as wide as they need
    small = view.model_copy(update={"items": view.items[:2]})
    out2 = contact_sheet(small, project / "two.png", columns=6, thumb_width=80)
    with Image.open(out2) as img:
        assert img.width == 2 * 80 + 3 * gap


def test_contact_sheet_from_storyboard_thumbnails_matches_keyframes(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 4, keyframe_size=(1280, 720), missing_keyframe={3})
    direct = contact_sheet(view, project / "direct.png", columns=2, thumb_width=200)
    write_storyboard(view, project)  # thumbs/ now holds 384x216 stand-ins
    via_thumbs = contact_sheet(view, project / "via_thumbs.png", columns=2, thumb_width=200)
    with Image.open(direct) as a, Image.open(via_thumbs) as b:
        assert a.size == b.size
        diff = [abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True)]
        assert max(diff) <= 12  # JPEG stand-ins, same picture


def test_contact_sheet_markdown_http_link(tmp_path: Path) -> None:
    out = tmp_path / "projects" / "demo" / "storyboard_contact.png"
    make_png(out)
    with_root = contact_sheet_markdown(out, "http://127.0.0.1:3031/", studio_root=tmp_path)
    assert with_root == "![storyboard](http://127.0.0.1:3031/projects/demo/storyboard_contact.png)"
    assert contact_sheet_markdown(out, "http://127.0.0.1:3031") == with_root
    other = tmp_path / "loose" / "storyboard_contact.png"
    make_png(other)
    assert contact_sheet_markdown(other, "http://127.0.0.1:9") == (
        "![storyboard](http://127.0.0.1:9/loose/storyboard_contact.png)"
    )
    with pytest.raises(ValueError):
        contact_sheet_markdown(
            out, "http://127.0.0.1:3031", studio_root=tmp_path / "projects" / "x"
        )


def test_contact_sheet_markdown_data_uri_fallback(tmp_path: Path) -> None:
    view, project = build_project(tmp_path, 24, keyframe_size=(320, 180))
    out = contact_sheet(view, project / "storyboard_contact.png")
    markdown = contact_sheet_markdown(out, None, max_inline_bytes=60_000)
    m = re.fullmatch(r"!\[storyboard\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert m, markdown[:80]
    assert len(m.group(1)) <= 60_000
    with Image.open(io.BytesIO(base64.b64decode(m.group(1)))) as img:
        assert img.format == "PNG" and img.width <= 480
        with Image.open(out) as full:
            assert img.width < full.width


# --------------------------------------------------------------------------------------------
# media server


@pytest.fixture
def studio(tmp_path: Path, tiny_mp4: Path) -> Iterator[tuple[Path, str, ProjectView]]:
    root = tmp_path / "studio"
    view, project = build_project(root, 4, mp4=tiny_mp4)
    write_storyboard(view, project)
    (root / "studio.db").write_bytes(b"SQLite format 3\x00")
    (project / ".secret").write_text("hidden")
    (project / "subs.vtt").write_text("WEBVTT\n")
    (project / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    Image.new("RGB", (8, 8)).save(project / "photo.jpg")
    (tmp_path / "outside.txt").write_text("outside the studio")
    url, stop = start_in_thread(root, port=0)
    try:
        yield root, url, view
    finally:
        stop()
        stop()  # stopping twice is harmless


def request(
    url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest(
            method, path, skip_host=bool(headers and "Host" in headers), skip_accept_encoding=True
        )
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_binds_loopback_and_reports_url(tmp_path: Path) -> None:
    server = make_server(tmp_path, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.server_close()
    url, stop = start_in_thread(tmp_path, port=0)
    assert request(url, "/")[0] == 200
    stop()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    with pytest.raises(ConnectionRefusedError):  # stopped: nothing listens any more
        request(url, "/")
    with socket.socket() as sock:  # and the port can be bound again
        sock.bind(("127.0.0.1", urlsplit(url).port or 0))


def test_serves_files_with_content_types(studio: tuple[Path, str, ProjectView]) -> None:
    root, url, view = studio
    item = view.items[0]
    cases = {
        item.keyframe: "image/png",
        str(root / "projects/demo/photo.jpg"): "image/jpeg",
        item.narration: "audio/wav",
        item.clip: "video/mp4",
        str(root / "projects/demo/storyboard.html"): "text/html; charset=utf-8",
        str(root / "projects/demo/subs.vtt"): "text/vtt; charset=utf-8",
        str(root / "projects/demo/subs.srt"): "application/x-subrip; charset=utf-8",
    }
    for path, ctype in cases.items():
        assert path
        link = media_url(url, root, path)
        status, headers, body = request(url, urlsplit(link).path)
        assert status == 200, link
        assert headers["content-type"] == ctype
        assert body == Path(path).read_bytes()
        assert headers["accept-ranges"] == "bytes"
        assert headers["x-content-type-options"] == "nosniff"


def test_range_requests(studio: tuple[Path, str, ProjectView]) -> None:
    root, url, view = studio
    clip = Path(view.items[0].clip or "")
    data = clip.read_bytes()
    path = urlsplit(media_url(url, root, clip)).path

    status, headers, body = request(url, path, headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    assert headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert headers["content-length"] == "10"
    status, headers, body = request(url, path, headers={"Range": "bytes=-7"})
    assert status == 206 and body == data[-7:]
    status, headers, body = request(url, path, headers={"Range": "bytes=100-"})
    assert status == 206 and body == data[100:]
    status, headers, body = request(url, path, headers={"Range": f"bytes=0-{len(data) * 2}"})
    assert status == 206 and body == data
    status, headers, _ = request(url, path, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    status, _, body = request(url, path, headers={"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == data  # multi-range: the whole file
    status, headers, _ = request(url, path, headers={"Range": "bytes=20-10"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    for ignored in ("bytes=abc", "items=0-5", "bytes=-", "bytes=0-1, 5-6"):
        status, _, body = request(url, path, headers={"Range": ignored})
        assert status == 200 and body == data, ignored  # not a range we serve: the whole file
    status, headers, _ = request(url, path)
    status2, _, _ = request(url, path, headers={"If-None-Match": headers["etag"]})
    assert status2 == 304


def test_head(studio: tuple[Path, str, ProjectView]) -> None:
    root, url, view = studio
    wav = Path(view.items[0].narration or "")
    status, headers, body = request(url, urlsplit(media_url(url, root, wav)).path, method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-length"] == str(wav.stat().st_size)
    assert headers["content-type"] == "audio/wav"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/../outside.txt", 403),
        ("/projects/../../outside.txt", 403),
        ("/projects/%2e%2e/%2e%2e/outside.txt", 403),
        ("/projects/demo/..%2f..%2f..%2foutside.txt", 403),
        ("//etc/passwd", 403),  # an empty segment, never a host
        ("/%2Fetc%2Fpasswd", 403),
        ("/projects/./demo/storyboard.html", 403),
        ("/projects/demo/%00.png", 403),
        ("/escape_file", 403),
        ("/escape_dir/outside.txt", 403),
        ("/studio.db", 404),
        ("/projects/demo/.secret", 404),
        ("/projects/demo", 404),
        ("/projects/demo/", 404),
        ("/projects/demo/nothing.png", 404),
        ("/inside_link/storyboard.html", 200),
    ],
)
def test_refuses_escapes(studio: tuple[Path, str, ProjectView], path: str, expected: int) -> None:
    root, url, _ = studio
    outside = root.parent / "outside.txt"
    (root / "escape_file").symlink_to(outside)
    (root / "escape_dir").symlink_to(root.parent, target_is_directory=True)
    (root / "inside_link").symlink_to(root / "projects" / "demo", target_is_directory=True)
    status, _, body = request(url, path)
    assert status == expected, (path, status)
    assert b"outside the studio" not in body


def test_resolve_request_path_refuses_empty_segments(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("inside")
    assert resolve_request_path(tmp_path, "//etc/passwd")[0] == 403
    assert resolve_request_path(tmp_path, "/etc//passwd")[0] == 403
    assert resolve_request_path(tmp_path, "etc/passwd")[0] == 403
    # Only media is served (issue 13): the query string is ignored on a media file's path.
    (tmp_path / "etc" / "passwd.png").write_bytes(b"inside")
    assert resolve_request_path(tmp_path, "/etc/passwd?x=1#y")[0] == 404
    assert resolve_request_path(tmp_path, "/etc/passwd.png?x=1#y") == (
        200,
        tmp_path / "etc" / "passwd.png",
    )


def test_only_get_and_head(studio: tuple[Path, str, ProjectView]) -> None:
    root, url, view = studio
    path = urlsplit(media_url(url, root, view.items[0].keyframe or "")).path
    before = Path(view.items[0].keyframe or "").read_bytes()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = request(url, path, method=method)
        assert status == 405 and "GET" in headers["allow"]
    assert Path(view.items[0].keyframe or "").read_bytes() == before


def test_cors_and_host_checks(studio: tuple[Path, str, ProjectView]) -> None:
    root, url, view = studio
    path = urlsplit(media_url(url, root, view.items[0].keyframe or "")).path
    _, headers, _ = request(url, path, headers={"Origin": "http://127.0.0.1:3000"})
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    _, headers, _ = request(url, path, headers={"Origin": "http://localhost:3000"})
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    _, headers, _ = request(url, path, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers
    status, headers, _ = request(
        url, path, method="OPTIONS", headers={"Origin": "http://127.0.0.1:3000"}
    )
    assert status == 204 and "Range" in headers["access-control-allow-headers"]
    status, _, _ = request(url, path, headers={"Host": "evil.example:3031"})
    assert status == 403
    status, _, _ = request(url, path, headers={"Host": "localhost"})
    assert status == 200


def test_storyboard_over_http_links_resolve(studio: tuple[Path, str, ProjectView]) -> None:
    root, url, _ = studio
    page_url = media_url(url, root, root / "projects" / "demo" / STORYBOARD_NAME)
    status, _, body = request(url, urlsplit(page_url).path)
    assert status == 200
    links = media_links(parse(body.decode("utf-8")))
    assert links
    for link in links:
        target = urljoin(page_url, link)
        assert target.startswith(url + "/")
        status, _, _ = request(url, urlsplit(target).path, method="HEAD")
        assert status == 200, link
    status, _, index = request(url, "/")
    assert status == 200 and b'href="projects/demo/storyboard.html"' in index


def test_media_url(tmp_path: Path) -> None:
    assert media_url("http://127.0.0.1:3031/", tmp_path, tmp_path / "projects/a b/k#1.png") == (
        "http://127.0.0.1:3031/projects/a%20b/k%231.png"
    )
    assert media_url("http://h:1", tmp_path, "projects/x.png") == "http://h:1/projects/x.png"
    with pytest.raises(ValueError):
        media_url("http://h:1", tmp_path / "studio", tmp_path / "elsewhere.png")
    with pytest.raises(ValueError):
        media_url("http://h:1", tmp_path, tmp_path)


# --------------------------------------------------------------------------------------------
# the rough cut's player and its chapter marks


def with_every_clip(view: ProjectView, mp4: Path, project: Path) -> ProjectView:
    """``view`` with a 15-frame clip for every sentence (copies of ``mp4``)."""
    items = []
    for it in view.items:
        clip = project / "clips" / f"{it.sentence_id}.mp4"
        if not clip.exists():
            clip.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mp4, clip)
        items.append(it.model_copy(update={"clip": str(clip), "clip_frames": 15}))
    return view.model_copy(update={"items": items})


def test_chapter_starts_are_clips_back_to_back(tmp_path: Path, tiny_mp4: Path) -> None:
    view, project = build_project(tmp_path, 5, mp4=tiny_mp4)
    full = with_every_clip(view, tiny_mp4, project)
    starts = chapter_starts(full.items, full.fps)
    assert starts == {it.sentence_id: 0.5 * n for n, it in enumerate(full.items)}
    # a sentence without any length yet: no rough cut can hold it, so no chapters
    untimed = [
        it.model_copy(update={"clip_frames": None, "narration_ms": None}) for it in view.items
    ]
    assert chapter_starts(untimed, view.fps) is None


def test_rough_cut_player_with_a_mark_per_sentence(tmp_path: Path, tiny_mp4: Path) -> None:
    view, project = build_project(tmp_path, 6, mp4=tiny_mp4)
    full = with_every_clip(view, tiny_mp4, project)
    parsed = parse(write_storyboard(full, project).path.read_text(encoding="utf-8"))
    videos = [a for t, a in parsed.tags if t == "video"]
    player = [a for a in videos if a.get("id") == "roughcut"]
    assert len(player) == 1 and player[0]["src"] == ROUGH_CUT_NAME
    assert player[0].get("preload") == "none" and "controls" in player[0]
    cards = [a for t, a in parsed.tags if t == "article"]
    assert [float(a["data-start"]) for a in cards] == [0.5 * n for n in range(6)]
    marks = [a for t, a in parsed.tags if t == "button" and "mark" in a.get("class", "")]
    assert [float(a["data-start"]) for a in marks] == [0.5 * n for n in range(6)]
    # marks sit at the sentence's share of the 3-second cut
    lefts = [float(re.fullmatch(r"left:([0-9.]+)%", a["style"])[1]) for a in marks]  # type: ignore[index]
    assert lefts == pytest.approx([100 * n / 6 for n in range(6)], abs=1e-3)
    assert all(full.items[n].text in a["title"] for n, a in enumerate(marks))


def test_rough_cut_player_only_when_a_cut_can_exist(tmp_path: Path, tiny_mp4: Path) -> None:
    view, project = build_project(tmp_path, 6, mp4=tiny_mp4)  # sentences 3 and 6 lack a clip
    page = write_storyboard(view, project).path.read_text(encoding="utf-8")
    assert 'id="roughcut"' not in page and "data-start=" not in page
    # an older rough cut on disk is still offered, its marks from the lengths known now
    view = view.model_copy(
        update={"items": [it.model_copy(update={"narration_ms": 300}) for it in view.items]}
    )
    shutil.copyfile(tiny_mp4, project / ROUGH_CUT_NAME)
    parsed = parse(write_storyboard(view, project).path.read_text(encoding="utf-8"))
    assert [a.get("id") for t, a in parsed.tags if t == "video"].count("roughcut") == 1
    starts = [float(a["data-start"]) for t, a in parsed.tags if t == "article"]
    assert starts == sorted(starts) and starts[0] == 0.0 and len(starts) == 6

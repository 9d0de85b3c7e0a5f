"""The storyboard as a creator sees it, in headless Chromium.

Pins: opened straight from disk (``file://``) and over the studio media server (http), the page
renders every shot; each keyframe thumbnail loads once scrolled into view (lazy images,
``naturalWidth > 0``); every narration has an audio player and every clip a video player; the
page makes no request outside its own origin and logs no errors (its content security policy
included); the status filter hides and shows cards; over http the players can load and seek
the media (byte ranges). With a rough cut, clicking a sentence's card (or its chapter mark)
seeks the rough cut's player to that sentence's start and outlines the card playing.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import artifact_path, launch_chromium
from tests.test_storyboard import build_project, make_mp4, with_every_clip
from videogen.media_server import media_url, start_in_thread
from videogen_assets.storyboard import ROUGH_CUT_NAME, STORYBOARD_NAME, write_storyboard
from videogen_domain.models import ProjectView

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COUNT = 10
MISSING_KEYFRAME = {6}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ProjectView, Path]:
    root = tmp_path_factory.mktemp("studio")
    mp4 = make_mp4(tmp_path_factory.mktemp("media") / "clip.mp4", frames=30)
    view, project = build_project(
        root, COUNT, mp4=mp4, keyframe_size=(640, 360), missing_keyframe=MISSING_KEYFRAME
    )
    write_storyboard(view, project)
    return root, view, project


class Watch:
    """What a page requested and complained about."""

    def __init__(self, page: Page) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda req: self.requests.append(req.url))
        page.on(
            "console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None
        )
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))


def check_rendered(page: Page, view: ProjectView) -> None:
    cards = page.locator("article.shot")
    assert cards.count() == len(view.items)
    ids = [cards.nth(i).get_attribute("data-sentence") for i in range(cards.count())]
    assert ids == [it.sentence_id for it in view.items]
    for n, item in enumerate(view.items):
        card = cards.nth(n)
        card.scroll_into_view_if_needed()
        assert card.is_visible()
        assert item.text in card.inner_text()
        img = card.locator("img")
        if item.keyframe:
            assert img.count() == 1
            assert img.get_attribute("loading") == "lazy"
            img.evaluate(
                "el => el.complete && el.naturalWidth > 0 ? null : new Promise((ok, bad) => {"
                " el.addEventListener('load', ok); el.addEventListener('error', bad); })"
            )
            assert img.evaluate("el => el.naturalWidth") > 0, item.sentence_id
        else:
            assert img.count() == 0 and "No keyframe yet" in card.inner_text()
        assert card.locator("audio[controls]").count() == (1 if item.narration else 0)
        assert card.locator("video[controls]").count() == (1 if item.clip else 0)
    # every loaded image really decoded
    broken = page.evaluate(
        "[...document.images].filter(i => i.complete && i.naturalWidth === 0).length"
    )
    assert broken == 0


def check_filter(page: Page, view: ProjectView) -> None:
    page.select_option("#filter", "failed")
    visible = page.locator("article.shot:visible")
    failed = [it.sentence_id for it in view.items if "failed" in it.status.values()]
    assert [visible.nth(i).get_attribute("data-sentence") for i in range(visible.count())] == failed
    assert page.locator("#shown").inner_text() == f"{len(failed)} shown"
    page.select_option("#filter", "all")
    assert page.locator("article.shot:visible").count() == len(view.items)
    page.fill("#search", view.items[4].sentence_id)
    assert page.locator("article.shot:visible").count() == 1
    page.fill("#search", "")


def test_storyboard_from_disk(browser: Browser, studio: tuple[Path, ProjectView, Path]) -> None:
    _, view, project = studio
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    page.goto((project / STORYBOARD_NAME).as_uri())
    assert "Volcanoes <Live> & Loud" in page.title()
    check_rendered(page, view)
    check_filter(page, view)
    page.screenshot(path=str(artifact_path("storyboard_file.png")), full_page=True)
    page.close()

    assert watch.requests and all(url.startswith("file://") for url in watch.requests), [
        url for url in watch.requests if not url.startswith("file://")
    ]
    assert not watch.errors, watch.errors


def test_storyboard_over_media_server(
    browser: Browser, studio: tuple[Path, ProjectView, Path]
) -> None:
    root, view, project = studio
    url, stop = start_in_thread(root, port=0)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = Watch(page)
        page.goto(media_url(url, root, project / STORYBOARD_NAME))
        check_rendered(page, view)
        page.screenshot(path=str(artifact_path("storyboard_http.png")), full_page=False)

        # the narration player loads its WAV and can seek in it (a byte-range request)
        audio = page.locator("audio").first
        audio.scroll_into_view_if_needed()
        duration = audio.evaluate(
            "a => new Promise((ok, bad) => { a.addEventListener('loadedmetadata', () =>"
            " ok(a.duration)); a.addEventListener('error', () => bad(a.error && a.error.code));"
            " a.preload = 'metadata'; a.load(); })"
        )
        assert duration == pytest.approx(0.3, abs=0.05)
        seeked = audio.evaluate(
            "a => new Promise(ok => { a.addEventListener('seeked', () => ok(a.currentTime));"
            " a.currentTime = 0.2; })"
        )
        assert seeked == pytest.approx(0.2, abs=0.05)

        video = page.locator("video").first
        playable = video.evaluate("v => v.canPlayType('video/mp4; codecs=\"avc1.64001e\"')")
        if playable:
            video.scroll_into_view_if_needed()
            frames_s = video.evaluate(
                "v => new Promise((ok, bad) => { v.addEventListener('loadedmetadata', () =>"
                " ok(v.duration)); v.addEventListener('error', () =>"
                " bad(v.error && v.error.code)); v.preload = 'metadata'; v.load(); })"
            )
            assert frames_s == pytest.approx(1.0, abs=0.1)
            video.evaluate(
                "v => new Promise(ok => { v.addEventListener('seeked', ok); v.currentTime = 0.5; })"
            )
        page.close()
    finally:
        stop()

    assert all(u.startswith(url + "/") for u in watch.requests), [
        u for u in watch.requests if not u.startswith(url + "/")
    ]
    assert not watch.errors, watch.errors


SEEK = (
    "v => new Promise(ok => { if (!v.seeking && v.readyState > 0) { ok(v.currentTime); return; }"
    " v.addEventListener('seeked', () => ok(v.currentTime), {once: true}); })"
)


def test_card_click_seeks_the_rough_cut(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("cut_studio")
    media = tmp_path_factory.mktemp("cut_media")
    clip = make_mp4(media / "clip.mp4", frames=15)
    view, project = build_project(root, 6, mp4=clip, keyframe_size=(320, 180))
    view = with_every_clip(view, clip, project)
    make_mp4(project / ROUGH_CUT_NAME, frames=90)  # six 0.5 s clips back to back
    write_storyboard(view, project)
    url, stop = start_in_thread(root, port=0)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = Watch(page)
        page.goto(media_url(url, root, project / STORYBOARD_NAME))
        player = page.locator("video#roughcut")
        assert player.is_visible()
        assert page.locator(".marks .mark").count() == len(view.items)

        card = page.locator("article.shot").nth(3)
        card.scroll_into_view_if_needed()
        card.locator("p.text").click()  # the card, not one of its own players
        assert player.evaluate(SEEK) == pytest.approx(1.5, abs=0.05)
        page.wait_for_function("() => document.querySelectorAll('.shot.playing').length === 1")
        assert "playing" in (card.get_attribute("class") or "")
        assert view.items[3].text in page.locator("#cut-now").inner_text()
        assert player.is_visible()  # the player stays in sight (sticky) while cards scroll
        page.screenshot(path=str(artifact_path("storyboard_rough_cut.png")))

        page.locator(".marks .mark").nth(1).click()
        page.wait_for_function(
            "() => Math.abs(document.getElementById('roughcut').currentTime - 0.5) < 0.05"
        )
        assert player.evaluate(SEEK) == pytest.approx(0.5, abs=0.05)
        page.close()

        # a link to a sentence's card (as the Dagster UI's `storyboard` link) cues it up
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(
            media_url(url, root, project / STORYBOARD_NAME) + f"#shot-{view.items[5].sentence_id}"
        )
        assert page.locator("video#roughcut").evaluate(SEEK) == pytest.approx(2.5, abs=0.05)
        page.close()
    finally:
        stop()
    assert not watch.errors, watch.errors

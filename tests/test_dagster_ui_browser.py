"""The Dagster UI of a studio, through the real webserver and headless Chromium.

Pins: the Dagster webserver started on a studio shows the project's asset group, its assets and
its sentence partitions. A studio with one project (three sentences, synced into a Dagster
instance on a temporary ``DAGSTER_HOME``) is served by ``python -m dagster_webserver -w
workspace.yaml``; the code location loads without an error in the log; its GraphQL API lists
the group ``volcanoes`` with every asset of the project and the three sentence ids as the
partitions of ``volcanoes/narration`` (and of the other per-sentence assets); the group's
lineage page and the narration asset's partitions page render those names in Chromium, with no
uncaught script error.

A project rendered by ``videogen render`` (no UI running), one sentence then edited and
rendered again, another edited and only synced: each sentence asset's partition shows its
sentence (id, words, section), an inline preview 480 pixels wide (never a "[Show Markdown]"
pop-up) and ``watch``/``listen``/``open``/``storyboard`` links that the media server answers;
the rough cut and storyboard show theirs; the Runs page names the sentence of each run over
one sentence; the lineage page's nodes show the ``up_to_date`` checks warning for the stale
sentence and how far partitions are filled, and the check names the sentence by its words.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import httpx
import pytest

from tests.support.browser import artifact_path, launch_chromium, require_chromium
from tests.support.samples import SMALL_SCRIPT
from videogen.media_server import start_in_thread
from videogen.operations import create_project, render, sync
from videogen_assets.dagster_files import DAGSTER_YAML, WORKSPACE_YAML
from videogen_assets.definitions import build_definitions
from videogen_resources.settings import BackendSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LOCATION = "videogen_studio"
PROJECT = "volcanoes"
KINDS = (
    "script",
    "sentence",
    "direction",
    "narration",
    "shot",
    "keyframe",
    "clip",
    "rough_cut",
    "subtitles",
    "storyboard",
    "export",
)
SENTENCE_IDS = [f"{PROJECT}.s000{n}" for n in (1, 2, 3)]
START_TIMEOUT_S = 90.0
PAGE_TIMEOUT_MS = 30_000
SERVICE_VARS = ("COMFYUI_URL", "CHATTERBOX_URL", "DEEPSEEK_API_KEY", "LLM_BASE_URL", "VIDEOGEN_TTS")

LOCATION_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation {
            repositories { name assetGroups { groupName } }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

GROUP_QUERY = """
query ($group: AssetGroupSelector!) {
  assetNodes(group: $group) {
    assetKey { path }
    groupName
    isPartitioned
    partitionKeysByDimension { name partitionKeys }
  }
}
"""


@dataclass(frozen=True)
class Webserver:
    """A running Dagster webserver on a temporary studio."""

    url: str
    log: Path
    studio: Path
    repository: str

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=30.0,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_studio(base: Path) -> tuple[Path, Path]:
    """A studio root with the project ``volcanoes`` and its Dagster home (partitions added)."""
    root = base / "studio"
    root.mkdir()
    home = base / "dagster_home"
    home.mkdir()
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    script = base / "script.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        _, result = create_project(
            root,
            title="How volcanoes work",
            name=PROJECT,
            script_file=script,
            instance=instance,
        )
        assert result is not None and list(result.order) == SENTENCE_IDS
        assert sorted(instance.get_dynamic_partitions(f"{PROJECT}__sentences")) == SENTENCE_IDS
    finally:
        instance.dispose()
    return root, home


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the webserver and the code server it started (its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until_loaded(server: Webserver, proc: subprocess.Popen[bytes]) -> str:
    """Wait for the code location to load; the name of its repository."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the webserver exited ({proc.returncode}):\n{server.log_text()}")
        try:
            if httpx.get(f"{server.url}/server_info", timeout=5.0).status_code == 200:
                data = server.graphql(LOCATION_QUERY)["workspaceOrError"]
                entries = {e["name"]: e for e in data.get("locationEntries", [])}
                entry = entries.get(LOCATION)
                last = repr(entry)
                if entry is not None and entry["loadStatus"] == "LOADED":
                    location = entry["locationOrLoadError"]
                    assert location["__typename"] == "RepositoryLocation", location
                    name: str = location["repositories"][0]["name"]
                    return name
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(
        f"the webserver did not load {LOCATION} in {START_TIMEOUT_S:.0f} s ({last}):\n"
        f"{server.log_text()}"
    )


@contextlib.contextmanager
def serve(
    base: Path, root: Path, home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Webserver]:
    """The Dagster webserver on a studio, its code location loaded; stopped on exit."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update(DAGSTER_HOME=str(home), VIDEOGEN_HOME=str(root), PYTHONUNBUFFERED="1")
    env.update(extra_env or {})
    port = free_port()
    log = base / "webserver.log"
    command = [
        sys.executable,
        "-m",
        "dagster_webserver",
        "-w",
        str(WORKSPACE_YAML),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = Webserver(url=url, log=log, studio=root, repository="")
    try:
        server = Webserver(url, log, root, repository=wait_until_loaded(server, proc))
        # the first visit from localhost opens a "join the community" dialog over the page
        assert server.graphql("mutation { setNuxSeen }")["setNuxSeen"]
        yield server
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    base = tmp_path_factory.mktemp("dagster_ui")
    root, home = make_studio(base)
    with serve(base, root, home) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


def test_graphql_lists_group_assets_and_partitions(webserver: Webserver) -> None:
    workspace = webserver.graphql(LOCATION_QUERY)["workspaceOrError"]
    entry = next(e for e in workspace["locationEntries"] if e["name"] == LOCATION)
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    repos = location["repositories"]
    assert len(repos) == 1, repos
    assert [g["groupName"] for g in repos[0]["assetGroups"]] == [PROJECT]

    selector = {
        "groupName": PROJECT,
        "repositoryName": repos[0]["name"],
        "repositoryLocationName": LOCATION,
    }
    nodes = webserver.graphql(GROUP_QUERY, {"group": selector})["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    missing = {f"{PROJECT}/{kind}" for kind in KINDS} - keys
    assert not missing, (missing, keys)
    assert all(k.startswith(f"{PROJECT}/") for k in keys), keys
    assert {n["groupName"] for n in nodes} == {PROJECT}

    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    narration = by_key[f"{PROJECT}/narration"]
    assert narration["isPartitioned"]
    dims = narration["partitionKeysByDimension"]
    assert len(dims) == 1, dims
    assert dims[0]["partitionKeys"] == SENTENCE_IDS
    for kind in ("sentence", "direction", "shot", "keyframe", "clip"):
        node = by_key[f"{PROJECT}/{kind}"]
        assert node["partitionKeysByDimension"][0]["partitionKeys"] == SENTENCE_IDS, kind

    problems = [
        line
        for line in webserver.log_text().splitlines()
        if re.search(r"\bERROR\b|Traceback", line)
    ]
    assert not problems, "\n".join(problems)


def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A new page at ``url`` and the list its uncaught script errors go to."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="domcontentloaded")
    return page, errors


def wait_for_texts(page: Page, texts: list[str], screenshot: str) -> str:
    """Wait until every text shows on the page, save a screenshot; the page's visible text.

    The screenshot is saved on a timeout too, so a failure shows what the page showed.
    """
    try:
        page.wait_for_function(
            "texts => texts.every(t => document.body && document.body.innerText.includes(t))",
            arg=texts,
            timeout=PAGE_TIMEOUT_MS,
        )
        page.wait_for_load_state("networkidle")  # the last queries answered, the layout settled
    finally:
        page.screenshot(path=str(artifact_path(screenshot)))
    return page.inner_text("body")


def test_ui_shows_asset_group(webserver: Webserver, browser: Browser) -> None:
    repo_path = f"{webserver.repository}@{LOCATION}"
    url = f"{webserver.url}/locations/{repo_path}/asset-groups/{PROJECT}"
    page, errors = open_page(browser, url)
    try:
        text = wait_for_texts(page, ["Asset Group in", *KINDS], "dagster_ui_group.png")
        assert page.get_by_text(PROJECT, exact=True).first.is_visible()
        assert LOCATION in text
        for kind in KINDS:  # one node per asset in the lineage graph
            assert page.get_by_text(kind, exact=True).first.is_visible(), kind
    finally:
        page.close()
    assert not errors, errors


def test_ui_shows_narration_partitions(webserver: Webserver, browser: Browser) -> None:
    url = f"{webserver.url}/assets/{PROJECT}/narration?view=partitions"
    page, errors = open_page(browser, url)
    try:
        text = wait_for_texts(page, SENTENCE_IDS, "dagster_ui_partitions.png")
        assert page.get_by_text("narration", exact=True).first.is_visible()
        for sid in SENTENCE_IDS:
            assert page.get_by_text(sid, exact=True).first.is_visible(), sid
        assert "Missing (3)" in text  # nothing rendered yet: all three partitions missing
    finally:
        page.close()
    assert not errors, errors


# --------------------------------------------------------------------------------------------
# a rendered project: what the creator watches in the UI


EDITED = ("Ash falls like grey snow.", "Ash falls like soft grey snow.")
STALE = ("Life returns to the slopes.", "Life slowly returns to the green slopes.")
EDITED_LABEL = 's0002 · "Ash falls like soft grey snow."'
FIRST_LABEL = 's0001 · "The sky over the volcano glows red."'


@dataclass(frozen=True)
class Rendered:
    """A webserver on a rendered studio, and its media server's URL."""

    server: Webserver
    media: str


def edit_script(root: Path, old: str, new: str) -> None:
    script = root / "projects" / PROJECT / "script.md"
    text = script.read_text(encoding="utf-8")
    assert old in text
    script.write_text(text.replace(old, new), encoding="utf-8")


def progress_tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """One tick of the progress sensor, as the daemon runs it."""
    repo = defs.get_repository_def()
    with dg.build_sensor_context(
        instance=instance, repository_def=repo, resources=defs.resources
    ) as ctx:
        repo.get_sensor_def("progress")(ctx)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """Rendered by `videogen render` (no UI running), then one sentence edited and rendered
    again (runs over one sentence), then another edited and only synced (stale)."""
    base = tmp_path_factory.mktemp("dagster_ui_rendered")
    root, home = make_studio(base)
    media, stop_media = start_in_thread(root, port=0)
    try:
        settings = BackendSettings(clip_preset="ultrafast", media_base_url=media)
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            render(root, PROJECT, instance=instance, settings=settings)
            edit_script(root, *EDITED)
            render(root, PROJECT, instance=instance, settings=settings)
            edit_script(root, *STALE)
            sync(root, PROJECT, instance=instance)
            progress_tick(build_definitions(root, settings), instance)
        finally:
            instance.dispose()
        with serve(base, root, home, {"VIDEOGEN_MEDIA_URL": media}) as server:
            yield Rendered(server, media)
    finally:
        stop_media()


def media_links(page: Page, media: str) -> dict[str, str]:
    """The metadata table's links into the media server, by their row's label."""
    rows: list[list[str]] = page.evaluate(
        """media => [...document.querySelectorAll('tr')].map(tr => {
            const cells = [...tr.querySelectorAll('td')];  // the key, then its value
            const a = cells.slice(1).map(c => c.querySelector('a[href]')).find(Boolean);
            return a && a.href.startsWith(media) ? [cells[0].innerText.trim(), a.href] : null;
        }).filter(Boolean)""",
        media,
    )
    return dict((label, href) for label, href in rows)


def inline_previews(page: Page, media: str) -> list[dict[str, Any]]:
    """The media server's pictures on the page, as laid out."""
    found: list[dict[str, Any]] = page.evaluate(
        """media => [...document.images].filter(i => i.src.startsWith(media)).map(i => ({
            src: i.src, natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
            complete: i.complete, link: i.closest('a') ? i.closest('a').href : null}))""",
        media,
    )
    return found


def assert_served(url: str, content_type: str) -> None:
    response = httpx.get(url, timeout=10.0)
    assert response.status_code == 200, url
    assert response.headers["content-type"].startswith(content_type), (url, response.headers)


@pytest.mark.parametrize(
    ("kind", "picture"),
    [
        ("narration", "narration.png"),
        ("keyframe", "keyframe.jpg"),
        ("clip", "clip.jpg"),
    ],
)
def test_ui_shows_a_sentence_preview_links_and_words(
    rendered: Rendered, browser: Browser, kind: str, picture: str
) -> None:
    sid = SENTENCE_IDS[0]
    url = f"{rendered.server.url}/assets/{PROJECT}/{kind}?view=partitions&partition={sid}"
    page, errors = open_page(browser, url)
    try:
        text = wait_for_texts(
            page, [FIRST_LABEL, "preview", "watch", "listen"], f"dagster_ui_{kind}_partition.png"
        )
        assert "Opening" in text  # the section
        page.wait_for_function(
            "media => [...document.images].some(i => i.src.startsWith(media) && i.complete"
            " && i.naturalWidth > 0)",
            arg=rendered.media,
        )
        folder = f"{rendered.media}/projects/{PROJECT}/sentences/{sid}"
        previews = inline_previews(page, rendered.media)
        small = f"{rendered.media}/projects/{PROJECT}/preview/{sid}/{picture}"
        assert [p["src"] for p in previews] == [small], previews
        shown = previews[0]
        # inline, small, inside its column: not a pop-up, not a 1920-pixel frame
        assert shown["natural"] == 480 and 0 < shown["shown"] <= 480, shown
        assert "[Show Markdown]" not in text
        links = media_links(page, rendered.media)
        assert links["watch"] == f"{folder}/clip.mp4"
        assert links["listen"] == f"{folder}/narration.wav"
        assert links["open"] == f"{folder}/keyframe.png"
        assert links["storyboard"] == (
            f"{rendered.media}/projects/{PROJECT}/storyboard.html#shot-{sid}"
        )
        assert_served(links["watch"], "video/mp4")
        assert_served(links["listen"], "audio/")
        assert_served(links["open"], "image/png")
        assert_served(links["storyboard"].split("#")[0], "text/html")
    finally:
        page.close()
    assert not errors, errors


@pytest.mark.parametrize(
    ("kind", "picture", "watch"),
    [
        ("rough_cut", "preview/rough_cut.jpg", "rough_cut.mp4"),
        ("storyboard", "preview/storyboard.jpg", "rough_cut.mp4"),
    ],
)
def test_ui_shows_the_rough_cut_and_storyboard(
    rendered: Rendered, browser: Browser, kind: str, picture: str, watch: str
) -> None:
    page, errors = open_page(browser, f"{rendered.server.url}/assets/{PROJECT}/{kind}")
    try:
        wait_for_texts(page, ["preview", "watch"], f"dagster_ui_{kind}.png")
        page.wait_for_function(
            "media => [...document.images].some(i => i.src.startsWith(media) && i.complete"
            " && i.naturalWidth > 0)",
            arg=rendered.media,
        )
        folder = f"{rendered.media}/projects/{PROJECT}"
        previews = inline_previews(page, rendered.media)
        assert [p["src"] for p in previews] == [f"{folder}/{picture}"], previews
        assert previews[0]["natural"] == 480 and 0 < previews[0]["shown"] <= 480
        links = media_links(page, rendered.media)
        assert links["watch"] == f"{folder}/{watch}"
        assert_served(links["watch"], "video/mp4")
        board = links.get("storyboard") or links["open"]
        assert board.split("#")[0] == f"{folder}/storyboard.html"
        assert_served(board.split("#")[0], "text/html")
    finally:
        page.close()
    assert not errors, errors


def test_ui_runs_name_their_sentence(rendered: Rendered, browser: Browser) -> None:
    page, errors = open_page(browser, f"{rendered.server.url}/runs")
    try:
        text = wait_for_texts(page, [f"videogen/sentence: {EDITED_LABEL}"], "dagster_ui_runs.png")
        # the edited sentence was rendered again in one run per asset, each naming it
        assert text.count(f"videogen/sentence: {EDITED_LABEL}") == 4
        assert "videogen/section: Opening" in text
    finally:
        page.close()
    assert not errors, errors


def test_ui_lineage_shows_stale_and_progress(rendered: Rendered, browser: Browser) -> None:
    """The group's lineage page: each per-sentence node's ``up_to_date`` check warns while a
    sentence is stale, and the nodes show how far their partitions are filled."""
    repo_path = f"{rendered.server.repository}@{LOCATION}"
    url = f"{rendered.server.url}/locations/{repo_path}/asset-groups/{PROJECT}"
    page, errors = open_page(browser, url)
    page.set_viewport_size({"width": 1600, "height": 1000})
    try:
        wait_for_texts(page, ["narration", "clip"], "dagster_ui_lineage_overview.png")
        zoom_in = page.locator("button:has([aria-label=zoom_in])")
        for _ in range(3):  # close enough for the nodes to show their details
            zoom_in.click()
            page.wait_for_timeout(300)
        # narration and shot: the stale sentence's check warns; clip still passes
        text = wait_for_texts(
            page, ["Asset checks", "0 / 1 Passed", "2 / 2 Passed", "100% filled"], "lineage.png"
        )  # (the README's picture, docs/img/lineage.png, is this screenshot)
        assert text.count("1 / 2 Passed") >= 2, text  # narration (audible passes) and rough_cut
    finally:
        page.close()
    assert not errors, errors

    # the check's own page says what is stale, by the sentence's words
    page, errors = open_page(browser, f"{rendered.server.url}/assets/{PROJECT}/shot?view=checks")
    try:
        page.get_by_text("up_to_date", exact=True).first.click()
        text = wait_for_texts(
            page, ["2/3 sentences current · 1 stale", "s0003 · "], "dagster_ui_check.png"
        )
        assert 's0003 · "Life slowly returns to the green slopes."' in text
    finally:
        page.close()
    assert not errors, errors

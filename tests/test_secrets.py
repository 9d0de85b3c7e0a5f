"""Contract: the LLM's API key, read only from the environment, is written nowhere.

The `videogen` command runs with DEEPSEEK_API_KEY set to a unique secret against the
OpenAI-compatible test server: the LLM writes the script, a render fails once on a 401 whose
message repeats the key (as some servers do), then a render and a zipped export succeed. Every
byte under the studio folder and the Dagster home (SQLite databases and their WAL files, event
logs, compute logs, exports, zip members decompressed) and everything the commands printed is
then searched for the secret: it appears nowhere, although the server did receive it.
"""

from __future__ import annotations

import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crash import studio_env, videogen_cmd
from tests.support.servers.llm import OpenAICompatServer
from tests.support.servers.tts import Fault

pytestmark = pytest.mark.slow  # renders and exports in `videogen` subprocesses

SECRET = f"sk-{uuid.uuid4().hex}"


@pytest.fixture
def llm() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer(api_key=SECRET) as server:
        yield server


def _places_holding(secret: bytes, folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if secret in data:
            found.append(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [
                    f"{path}!{name}" for name in archive.namelist() if secret in archive.read(name)
                ]
    return found


def test_the_api_key_is_written_nowhere(tmp_path: Path, llm: OpenAICompatServer) -> None:
    root, home = tmp_path / "studio", tmp_path / "dagster_home"
    home.mkdir()
    env = studio_env(root, home, DEEPSEEK_API_KEY=SECRET, LLM_BASE_URL=llm.url + "/v1")
    printed: list[str] = []

    def videogen(*args: str, ok: bool = True) -> None:
        proc = subprocess.run(
            videogen_cmd(root, *args), env=env, capture_output=True, text=True, timeout=180
        )
        printed.extend((proc.stdout, proc.stderr))
        assert (proc.returncode == 0) == ok, (
            args,
            proc.stderr[-3000:],
            [r.path for r in llm.requests],
        )

    videogen("new", "How tides work", "--name", "tides", "--minutes", "0.1")
    videogen("script", "tides")
    # the shot request: a 401 that repeats the key
    llm.queue(Fault(kind="echo_key", path="/v1/chat/completions"))
    videogen("render", "tides", ok=False)
    assert any("Authentication Fails" in text for text in printed)
    videogen("render", "tides")
    videogen("export", "tides", "--zip")

    folder = root / "projects" / "tides"
    assert (folder / "rough_cut.mp4").is_file()
    assert any((root / "exports").rglob("*.zip"))
    sent = [r.header("Authorization") for r in llm.requests_to("/v1/chat/completions")]
    assert len(sent) >= 3 and set(sent) == {f"Bearer {SECRET}"}

    assert _places_holding(SECRET.encode(), tmp_path) == []
    assert [text for text in printed if SECRET in text] == []

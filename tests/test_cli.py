"""The `videogen` command line: new/list/show/status/export on a temporary studio; bad input
exits 2 with one clear message and creates nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.samples import SMALL_SCRIPT
from videogen.cli import main


@pytest.fixture
def cli(studio_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["--home", str(studio_root), *args], catch_exceptions=False)
        return result.exit_code, result.output

    return run


@pytest.mark.slow
def test_new_list_show_json(cli, tmp_path: Path, studio_root: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    code, out = cli(
        "new",
        "How volcanoes work",
        "--minutes",
        "3",
        "--style",
        "cinematic",
        "--script",
        str(script),
    )
    assert code == 0, out
    assert "3 sentences" in out
    code, out = cli("list")
    assert code == 0 and out.startswith("how_volcanoes_work\tHow volcanoes work\t3 min\tcinematic")
    code, out = cli("show", "how_volcanoes_work", "--json")
    assert code == 0, out
    data = json.loads(out[out.index("{") :])
    assert [s["id"] for s in data["sentences"]] == [
        "how_volcanoes_work.s0001",
        "how_volcanoes_work.s0002",
        "how_volcanoes_work.s0003",
    ]
    first = data["sentences"][0]
    assert first["section"] == "Opening" and first["order"] == 0
    assert first["text"] == "The sky over the volcano glows red."
    assert first["status"] == dict.fromkeys(("narration", "shot", "keyframe", "clip"), "missing")
    assert data["sentences"][1]["directives"] == {
        "camera": "zoom-in",
        "motion": 0.7,
        "characters": [],
    }

    # show reflects script.md as last saved
    (studio_root / "projects" / "how_volcanoes_work" / "script.md").write_text(
        SMALL_SCRIPT + "A brand new closing sentence.\n", encoding="utf-8"
    )
    code, out = cli("show", "how_volcanoes_work", "--json")
    data = json.loads(out[out.index("{") :])
    assert data["sentences"][-1]["id"] == "how_volcanoes_work.s0004"


@pytest.mark.slow
def test_bad_input_exits_2_and_creates_nothing(cli, studio_root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = cli("new", "Too long", "--minutes", "90")
    assert code == 2 and "minutes" in out
    bad = tmp_path / "bad.md"
    bad.write_text("# A\nFine.\n> camera: sideways\n", encoding="utf-8")
    code, out = cli("new", "Bad script", "--script", str(bad))
    assert code == 2 and f"{bad}:3: camera:" in out
    code, out = cli("show", "nope")
    assert code == 2 and "no project named 'nope'" in out
    assert (
        not any((studio_root / "projects").glob("*"))
        if (studio_root / "projects").exists()
        else True
    )


@pytest.mark.slow
def test_partial_export_zip(cli, tmp_path: Path, studio_root: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    assert cli("new", "Tides", "--script", str(script))[0] == 0
    code, out = cli("export", "tides")
    assert code == 2 and "tides.s0001" in out  # nothing rendered yet: refused, naming a sentence
    code, out = cli("export", "tides", "--partial", "--zip")
    assert code == 2 and "nothing to export yet" in out
    assert not (studio_root / "exports" / "tides.zip").exists()


@pytest.mark.slow
def test_export_zip_after_render(cli, tmp_path: Path, studio_root: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "s.md"
    script.write_text("# One\nA single short line.\n", encoding="utf-8")
    assert cli("new", "Tides", "--script", str(script))[0] == 0
    code, out = cli("render", "tides")
    assert code == 0, out
    code, out = cli("export", "tides", "--zip")
    assert code == 0, out
    with zipfile.ZipFile(studio_root / "exports" / "tides.zip") as zf:
        names = {Path(n).name for n in zf.namelist()}
    assert {
        "metadata.json",
        "timeline.fcpxml",
        "timeline.xml",
        "timeline.edl",
        "timeline.otio",
        "001_one_clip.mp4",
        "001_one_narration.wav",
    } <= names


@pytest.mark.slow
def test_failed_render_is_one_line_with_the_server_message(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from tests.support.servers.tts import ChatterboxServer, Fault

    script = tmp_path / "s.md"
    script.write_text("# One\nA single short line.\n", encoding="utf-8")
    assert cli("new", "Tides", "--script", str(script))[0] == 0
    with ChatterboxServer(flavour="openai") as server:
        for _ in range(4):
            server.queue(Fault(kind="400", path="/v1/audio/speech"))
        monkeypatch.setenv("CHATTERBOX_URL", server.url)
        code, out = cli("render", "tides")
    assert code == 1
    assert "error: " in out and "Maximum 3000 characters" in out
    assert "Traceback" not in out


@pytest.mark.slow
def test_help_loads_no_dagster(tmp_path: Path) -> None:
    """`videogen --help` lists every command (the character and workflow ones too) without
    loading Dagster, SQLAlchemy or the HTTP client: the commands that need them load them."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from videogen.cli import main\n"
        "out = CliRunner().invoke(main, ['--help']).output\n"
        "assert 'character' in out and 'workflows' in out and 'status' in out, out\n"
        "print(sorted(m for m in ('dagster', 'sqlalchemy', 'httpx') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "[]", done.stderr

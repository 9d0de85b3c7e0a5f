"""The bad-input corpus (``tests/bad_inputs/cases.yaml``), one test per case.

The contract: every bad input -- a script, a project brief, a workflow or its binding, an output
file name a ComfyUI server sends, a TTS answer that is not audio, an LLM reply that is not the
promised JSON -- gives one clear error of the documented class, naming the file, the line and the
field where they apply, and changes nothing: for scripts and briefs the project's files, the
studio database and the Dagster partitions are exactly as they were before the failed sync.
Inputs that look unusual but are fine (right-to-left text, emoji, a byte-order mark) are accepted.

The command-line cases (kinds ``cli``, ``media_server``, ``signal``, ``concurrent``) pin the rule
of every ``videogen`` command: on any input (names, kinds of file, sizes, signals, concurrent
commands, configuration, requests to the media server) it either works or prints exactly one
line ``error: ...`` and exits non-zero, without a traceback, and no file of the studio that
existed before (the creator's script, the media, a file in the export folder) is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from tests.support.servers.llm import OpenAICompatServer
from tests.support.servers.tts import ChatterboxServer
from videogen.cli import main as videogen_main
from videogen.operations import create_project, sync
from videogen_assets.partitions import partitions_name
from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_domain.script import MAX_SCRIPT_BYTES, read_script
from videogen_resources.audio import decode_wav
from videogen_resources.base import SpeechJob
from videogen_resources.chatterbox import ChatterboxNarrator
from videogen_resources.comfyui import ComfyUIResource, sanitize_filename
from videogen_resources.errors import ServiceError
from videogen_resources.llm import LLMResource
from videogen_resources.workflows import WorkflowError, load_workflow_files, parse_api_workflow

CORPUS = Path(__file__).parent / "bad_inputs"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
ERRORS: dict[str, type[Exception]] = {
    "InputError": InputError,
    "WorkflowError": WorkflowError,
    "ServiceError": ServiceError,
    "ValueError": ValueError,
}
KINDS = {
    "script",
    "project",
    "workflow",
    "binding",
    "comfyui_output_name",
    "tts_response",
    "llm_reply",
    "cli",
    "media_server",
    "signal",
    "concurrent",
}
COMMAND_KINDS = {"cli", "media_server", "signal", "concurrent"}
"""Kinds whose expectation is an exit status and stderr line (or an HTTP status), not a class."""
GOOD_SCRIPT = "# Volcanoes\nMagma rises slowly.\n> camera: tilt-up\n\n## The eruption\nIt erupts!\n"
GOOD_BRIEF_NAME = "volcanoes"
SMALL_WORKFLOW = (
    '{"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512,'
    ' "batch_size": 1}},'
    ' "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}'
)
JSON_PROMPT = [
    {"role": "system", "content": 'Reply in json like {"ok": true}.'},
    {"role": "user", "content": "Are you there?"},
]


class Answer(BaseModel):
    ok: bool


def case_bytes(case: dict[str, Any]) -> bytes:
    """The input of a case as bytes: inline text, a file of the corpus, or generated."""
    if "file" in case:
        return (CORPUS / case["file"]).read_bytes()
    if "generate" in case:
        g = case["generate"]
        text = g.get("prefix", "") + g["repeat"] * int(g["times"]) + g.get("suffix", "")
        return text.encode("utf-8")
    if "input_hex" in case:
        return bytes.fromhex(case["input_hex"])
    return str(case.get("input", "")).encode("utf-8")


def check_error(exc: BaseException, case: dict[str, Any], file: Path | None = None) -> None:
    """The error is of the case's class and names its field, line, message (and file)."""
    assert isinstance(exc, ERRORS[case["error"]]), repr(exc)
    assert case["message"] in str(exc), f"{case['message']!r} not in {str(exc)!r}"
    if isinstance(exc, InputError):
        if "field" in case:
            assert exc.field == str(case["field"]), (exc.field, str(exc))
        if "line" in case:
            assert exc.line == case["line"], (exc.line, str(exc))
        if file is not None:
            assert exc.file is not None and Path(exc.file).name == file.name, exc.file
            assert file.name in str(exc)


# -- the corpus itself -------------------------------------------------------------------------


def test_the_corpus_is_well_formed() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 30
    assert len([c for c in CASES if c["kind"] in COMMAND_KINDS]) >= 40
    for case in CASES:
        assert case["kind"] in KINDS, case["id"]
        if case["kind"] in COMMAND_KINDS:
            assert "rc" in case or "status" in case or "outcomes" in case, case["id"]
            assert case.get("what"), case["id"]
            if case.get("rc", 0) != 0 and not case.get("debug"):
                assert "stderr" in case, f"{case['id']}: a failure must pin its one line"
            continue
        assert case["error"] == "ok" or case["error"] in ERRORS, case["id"]
        assert case["error"] == "ok" or case.get("message"), case["id"]
    covered = {c["kind"] for c in CASES}
    assert covered == KINDS
    assert any(c["error"] == "ok" for c in CASES if c["kind"] == "script")


def cases_of(*kinds: str) -> list[Any]:
    params = []
    for c in CASES:
        if c["kind"] in kinds:
            marks = []
            if c.get("known_bug"):
                marks.append(pytest.mark.xfail(strict=True, reason=c["known_bug"]))
            params.append(pytest.param(c, id=c["id"], marks=marks))
    return params


# -- script.md and project.yaml: the error, and nothing changed ----------------------------------


def snapshot(root: Path, instance: dg.DagsterInstance) -> dict[str, Any]:
    """Every file of the studio (the database as its SQL dump) and the project's partitions."""
    files: dict[str, bytes] = {}
    db_names = {paths.DATABASE_FILE + s for s in ("", "-wal", "-shm", "-journal")}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in db_names:
            files[p.relative_to(root).as_posix()] = p.read_bytes()
    uri = paths.database_path(root).as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        dump = list(conn.iterdump())
    conn.close()
    keys = instance.get_dynamic_partitions(partitions_name(GOOD_BRIEF_NAME))
    return {"files": files, "db": dump, "partitions": keys}


@pytest.fixture(scope="module")
def project_template(tmp_path_factory: pytest.TempPathFactory, empty_instance_home: Path) -> Path:
    """A studio with a synced project of a good script and its instance, made once per module
    (creating a project costs seconds; each test works on a copy)."""
    base = tmp_path_factory.mktemp("bad_inputs_project")
    root, home = base / "studio", base / "dagster_home"
    root.mkdir()
    shutil.copytree(empty_instance_home, home)
    script = base / "good.md"
    script.write_text(GOOD_SCRIPT, encoding="utf-8")
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        _, result = create_project(
            root, title="Volcanoes", name=GOOD_BRIEF_NAME, script_file=script, instance=inst
        )
    assert result is not None and len(result.order) == 2
    return base


@pytest.fixture
def instance(
    tmp_path: Path, project_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """This module's instance: a copy of the template's, which holds the good project."""
    home = tmp_path / "dagster_home"
    shutil.copytree(project_template / "dagster_home", home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def project(studio_root: Path, project_template: Path, instance: dg.DagsterInstance) -> Path:
    """A synced project with a good script, ready to receive a bad edit."""
    shutil.copytree(project_template / "studio", studio_root, dirs_exist_ok=True)
    folder = paths.project_dir(studio_root, GOOD_BRIEF_NAME)
    assert len(instance.get_dynamic_partitions(partitions_name(GOOD_BRIEF_NAME))) == 2
    return folder


@pytest.mark.parametrize("case", cases_of("script"))
def test_script(
    case: dict[str, Any], project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    data = case_bytes(case)
    target = project / paths.SCRIPT_FILE
    if case["error"] == "ok":
        target.write_bytes(data)
        parsed = read_script(target)
        assert [s.text for s in parsed.sentences] == case["sentences"]
        assert parsed.sections == case["sections"]
        result = sync(studio_root, GOOD_BRIEF_NAME, instance=instance)
        assert len(result.order) == len(case["sentences"])
        return
    before = snapshot(studio_root, instance)
    target.write_bytes(data)
    with pytest.raises(InputError) as info:
        sync(studio_root, GOOD_BRIEF_NAME, instance=instance)
    check_error(info.value, case, file=target)
    after = snapshot(studio_root, instance)
    expected_files = dict(before["files"])
    expected_files[f"projects/{GOOD_BRIEF_NAME}/{paths.SCRIPT_FILE}"] = data
    assert after["files"] == expected_files
    assert after["db"] == before["db"]
    assert after["partitions"] == before["partitions"]


@pytest.mark.parametrize("case", cases_of("project"))
def test_project(
    case: dict[str, Any], project: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    before = snapshot(studio_root, instance)
    if "create" in case:
        with pytest.raises(InputError) as info:
            create_project(studio_root, instance=instance, **case["create"])
        check_error(info.value, case)
        assert snapshot(studio_root, instance) == before
        return
    data = case_bytes(case)
    target = project / paths.PROJECT_FILE
    target.write_bytes(data)
    # A script edit waits too: the brief is read first, and a bad brief must stop the sync.
    (project / paths.SCRIPT_FILE).write_text(GOOD_SCRIPT + "A new sentence.\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        sync(studio_root, GOOD_BRIEF_NAME, instance=instance)
    check_error(info.value, case, file=target)
    after = snapshot(studio_root, instance)
    prefix = f"projects/{GOOD_BRIEF_NAME}/"
    expected_files = dict(before["files"])
    expected_files[prefix + paths.PROJECT_FILE] = data
    expected_files[prefix + paths.SCRIPT_FILE] = (GOOD_SCRIPT + "A new sentence.\n").encode()
    assert after["files"] == expected_files
    assert after["db"] == before["db"]
    assert after["partitions"] == before["partitions"]


# -- workflows and bindings ---------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("workflow"))
def test_workflow(case: dict[str, Any], tmp_path: Path) -> None:
    data = case_bytes(case)
    with pytest.raises(WorkflowError) as info:
        parse_api_workflow(data, "case.json")
    check_error(info.value, case, file=Path("case.json"))
    # The same file through the loader: the same error, naming the workflow file.
    wf, binding = tmp_path / "case.json", tmp_path / "case.binding.yaml"
    wf.write_bytes(data)
    binding.write_text("output_node: 2\n", encoding="utf-8")
    with pytest.raises(WorkflowError) as again:
        load_workflow_files(wf, binding)
    check_error(again.value, case, file=wf)


@pytest.mark.parametrize("case", cases_of("binding"))
def test_binding(case: dict[str, Any], tmp_path: Path) -> None:
    wf, binding = tmp_path / "case.json", tmp_path / "case.binding.yaml"
    wf.write_text(case.get("workflow", SMALL_WORKFLOW), encoding="utf-8")
    binding.write_bytes(case_bytes(case))
    with pytest.raises(WorkflowError) as info:
        load_workflow_files(wf, binding)
    check_error(info.value, case, file=binding)


def test_the_binding_cases_fail_only_because_of_the_binding(tmp_path: Path) -> None:
    wf, binding = tmp_path / "case.json", tmp_path / "case.binding.yaml"
    wf.write_text(SMALL_WORKFLOW, encoding="utf-8")
    binding.write_text("output_node: 2\nslots:\n  width: {node: 1, input: width}\n")
    workflow = load_workflow_files(wf, binding)
    assert workflow.output_node == "2" and workflow.has_slot("width")


# -- output file names from a ComfyUI server ----------------------------------------------------


@pytest.mark.parametrize("case", cases_of("comfyui_output_name"))
def test_comfyui_output_name(case: dict[str, Any], tmp_path: Path) -> None:
    name = str(case["input"])
    if case["error"] == "ok":
        assert sanitize_filename(name) == case["name"]
        return
    with pytest.raises(ValueError):
        sanitize_filename(name)
    # download() refuses it before any request: the port below has no server behind it.
    client = ComfyUIResource(urls=["http://127.0.0.1:9"], max_retries=0)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ServiceError) as info:
        client.download(name, "", "output", dest)
    check_error(info.value, case)
    assert list(tmp_path.rglob("*")) == [dest]


# -- answers of services ------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("tts_response"))
def test_tts_response(case: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "narration.wav"
    if "fault" not in case:
        # speak() turns what decode_wav refuses (ValueError) into a ServiceError quoting it.
        with pytest.raises(Exception) as raw:
            decode_wav(case_bytes(case))
        check_error(raw.value, case)
        return
    with ChatterboxServer("openai") as server:
        server.queue(case["fault"])
        tts = ChatterboxNarrator(base_url=server.url, api="openai", backoff_s=0.01, max_retries=0)
        with pytest.raises(ServiceError) as info:
            tts.speak(SpeechJob(text="Magma rises slowly.", out_path=out))
    check_error(info.value, case)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", cases_of("llm_reply"))
def test_llm_reply(case: dict[str, Any]) -> None:
    with OpenAICompatServer() as server:
        server.queue(*case["faults"])
        llm = LLMResource(base_url=server.url, api_key="sk-test", backoff_s=0.01, timeout_s=5.0)
        with pytest.raises(ServiceError) as info:
            llm.chat_json(JSON_PROMPT, schema=Answer)
    check_error(info.value, case)


# -- the videogen command: one line, a non-zero exit, nothing lost -------------------------------

SERVICE_VARS = (
    "COMFYUI_URL",
    "CHATTERBOX_URL",
    "CHATTERBOX_API",
    "DEEPSEEK_API_KEY",
    "LLM_API_KEY",
    "LLM_BASE_URL",
    "VIDEOGEN_TTS",
    "VIDEOGEN_VOICE",
    "VIDEOGEN_EXECUTOR",
    "VIDEOGEN_DEBUG",
)
UNTRACKED = {".dagster", "logs", paths.DATABASE_FILE}
"""What a command may change: the Dagster instance, the log and the database (checked by the
script and project cases above); every other file of the studio must stay byte for byte."""


@dataclass
class CliStudio:
    """A studio with one synced project, its media (stand-ins) and a creator's own files."""

    root: Path
    tmp: Path
    project: Path
    sentence_ids: list[str]
    holders: list[Any] = field(default_factory=list)

    def fill(self, text: str, extra: dict[str, str]) -> str:
        values = {
            "studio": str(self.root),
            "tmp": str(self.tmp),
            "project": str(self.project),
            "s1": self.sentence_ids[0],
            **extra,
        }
        for k, v in values.items():
            text = text.replace("{" + k + "}", v)
        return text


def media_checksums(root: Path) -> dict[str, str]:
    """sha256 of every file of the studio but the instance, the log and the database."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] in UNTRACKED or rel.name.startswith(paths.DATABASE_FILE):
            continue
        if p.is_file() and not p.is_symlink():
            out[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The studio the command-line cases start from, made once per module: a synced project,
    media files, the storyboard, a creator's notes and a file of theirs in the export folder."""
    base = tmp_path_factory.mktemp("bad_inputs_cli")
    root, home = base / "studio", base / "dagster_home"
    root.mkdir()
    home.mkdir()
    script = base / "good.md"
    script.write_text(GOOD_SCRIPT, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:  # the instance `videogen` opens on that home
        mp.setenv("DAGSTER_HOME", str(home))
        instance = dg.DagsterInstance.get()
        try:
            folder, result = create_project(
                root, title="Volcanoes", name=GOOD_BRIEF_NAME, script_file=script, instance=instance
            )
        finally:
            instance.dispose()
    assert result is not None
    for n, sid in enumerate(result.order):
        d = folder / "sentences" / sid
        d.mkdir(parents=True)
        (d / "narration.wav").write_bytes(b"RIFF" + bytes([n]) * 4000)
        (d / "keyframe.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([n]) * 3000)
        (d / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes([n]) * 5000)
        (d / "shot.json").write_text('{"image_prompt": "secret prompt"}', encoding="utf-8")
    (folder / "storyboard.html").write_text("<html>storyboard</html>", encoding="utf-8")
    (folder / "notes.txt").write_text("my private notes", encoding="utf-8")
    exports = root / "exports" / GOOD_BRIEF_NAME
    exports.mkdir(parents=True)
    (exports / "my_grade.drp").write_bytes(b"a creator's own file in the export folder")
    return base, list(result.order)


@pytest.fixture
def cli_studio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_template: tuple[Path, list[str]]
) -> Iterator[CliStudio]:
    template, sentence_ids = cli_template
    root, home = tmp_path / "studio", tmp_path / "dagster_home"
    shutil.copytree(template / "studio", root, symlinks=True)
    shutil.copytree(template / "dagster_home", home, symlinks=True)
    (tmp_path / "good.md").write_text(GOOD_SCRIPT, encoding="utf-8")  # cases name {tmp}/good.md
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("VIDEOGEN_HOME", str(root))
    for var in SERVICE_VARS:
        monkeypatch.delenv(var, raising=False)
    st = CliStudio(
        root=root,
        tmp=tmp_path,
        project=paths.project_dir(root, GOOD_BRIEF_NAME),
        sentence_ids=sentence_ids,
    )
    yield st
    for holder in st.holders:
        holder.close()


def _free_port_in_use(st: CliStudio) -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    st.holders.append(sock)
    return str(sock.getsockname()[1])


def _closed_port() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return str(port)


def _replace_with_fifo(path: Path) -> None:
    if path.exists():
        path.unlink()
    os.mkfifo(path)


def prepare(st: CliStudio, case: dict[str, Any]) -> dict[str, str]:
    """Run a case's setup steps; return the extra placeholders they define."""
    from videogen_store import characters as lib

    extra: dict[str, str] = {}
    for step in case.get("setup", []):
        if step == "dir":
            (st.tmp / "dir.md").mkdir()
        elif step == "fifo":
            os.mkfifo(st.tmp / "fifo.md")
        elif step == "script_is_dir":
            (st.project / paths.SCRIPT_FILE).unlink()
            (st.project / paths.SCRIPT_FILE).mkdir()
        elif step == "script_is_fifo":
            _replace_with_fifo(st.project / paths.SCRIPT_FILE)
        elif step in ("broken_yaml_dir", "broken_yaml_fifo", "broken_yaml_malformed"):
            broken = st.root / "projects" / "broken"
            broken.mkdir()
            target = broken / paths.PROJECT_FILE
            if step == "broken_yaml_dir":
                target.mkdir()
            elif step == "broken_yaml_fifo":
                os.mkfifo(target)
            else:
                target.write_text("name: broken\ntitle: [\n", encoding="utf-8")
        elif step == "newline_project":
            odd = st.root / "projects" / "pnl\n"
            odd.mkdir()
            (odd / paths.PROJECT_FILE).write_text('name: "pnl\\n"\ntitle: P\n', encoding="utf-8")
        elif step == "ada":
            lib.add_character(st.root, name="Ada", description="a volcanologist")
        elif step == "home_file":
            (st.tmp / "homefile").write_text("not a folder", encoding="utf-8")
        elif step == "busy_port":
            extra["port"] = _free_port_in_use(st)
        elif step == "closed_port":
            extra["port"] = _closed_port()
        elif step == "free_port":  # so that a server on a default port cannot change the case
            extra["free"] = _closed_port()
        elif step == "big_script":
            big = "Magma rises. " * (MAX_SCRIPT_BYTES // 13 + 1)
            (st.tmp / "big.md").write_text(big, encoding="utf-8")
        elif step == "corrupt_db":
            # As another process would find it: this process's open connections closed first.
            from videogen_store import database

            for url in [u for u in database._ENGINES if str(st.root) in u]:
                database._ENGINES.pop(url).dispose()
            for suffix in ("-wal", "-shm"):
                (st.root / (paths.DATABASE_FILE + suffix)).unlink(missing_ok=True)
            (st.root / paths.DATABASE_FILE).write_bytes(b"this is not a database" * 100)
        elif step == "edit_script":
            (st.project / paths.SCRIPT_FILE).write_text(case["script"], encoding="utf-8")
        elif step == "edit_brief":
            (st.project / paths.PROJECT_FILE).write_text(
                st.fill(case["brief"], extra), encoding="utf-8"
            )
        elif step == "image_file":
            (st.tmp / "dir.png").mkdir()
        elif step == "text_png":
            (st.tmp / "text.png").write_text("not an image at all", encoding="utf-8")
        elif step == "dash_script":
            (st.tmp / "dash.md").write_text("# Dash\nMagma rises.\n—\n", encoding="utf-8")
        else:  # pragma: no cover - a typo in the corpus
            raise AssertionError(f"unknown setup step {step!r}")
    if "generate_arg" in case:
        g = case["generate_arg"]
        extra["generated"] = g["repeat"] * int(g["times"])
    return extra


def _env(st: CliStudio, case: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
    return {k: st.fill(str(v), extra) for k, v in case.get("env", {}).items()}


@pytest.mark.parametrize("case", cases_of("cli"))
def test_cli(case: dict[str, Any], cli_studio: CliStudio) -> None:
    st = cli_studio
    extra = prepare(st, case)
    before = media_checksums(st.root)
    args = [st.fill(str(a), extra) for a in case["args"]]
    runner = CliRunner()
    result = runner.invoke(
        videogen_main, args, env=_env(st, case, extra), catch_exceptions=False, prog_name="videogen"
    )
    assert result.exit_code == case["rc"], (result.exit_code, result.output)
    if "stderr" in case:
        assert result.stderr == st.fill(case["stderr"], extra) + "\n", result.stderr
    if case.get("debug"):
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("error: "), result.stderr
    else:
        assert "Traceback" not in result.output
    for line in case.get("stdout_lines", []):
        assert st.fill(line, extra) in result.stdout.splitlines(), result.stdout
    if "log_has" in case:
        log = (st.root / "logs" / "videogen.log").read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" in log and case["log_has"] in log
    after = media_checksums(st.root)
    assert {k: after.get(k) for k in before} == before, "a file of the studio changed"
    for then in case.get("then", []):
        again = runner.invoke(videogen_main, [st.fill(a, extra) for a in then])
        assert again.exit_code == 0, (then, again.output)


@pytest.mark.parametrize("case", cases_of("media_server"))
def test_media_server(case: dict[str, Any], cli_studio: CliStudio) -> None:
    from videogen.media_server import start_in_thread

    st = cli_studio
    before = media_checksums(st.root)
    url, stop = start_in_thread(st.root, port=0)
    try:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        conn.putrequest("GET", st.fill(case["path"], {}), skip_accept_encoding=True)
        for key, value in case.get("headers", {}).items():
            conn.putheader(key, st.fill(str(value), {}).encode("utf-8"))
        if "range_digits" in case:
            conn.putheader("Range", "bytes=" + "9" * int(case["range_digits"]) + "-")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    finally:
        stop()
    assert resp.status == case["status"], (resp.status, body[:200])
    if "body_is" in case:
        assert body == (st.root / st.fill(case["body_is"], {})).read_bytes()
    for secret in (b"secret prompt", b"my private notes", b"Magma rises", b"title: Volcanoes"):
        assert secret not in body
    assert media_checksums(st.root) == before


def _videogen(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "videogen.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[1]),
        **kw,
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", cases_of("signal"))
def test_signal(case: dict[str, Any], cli_studio: CliStudio) -> None:
    st = cli_studio
    accepted = threading.Event()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    st.holders.append(server)
    held: list[socket.socket] = []

    def accept() -> None:  # a server that takes the request and never answers
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            held.append(conn)
            accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    extra = {"port": str(server.getsockname()[1])}
    before = media_checksums(st.root)
    env = {**os.environ, **_env(st, case, extra)}
    proc = _videogen([st.fill(a, extra) for a in case["args"]], env, start_new_session=True)
    try:
        assert accepted.wait(120), "the command never reached the server"
        t0 = time.monotonic()
        os.killpg(proc.pid, getattr(signal, case["signal"]))
        _, err = proc.communicate(timeout=30)
        stopped_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for conn in held:
            conn.close()
    assert proc.returncode == case["rc"], (proc.returncode, err)
    assert err == case["stderr"] + "\n", err
    assert stopped_s < 5, stopped_s
    assert media_checksums(st.root) == before


@pytest.mark.slow
@pytest.mark.parametrize("case", cases_of("concurrent"))
def test_concurrent(case: dict[str, Any], cli_studio: CliStudio) -> None:
    st = cli_studio
    extra = prepare(st, case)
    before = media_checksums(st.root)
    env = {**os.environ, **_env(st, case, extra)}
    args = [st.fill(a, extra) for a in case["args"]]
    procs = [_videogen(args, env) for _ in range(int(case.get("copies", 2)))]
    outcomes = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        outcomes.append([proc.returncode, err])
    expected = [[o[0], st.fill(o[1], extra) + "\n" if o[1] else ""] for o in case["outcomes"]]
    assert sorted(outcomes) == sorted(expected), outcomes
    after = media_checksums(st.root)
    assert {k: after.get(k) for k in before} == before


def test_reference_images_are_stored_downscaled(cli_studio: CliStudio) -> None:
    """A huge reference image (here 6000x4000) is stored at most REFERENCE_MAX_SIDE pixels on
    its longer side, keeping its aspect; the creator's original file is left as it was."""
    from PIL import Image

    from videogen_store import characters as lib

    big = cli_studio.tmp / "huge.jpg"
    Image.new("RGB", (6000, 4000), (200, 60, 30)).save(big, quality=80)
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    result = CliRunner().invoke(
        videogen_main,
        ["character", "add", "Ada", "--description", "x", "--image", str(big)],
        prog_name="videogen",
    )
    assert result.exit_code == 0, result.output
    info = lib.show_character(cli_studio.root, "Ada")
    with Image.open(cli_studio.root / info.images[0]) as stored:
        assert stored.size == (lib.REFERENCE_MAX_SIDE, lib.REFERENCE_MAX_SIDE * 2 // 3)
    assert hashlib.sha256(big.read_bytes()).hexdigest() == digest

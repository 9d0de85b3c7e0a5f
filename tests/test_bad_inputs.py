"""The bad-input corpus (``tests/bad_inputs/cases.yaml``), one test per case.

The contract: every bad input -- a script, a project brief, a workflow or its binding, an output
file name a ComfyUI server sends, a TTS answer that is not audio, an LLM reply that is not the
promised JSON -- gives one clear error of the documented class, naming the file, the line and the
field where they apply, and changes nothing: for scripts and briefs the project's files, the
studio database and the Dagster partitions are exactly as they were before the failed sync.
Inputs that look unusual but are fine (right-to-left text, emoji, a byte-order mark) are accepted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from pydantic import BaseModel

from videogen import paths
from videogen.errors import InputError
from videogen.operations import create_project, sync
from videogen.script import read_script
from videogen_assets.partitions import partitions_name
from videogen_resources.chatterbox import ChatterboxNarrator, decode_wav
from videogen_resources.comfyui import ComfyUIResource, sanitize_filename
from videogen_resources.errors import ServiceError
from videogen_resources.llm import LLMResource
from videogen_resources.workflows import WorkflowError, load_workflow_files, parse_api_workflow

try:
    from tests.servers.llm import OpenAICompatServer
    from tests.servers.tts import ChatterboxServer
except ImportError:  # tests/ itself is on sys.path (no tests/__init__.py)
    from servers.llm import OpenAICompatServer  # type: ignore[no-redef]
    from servers.tts import ChatterboxServer  # type: ignore[no-redef]

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
}
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
    for case in CASES:
        assert case["kind"] in KINDS, case["id"]
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


@pytest.fixture
def project(studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance) -> Iterator[Path]:
    """A synced project with a good script, ready to receive a bad edit."""
    script = tmp_path / "good.md"
    script.write_text(GOOD_SCRIPT, encoding="utf-8")
    folder, result = create_project(
        studio_root, title="Volcanoes", name=GOOD_BRIEF_NAME, script_file=script, instance=instance
    )
    assert result is not None and len(result.order) == 2
    yield folder


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
            tts.speak(text="Magma rises slowly.", out_path=out)
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

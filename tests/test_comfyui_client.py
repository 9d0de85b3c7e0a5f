"""Contract: ComfyUIResource speaks ComfyUI's HTTP + WebSocket protocol and fails clearly.

Pinned against the protocol-faithful fake server (built from recorded ComfyUI 0.3.64 traffic):
the exact JSON each operation sends; queue -> follow -> history -> download; 400 node_errors
rendered with node id, class and input; execution_error with node id, type and message; 5xx
retried then success; a refusing server failed over; timeout -> POST /interrupt; a dropped
WebSocket recovered; hostile output names refused; the download size cap; least-busy choice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers.comfyui import SHARED, FakeComfyUI, running_comfyui
from videogen_resources.comfyui import (
    ComfyUIResource,
    parse_object_info,
    render_prompt_error,
    sanitize_filename,
)
from videogen_resources.errors import ServiceError

pytestmark = pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)

IMAGE_WF: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 255},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t/x"}},
}
SAMPLED_WF: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0},
    },
    "2": {
        "class_type": "ImageScale",
        "inputs": {
            "image": ["1", 0],
            "upscale_method": "bilinear",
            "width": 40,
            "height": 30,
            "crop": "disabled",
        },
    },
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "s"}},
}


@pytest.fixture
def server() -> Iterator[FakeComfyUI]:
    with running_comfyui(job_seconds=0.1) as srv:
        yield srv


def resource(*urls: str, **kw: Any) -> ComfyUIResource:
    defaults: dict[str, Any] = {
        "poll_interval_s": 0.1,
        "backoff_s": 0.01,
        "timeout_s": 20,
        "connect_timeout_s": 2,
        "read_timeout_s": 10,
    }
    defaults.update(kw)
    return ComfyUIResource(urls=list(urls), **defaults)


def test_object_info_parses_both_choice_forms() -> None:
    raw = json.loads((SHARED / "object_info.json").read_text())
    info = parse_object_info(raw)
    assert len(info.nodes) == 478
    old_form = info.nodes["KSampler"].inputs["sampler_name"]
    new_form = info.nodes["SaveVideo"].inputs["format"]
    assert old_form.is_combo and "euler" in (old_form.options or [])
    assert new_form.is_combo and new_form.options == ["auto", "mp4"]
    assert info.nodes["WanImageToVideo"].inputs["start_image"].required is False
    assert info.nodes["SaveImage"].output_node is True


def test_each_operation_sends_the_exact_request(server: FakeComfyUI, tmp_path: Path) -> None:
    r = resource(server.url)
    assert r.system_stats().comfyui_version == "0.3.64"
    assert "LoadImage" in r.object_info()
    assert r.queue().size == 0
    assert r.history("no-such-id") is None
    png = tmp_path / "ref.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfirst")
    assert r.upload_image(png) == "ref.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nsecond")
    assert r.upload_image(png) == "ref (1).png"  # the server renames different bytes
    upload = server.requests_to("POST", "/upload/image")[0]
    assert upload.form["image"]["filename"] == "ref.png"
    assert upload.form["overwrite"] == "false" and upload.form["type"] == "input"
    pid = r.queue_prompt(IMAGE_WF, "client-1")
    assert server.prompts_received()[-1] == {"prompt": IMAGE_WF, "client_id": "client-1"}
    r.interrupt(pid)
    assert server.requests_to("POST", "/interrupt")[-1].json == {"prompt_id": pid}
    for _ in range(100):
        entry = r.history(pid)
        if entry is not None and entry.finished:
            break
        time.sleep(0.05)
    assert entry is not None and entry.prompt_id == pid
    assert next(m for m, _ in entry.messages) == "execution_start"


def test_run_workflow_follows_and_downloads(server: FakeComfyUI, tmp_path: Path) -> None:
    lines: list[str] = []
    r = resource(server.url)
    res = r.run_workflow(SAMPLED_WF, outputs_dir=tmp_path, progress=lines.append)
    assert res.server == server.url and len(res.files) == 1
    from PIL import Image

    with Image.open(res.files[0]) as im:
        assert im.size == (40, 30)
    assert res.files[0].parent == tmp_path
    sent = server.prompts_received()[-1]
    assert sent["prompt"] == SAMPLED_WF and sent["client_id"] == res.client_id
    # the WebSocket was opened (with the same clientId) before the prompt was queued
    kinds = [(q.method, q.path) for q in server.requests]
    assert kinds.index(("GET", "/ws")) < kinds.index(("POST", "/prompt"))
    assert server.requests_to("GET", "/ws")[0].query == {"clientId": res.client_id}
    assert server.requests_to("GET", f"/history/{res.prompt_id}")
    view = server.requests_to("GET", "/view")[0].query
    assert view == {"filename": res.outputs[0].filename, "subfolder": "", "type": "output"}
    assert any("step 4/4" in line for line in lines)
    assert res.summary()["sampler_steps"] == 4 and res.elapsed_s > 0


def test_legacy_end_signal_only_executing_null(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.05, legacy_end=True) as srv:
        res = resource(srv.url).run_workflow(IMAGE_WF, outputs_dir=tmp_path)
    assert len(res.files) == 1


def test_400_node_errors_are_rendered(server: FakeComfyUI, tmp_path: Path) -> None:
    bad = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    with pytest.raises(ServiceError) as err:
        resource(server.url).run_workflow(bad, outputs_dir=tmp_path)
    e = err.value
    assert e.status == 400 and not e.retryable
    assert "node 1 (EmptyImage) input 'height': Required input is missing" in str(e)
    assert "input 'color'" in str(e) and "input 'batch_size'" in str(e)
    assert len(server.requests_to("POST", "/prompt")) == 1  # not retried


@pytest.mark.parametrize(
    "name",
    ["transcript_missing_model.json", "transcript_bad_class.json", "transcript_missing_input.json"],
)
def test_recorded_400_bodies_render_readably(name: str) -> None:
    steps = json.loads((SHARED / name).read_text())
    body = next(s["body"] for s in steps if s.get("dir") == "POST /prompt")
    text = render_prompt_error(body)
    if name == "transcript_missing_model.json":
        assert (
            "node 2 (VAELoader) input 'vae_name': Value not in list: vae_name: "
            "'ae.safetensors' not in ['pixel_space']" in text
        )
    elif name == "transcript_bad_class.json":
        assert text == "Cannot execute because node NoSuchNode does not exist. (Node ID '#1')"
    else:
        assert "node 1 (EmptyImage) input 'color': Required input is missing" in text


def test_recorded_error_texts_render(tmp_path: Path) -> None:
    for path in sorted((SHARED / "recorded").glob("err_*.txt")):
        text = path.read_text().rsplit("\nHTTP", 1)[0]
        try:
            body = json.loads(text)
        except ValueError:
            continue
        rendered = render_prompt_error(body)
        assert body["error"]["message"] in rendered
        for nid, info in (body.get("node_errors") or {}).items():
            assert f"node {nid} ({info['class_type']})" in rendered


def test_execution_error_names_node_type_and_message(server: FakeComfyUI, tmp_path: Path) -> None:
    server.error_node = "2"
    with pytest.raises(ServiceError) as err:
        resource(server.url).run_workflow(SAMPLED_WF, outputs_dir=tmp_path)
    msg = str(err.value)
    assert "node 2 (ImageScale)" in msg and "out of memory" in msg
    assert err.value.server_message and "out of memory" in err.value.server_message


def test_5xx_is_retried_then_succeeds(server: FakeComfyUI, tmp_path: Path) -> None:
    server.fail_next(2, status=503, paths=("/prompt",))
    res = resource(server.url).run_workflow(IMAGE_WF, outputs_dir=tmp_path)
    assert len(res.files) == 1
    assert len(server.requests_to("POST", "/prompt")) == 3


def test_5xx_gives_up_after_max_retries(server: FakeComfyUI) -> None:
    server.fail_next(10, status=500, paths=("/system_stats",))
    with pytest.raises(ServiceError) as err:
        resource(server.url, max_retries=2).system_stats()
    assert err.value.status == 500 and err.value.retryable
    assert len(server.requests_to("GET", "/system_stats")) == 3


def test_refusing_server_fails_over_to_another(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.05) as a, running_comfyui(job_seconds=0.05) as b:
        a.stop()  # connection refused from now on
        r = resource(a.url, b.url, max_retries=1)
        res = r.run_workflow(IMAGE_WF, outputs_dir=tmp_path)
        assert res.server == b.url
        # the refusing server is out of rotation for a while: not even asked for /queue
        before = len(a.requests)
        a.start()
        res2 = r.run_workflow(IMAGE_WF, outputs_dir=tmp_path)
        assert res2.server == b.url and len(a.requests) == before


def test_all_servers_down_is_a_retryable_error(tmp_path: Path) -> None:
    with running_comfyui() as a:
        a.stop()
        with pytest.raises(ServiceError) as err:
            resource(a.url, max_retries=0).run_workflow(IMAGE_WF, outputs_dir=tmp_path)
        assert err.value.retryable


def test_timeout_interrupts_and_fails(server: FakeComfyUI, tmp_path: Path) -> None:
    server.job_seconds = 30
    t0 = time.monotonic()
    with pytest.raises(ServiceError) as err:
        resource(server.url, timeout_s=0.6).run_workflow(IMAGE_WF, outputs_dir=tmp_path)
    assert time.monotonic() - t0 < 5
    assert "timeout" in str(err.value)
    pid = server.prompts_received() and server.interrupts[-1]["prompt_id"]
    assert pid
    for _ in range(100):  # the server stops the job
        if pid in server.history:
            break
        time.sleep(0.02)
    assert server.history[pid]["status"]["messages"][-1][0] == "execution_interrupted"


def test_cancel_check_interrupts(server: FakeComfyUI, tmp_path: Path) -> None:
    server.job_seconds = 30
    started = time.monotonic()
    with pytest.raises(ServiceError, match="cancelled"):
        resource(server.url).run_workflow(
            IMAGE_WF, outputs_dir=tmp_path, cancel_check=lambda: time.monotonic() - started > 0.3
        )
    assert server.interrupts


def test_dropped_websocket_is_recovered(server: FakeComfyUI, tmp_path: Path) -> None:
    server.job_seconds = 0.6
    server.drop_ws_next_job = True
    res = resource(server.url).run_workflow(SAMPLED_WF, outputs_dir=tmp_path)
    assert len(res.files) == 1 and res.reconnects >= 1
    ws_opens = server.requests_to("GET", "/ws")
    assert len(ws_opens) >= 2 and {w.query["clientId"] for w in ws_opens} == {res.client_id}


def test_hostile_output_filename_is_refused(server: FakeComfyUI, tmp_path: Path) -> None:
    server.output_filename = "../../x.png"
    dest = tmp_path / "out"
    with pytest.raises(ServiceError, match="refused output file"):
        resource(server.url).run_workflow(IMAGE_WF, outputs_dir=dest)
    assert not (tmp_path / "x.png").exists() and not list(dest.glob("*"))
    assert not server.requests_to("GET", "/view")


@pytest.mark.parametrize(
    "name", ["../../x", "/etc/passwd", "a/b.png", "..", "C:evil.png", "a\\b.png", ""]
)
def test_sanitize_filename_refuses_paths(name: str) -> None:
    with pytest.raises(ValueError):
        sanitize_filename(name)


def test_download_size_cap_and_truncation(server: FakeComfyUI, tmp_path: Path) -> None:
    res = resource(server.url).run_workflow(IMAGE_WF, outputs_dir=tmp_path / "a")
    out = res.outputs[0]
    small = resource(server.url, max_download_bytes=10)
    with pytest.raises(ServiceError, match="cap"):
        small.download(out.filename, out.subfolder, out.type, tmp_path / "b")
    assert not list((tmp_path / "b").glob("*")) if (tmp_path / "b").exists() else True
    server.truncate_downloads = 1  # first answer cut short, retried
    path = resource(server.url).download(out.filename, out.subfolder, out.type, tmp_path / "c")
    assert path.read_bytes() == res.files[0].read_bytes()
    assert len(server.requests_to("GET", "/view")) == 4  # run, capped, cut short, retried


def test_least_busy_server_is_chosen(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=1.5) as a, running_comfyui(job_seconds=0.05) as b:
        r = resource(a.url, b.url)
        r.queue_prompt(IMAGE_WF, "someone-else", a.url)  # a is busy with another job
        time.sleep(0.1)
        assert r.server_loads() == {a.url: 1, b.url: 0}
        res = r.run_workflow(IMAGE_WF, outputs_dir=tmp_path)
        assert res.server == b.url


def test_in_flight_jobs_spread_over_servers(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.6) as a, running_comfyui(job_seconds=0.6) as b:
        r = resource(a.url, b.url)
        results: list[str] = []

        def job(i: int) -> None:
            results.append(r.run_workflow(IMAGE_WF, outputs_dir=tmp_path / str(i)).server)

        threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.15)
        for t in threads:
            t.join(20)
        assert sorted(results) == sorted([a.url, b.url])


def test_prompt_lost_by_a_restart_is_resubmitted_once(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.4) as srv:
        srv.restart_at_step = 2
        r = resource(srv.url, timeout_s=300)
        lines: list[str] = []
        t0 = time.monotonic()
        result = r.run_workflow(SAMPLED_WF, outputs_dir=tmp_path, progress=lines.append)
        elapsed = time.monotonic() - t0
        assert srv.restarts == 1
        prompts = srv.prompts_received()
        assert len(prompts) == 2 and prompts[0]["prompt"] == prompts[1]["prompt"]
        first = [t for t in srv.job_times.values() if t.status == "forgotten"]
        assert len(first) == 1 and result.lost_prompt == first[0].prompt_id
        assert result.prompt_id != result.lost_prompt
        assert srv.job_times[result.prompt_id].status == "success"
        assert result.files and result.files[0].is_file()
        assert result.summary()["lost_prompt"] == result.lost_prompt
        assert any("restarted and lost prompt" in line for line in lines)
        assert elapsed < 15, elapsed  # not the 300 s timeout


def test_prompt_lost_again_after_resubmission_fails_at_once(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.4) as srv:
        srv.restart_at_step, srv.restart_jobs = 2, 2
        r = resource(srv.url, timeout_s=300)
        t0 = time.monotonic()
        with pytest.raises(ServiceError, match="restarted and lost prompt") as err:
            r.run_workflow(SAMPLED_WF, outputs_dir=tmp_path)
        assert time.monotonic() - t0 < 15
        assert "queued again" in str(err.value) and not err.value.retryable
        assert len(srv.prompts_received()) == 2 and srv.queue_empty()


def test_prompt_lost_fails_at_once_when_resubmission_is_off(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=0.4) as srv:
        srv.restart_at_step = 1
        r = resource(srv.url, timeout_s=300, resubmit_lost=False)
        t0 = time.monotonic()
        with pytest.raises(ServiceError, match="restarted and lost prompt") as err:
            r.run_workflow(SAMPLED_WF, outputs_dir=tmp_path)
        assert time.monotonic() - t0 < 15
        assert "queued again" not in str(err.value)
        assert len(srv.prompts_received()) == 1


@pytest.mark.slow
def test_restart_while_the_prompt_waits_in_the_queue_is_detected(tmp_path: Path) -> None:
    with running_comfyui(job_seconds=1.5) as srv:
        r = resource(srv.url, timeout_s=300)
        results: dict[str, Any] = {}

        def second() -> None:
            try:
                results["run"] = r.run_workflow(IMAGE_WF, outputs_dir=tmp_path / "b")
            except ServiceError as exc:  # pragma: no cover - reported by the assert below
                results["error"] = exc

        first = threading.Thread(
            target=lambda: results.setdefault(
                "first", _swallow(lambda: r.run_workflow(SAMPLED_WF, outputs_dir=tmp_path / "a"))
            )
        )
        first.start()
        _wait_for(lambda: r.queue().size == 1)
        waiting = threading.Thread(target=second)
        waiting.start()
        _wait_for(lambda: r.queue().size == 2)  # one runs, ours waits behind it
        srv.restart()
        first.join(20)
        waiting.join(20)
        assert "error" not in results, results.get("error")
        run = results["run"]
        assert run.lost_prompt is not None and run.files[0].is_file()


def _wait_for(cond: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _swallow(fn: Any) -> Any:
    try:
        return fn()
    except ServiceError as exc:
        return exc

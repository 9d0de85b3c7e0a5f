"""A protocol-faithful ComfyUI test server (aiohttp, 127.0.0.1, a free port), built from recordings.

It serves the recorded ``/object_info`` (optionally plus newer node schemas), validates prompts
the way ComfyUI does (answering the recorded 400 shapes), runs ONE prompt at a time from its
queue for a configurable time, sends the recorded WebSocket message sequence (binary preview
frames included), and writes real outputs: a PNG of the requested size for image workflows, an
MP4 (SaveVideo) or animated WEBP (SaveAnimatedWEBP) of the requested frames for video ones.

Fault knobs: ``fail_next`` / ``fail_rate`` (HTTP 5xx), ``drop_ws_next_job`` (close WebSockets
mid-job), ``job_seconds`` (slow), ``error_node`` (execution_error at a node),
``error_jobs`` (only these job numbers hit ``error_node``), ``truncate_downloads``,
``output_filename`` (a hostile output name), ``stop()`` / ``start()`` (refuse connections on the
same port), ``restart()`` (a killed and restarted ComfyUI: every socket dropped, queue, running
prompt and history forgotten, files on disk kept), ``restart_at_step`` (restart during the next
``restart_jobs`` jobs at that sampler step), ``image_scale`` (image outputs that many times the
requested size, e.g. 1/8: a model that makes small images). ``models``: the installed model
files (listed as the choices of every model-file input in ``/object_info``, like a real server,
and checked in prompts; None: any file name is accepted).
Every request is recorded in ``requests``; every job's times (received, started,
ended, on ``time.monotonic()``) in ``job_times``; ``POST /queue`` deletes waiting prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import io
import json
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

SHARED = Path(__file__).resolve().parents[4] / "shared" / "comfyui"
RECORDED_OBJECT_INFO = SHARED / "object_info.json"
RECORDED_SYSTEM_STATS = SHARED / "system_stats.json"

SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "SamplerCustom"}
IMAGE_SAVERS = {"SaveImage", "PreviewImage"}
VIDEO_SAVERS = {"SaveVideo", "SaveAnimatedWEBP", "SaveWEBM", "SaveAnimatedPNG"}
_MODEL_EXT = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
# A tiny JPEG header stands in for a latent preview (event type 1 = PREVIEW_IMAGE, format 1 = JPEG)
_PREVIEW = (1).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes.fromhex("ffd8ffe000104a464946")


BODY_KEY = web.RequestKey("body", bytes)
FORM_KEY = web.RequestKey("form", dict)


@dataclass
class RecordedRequest:
    """One HTTP request the server received."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    number: int
    prompt_id: str
    prompt: dict[str, Any]
    client_id: str | None
    outputs: list[str]
    interrupted: bool = False
    current_node: str | None = None
    forgotten: bool = False  # the server restarted while it ran: no history, no messages


@dataclass
class JobTimes:
    """When a job was received, started and ended (``time.monotonic()``; None: not yet)."""

    prompt_id: str
    number: int
    received: float
    started: float | None = None
    ended: float | None = None
    status: str | None = None  # "success", "error", "deleted" or "forgotten" (a restart)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_object_info(extra_nodes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recorded /object_info, plus (replacing) ``extra_nodes``."""
    info: dict[str, Any] = json.loads(RECORDED_OBJECT_INFO.read_text())
    if extra_nodes:
        info.update(copy.deepcopy(extra_nodes))
    return info


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def _spec(spec: Any) -> tuple[str, list[Any] | None, dict[str, Any]]:
    if not isinstance(spec, list) or not spec:
        return str(spec), None, {}
    cfg = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(spec[0], list):
        return "COMBO", spec[0], cfg
    if spec[0] == "COMBO":
        return "COMBO", list(cfg.get("options") or []), cfg
    return str(spec[0]), None, cfg


class FakeComfyUI:
    """The test server. Use as a context manager, or call start()/stop() (stop refuses)."""

    def __init__(
        self,
        *,
        extra_nodes: dict[str, Any] | None = None,
        job_seconds: float = 0.05,
        sampler_steps: int = 4,
        models: list[str] | None = None,
        version: str = "0.3.64",
        legacy_end: bool = False,
    ) -> None:
        self.object_info = load_object_info(extra_nodes)
        self.job_seconds = job_seconds
        self.sampler_steps = sampler_steps
        self.models = models  # None: every model file name is "installed"
        self.version = version
        self.legacy_end = legacy_end  # old servers: no execution_success, only executing null
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fake-comfyui-"))
        (self.root / "input").mkdir()
        (self.root / "output").mkdir()
        (self.root / "temp").mkdir()
        self.requests: list[RecordedRequest] = []
        self.history: dict[str, dict[str, Any]] = {}
        # fault knobs
        self.fail_next_count = 0
        self.fail_status = 500
        self.fail_paths: tuple[str, ...] | None = None
        self.fail_rate = 0.0
        self.drop_ws_next_job = False
        self.error_node: str | None = None
        self.error_jobs: set[int] | None = None  # job numbers that fail at error_node (None: all)
        self.error_message = "Allocation on device 0 would exceed allowed memory. (out of memory)"
        self.truncate_downloads = 0  # how many next /view answers are cut in half
        self.output_filename: str | None = None  # e.g. "../../x.png" to test the client
        self.image_scale = 1.0  # image outputs at this fraction of the requested size
        self.restart_at_step: int | None = None  # restart (forgetting) at this sampler step
        self.restart_jobs = 1  # ...during this many next jobs
        self.restarts = 0
        self.interrupts: list[dict[str, Any]] = []
        self.deleted: list[str] = []  # prompt ids POST /queue removed from the queue
        self.job_times: dict[str, JobTimes] = {}
        self._rng = random.Random(1234)
        self._counter = 0
        self._number = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._queue: list[Job] = []
        self._running: Job | None = None
        self._wake: asyncio.Event | None = None
        self._sockets: dict[str, list[web.WebSocketResponse]] = {}
        self._started = threading.Event()

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeComfyUI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start (or restart, on the same port) listening."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._thread_main, daemon=True)
            self._thread.start()
            self._started.wait(10)
        self._call(self._listen())

    def stop(self) -> None:
        """Stop listening (clients get connection refused); queued jobs stay."""
        self._call(self._unlisten())

    def close(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """A killed and restarted ComfyUI on the same port: it forgets every prompt (queued,
        running and finished); files in input/ and output/ stay."""
        self._call(self._restart())

    async def _restart(self) -> None:
        await self._unlisten()
        self._forget()
        await asyncio.sleep(0.05)
        await self._listen()

    def _forget(self) -> None:
        self.restarts += 1
        for job in [*self._queue, *([self._running] if self._running else [])]:
            job.forgotten = True
            job.interrupted = True
            self.job_times[job.prompt_id].status = "forgotten"
        self._queue.clear()
        self.history.clear()

    def fail_next(self, n: int, status: int = 500, paths: tuple[str, ...] | None = None) -> None:
        """Answer the next ``n`` requests (to ``paths`` when given) with ``status``."""
        self.fail_next_count, self.fail_status, self.fail_paths = n, status, paths

    def queue_empty(self) -> bool:
        """Nothing runs and nothing waits."""
        return self._running is None and not self._queue

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def prompts_received(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests_to("POST", "/prompt") if isinstance(r.json, dict)]

    def add_input_file(self, name: str, data: bytes) -> None:
        (self.root / "input" / name).write_bytes(data)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    def _thread_main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._wake = asyncio.Event()
        self._loop.create_task(self._worker())
        self._started.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        if self._runner is None:
            app = web.Application(middlewares=[self._middleware], client_max_size=200 * 1024**2)
            app.add_routes(
                [
                    web.get("/object_info", self._object_info),
                    web.get("/object_info/{node}", self._object_info_one),
                    web.get("/system_stats", self._system_stats),
                    web.get("/queue", self._get_queue),
                    web.get("/history", self._get_history_all),
                    web.get("/history/{prompt_id}", self._get_history),
                    web.get("/view", self._view),
                    web.post("/prompt", self._post_prompt),
                    web.post("/upload/image", self._upload),
                    web.post("/interrupt", self._interrupt),
                    web.post("/queue", self._post_queue),
                    web.get("/ws", self._ws),
                ]
            )
            self._runner = web.AppRunner(app, shutdown_timeout=0.5)
            await self._runner.setup()
        if self._site is None:
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await self._site.start()

    async def _unlisten(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        for socks in self._sockets.values():
            for ws in list(socks):
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _shutdown(self) -> None:
        await self._unlisten()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----------------------------------------------------------------------------- HTTP

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = b""
        form: dict[str, Any] = {}
        if request.path != "/ws" and request.content_type.startswith("multipart/"):
            post = await request.post()
            for k, v in post.items():
                if isinstance(v, web.FileField):
                    form[k] = {"filename": v.filename, "data": v.file.read()}
                else:
                    form[k] = v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")
            request[FORM_KEY] = form
        elif request.can_read_body:
            body = await request.read()
        parsed: Any = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), body, parsed, form)
        )
        if request.path != "/ws" and (
            self.fail_next_count > 0
            and (self.fail_paths is None or request.path in self.fail_paths)
        ):
            self.fail_next_count -= 1
            return web.Response(status=self.fail_status, text="Server got itself in trouble")
        if request.path != "/ws" and self.fail_rate and self._rng.random() < self.fail_rate:
            return web.Response(status=503, text="Service Unavailable")
        request[BODY_KEY] = body
        response: web.StreamResponse = await handler(request)
        return response

    async def _object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self._object_info_with_models())

    def _object_info_with_models(self) -> dict[str, Any]:
        """Like a real server, list the installed model files (``models``) as the choices of
        every model-file input (recorded with no files installed: empty or file-name lists)."""
        if self.models is None:
            return self.object_info
        info = copy.deepcopy(self.object_info)

        builtin = {"pixel_space", "taesd", "taesdxl", "taesd3", "taef1"}  # VAELoader's own

        def model_files(options: Any) -> bool:
            return isinstance(options, list) and all(
                isinstance(o, str) and (o.endswith(_MODEL_EXT) or o in builtin) for o in options
            )

        def installed(options: list[Any]) -> list[Any]:
            return [o for o in options if o in builtin] + list(self.models or [])

        for node in info.values():
            for section in ("required", "optional"):
                for spec in (node.get("input", {}).get(section) or {}).values():
                    if not isinstance(spec, list) or not spec:
                        continue
                    cfg = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    if cfg.get("image_upload"):
                        continue
                    if isinstance(spec[0], list) and model_files(spec[0]):
                        spec[0] = installed(spec[0])  # old form: [[choices], {...}]
                    elif spec[0] == "COMBO" and model_files(cfg.get("options") or []):
                        cfg["options"] = installed(cfg.get("options") or [])  # ["COMBO", {}]
        return info

    async def _object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node"]
        return web.json_response({name: self.object_info[name]} if name in self.object_info else {})

    async def _system_stats(self, request: web.Request) -> web.Response:
        stats = json.loads(RECORDED_SYSTEM_STATS.read_text())
        stats["system"]["comfyui_version"] = self.version
        return web.json_response(stats)

    def _queue_item(self, job: Job) -> list[Any]:
        return [job.number, job.prompt_id, job.prompt, {"client_id": job.client_id}, job.outputs]

    async def _get_queue(self, request: web.Request) -> web.Response:
        running = [self._queue_item(self._running)] if self._running else []
        return web.json_response(
            {"queue_running": running, "queue_pending": [self._queue_item(j) for j in self._queue]}
        )

    async def _get_history(self, request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        return web.json_response({pid: self.history[pid]} if pid in self.history else {})

    async def _get_history_all(self, request: web.Request) -> web.Response:
        return web.json_response(self.history)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        filename = request.query.get("filename", "")
        subfolder = request.query.get("subfolder", "")
        kind = request.query.get("type", "output")
        if not filename or ".." in filename or filename.startswith("/") or ".." in subfolder:
            return web.Response(status=400)
        if kind not in ("output", "input", "temp"):
            return web.Response(status=400)
        path = self.root / kind / subfolder / filename
        if not path.is_file():
            return web.Response(status=404)
        data = path.read_bytes()
        if self.truncate_downloads > 0:
            self.truncate_downloads -= 1
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            transport = request.transport
            if transport is not None:
                transport.close()
            return resp
        return web.Response(body=data, headers={"Content-Disposition": f'filename="{filename}"'})

    async def _upload(self, request: web.Request) -> web.Response:
        form = request.get(FORM_KEY) or {}
        image = form.get("image")
        if not isinstance(image, dict):
            return web.Response(status=400)
        name = Path(str(image["filename"])).name
        data: bytes = image["data"]
        subfolder = str(form.get("subfolder") or "")
        overwrite = str(form.get("overwrite") or "").lower() in ("true", "1")
        folder = self.root / "input" / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if target.exists() and not overwrite:
            stem, suffix = target.stem, target.suffix
            i = 1
            while target.exists():
                if target.read_bytes() == data:
                    break
                target = folder / f"{stem} ({i}){suffix}"
                i += 1
        target.write_bytes(data)
        return web.json_response({"name": target.name, "subfolder": subfolder, "type": "input"})

    async def _interrupt(self, request: web.Request) -> web.Response:
        body = request.get(BODY_KEY) or b""
        data = json.loads(body) if body else {}
        self.interrupts.append(data if isinstance(data, dict) else {})
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        if self._running is not None and (pid is None or pid == self._running.prompt_id):
            self._running.interrupted = True
        return web.Response(status=200)

    async def _post_queue(self, request: web.Request) -> web.Response:
        """ComfyUI's queue edits: ``{"delete": [prompt_id, ...]}`` and ``{"clear": true}``."""
        body = request.get(BODY_KEY) or b""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return web.Response(status=400)
        if not isinstance(data, dict):
            return web.Response(status=400)
        if data.get("clear"):
            drop = list(self._queue)
        else:
            ids = set(data.get("delete") or [])
            drop = [j for j in self._queue if j.prompt_id in ids]
        for job in drop:
            self._queue.remove(job)
            self.deleted.append(job.prompt_id)
            self.job_times[job.prompt_id].status = "deleted"
        if drop:
            await self._broadcast_status()
        return web.Response(status=200)

    async def _post_prompt(self, request: web.Request) -> web.Response:
        body = request.get(BODY_KEY) or b""
        try:
            data = json.loads(body)
        except ValueError:
            return web.Response(
                status=500, text="500 Internal Server Error\n\nServer got itself in trouble"
            )
        if not isinstance(data, dict) or "prompt" not in data:
            return self._error(400, "no_prompt", "No prompt provided", "No prompt provided")
        prompt = data["prompt"]
        for nid, node in prompt.items():
            cls = node.get("class_type") if isinstance(node, dict) else None
            if cls not in self.object_info:
                return self._error(
                    400,
                    "invalid_prompt",
                    f"Cannot execute because node {cls} does not exist.",
                    f"Node ID '#{nid}'",
                )
        outputs = [
            nid for nid, n in prompt.items() if self.object_info[n["class_type"]].get("output_node")
        ]
        if not outputs:
            return self._error(400, "prompt_no_outputs", "Prompt has no outputs", "")
        node_errors = self._validate(prompt, outputs)
        if node_errors:
            return web.json_response(
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": node_errors,
                },
                status=400,
            )
        pid = str(data.get("prompt_id") or uuid.uuid4())
        job = Job(self._number, pid, prompt, data.get("client_id"), outputs)
        self._number += 1
        self.job_times[pid] = JobTimes(pid, job.number, time.monotonic())
        self._queue.append(job)
        await self._broadcast_status()
        assert self._wake is not None
        self._wake.set()
        return web.json_response({"prompt_id": pid, "number": job.number, "node_errors": {}})

    def _error(self, status: int, kind: str, message: str, details: str) -> web.Response:
        return web.json_response(
            {
                "error": {"type": kind, "message": message, "details": details, "extra_info": {}},
                "node_errors": {},
            },
            status=status,
        )

    # ---------------------------------------------------------------------- validation

    def _validate(self, prompt: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        errors: dict[str, list[dict[str, Any]]] = {}
        deps: dict[str, set[str]] = {}

        def visit(nid: str, out: str, seen: set[str]) -> None:
            if nid in seen:
                return
            seen.add(nid)
            deps.setdefault(nid, set()).add(out)
            node = prompt[nid]
            info = self.object_info[node["class_type"]]
            errs = errors.setdefault(nid, [])
            inputs = node.get("inputs") or {}
            required = info["input"].get("required") or {}
            optional = info["input"].get("optional") or {}
            for name in required:
                if name not in inputs:
                    errs.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": name,
                            "extra_info": {"input_name": name},
                        }
                    )
            for name, value in inputs.items():
                spec = required.get(name, optional.get(name))
                if spec is None:
                    continue
                typ, options, cfg = _spec(spec)
                if _is_link(value):
                    src_id, idx = value
                    if src_id not in prompt:
                        errs.append(
                            {
                                "type": "exception_during_validation",
                                "message": "Exception when validating node",
                                "details": f"'{src_id}'",
                                "extra_info": {"exception_type": "KeyError"},
                            }
                        )
                        continue
                    src_out = self.object_info[prompt[src_id]["class_type"]]["output"]
                    got = src_out[idx] if 0 <= idx < len(src_out) else None
                    got = "COMBO" if isinstance(got, list) else got
                    if (
                        got is not None
                        and typ != "*"
                        and got != "*"
                        and not (set(str(got).split(",")) & set(typ.split(",")))
                    ):
                        errs.append(
                            {
                                "type": "return_type_mismatch",
                                "message": "Return type mismatch between linked nodes",
                                "details": f"{name}, received_type({got}) mismatch "
                                f"input_type({typ})",
                                "extra_info": {
                                    "input_name": name,
                                    "input_config": spec,
                                    "received_type": got,
                                    "linked_node": value,
                                },
                            }
                        )
                    visit(src_id, out, seen)
                    continue
                errs.extend(
                    self._check_value(node["class_type"], name, typ, options, cfg, value, spec)
                )

        for out in outputs:
            visit(out, out, set())
        result: dict[str, Any] = {}
        for nid, errs in errors.items():
            if errs:
                result[nid] = {
                    "errors": errs,
                    "dependent_outputs": sorted(deps.get(nid, [])),
                    "class_type": prompt[nid]["class_type"],
                }
        return result

    def _check_value(
        self,
        cls: str,
        name: str,
        typ: str,
        options: list[Any] | None,
        cfg: dict[str, Any],
        value: Any,
        spec: Any,
    ) -> list[dict[str, Any]]:
        if cls == "LoadImage" and name == "image":
            if not (self.root / "input" / str(value)).is_file():
                return [
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": f"image - Invalid image file: {value}",
                        "extra_info": {"input_name": name},
                    }
                ]
            return []
        if typ == "COMBO":
            allowed = list(options or [])
            if isinstance(value, str) and value.endswith(_MODEL_EXT):
                if self.models is None:
                    return []
                allowed = allowed + list(self.models)
            if value not in allowed:
                return [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": f"{name}: '{value}' not in {allowed}",
                        "extra_info": {
                            "input_name": name,
                            "input_config": spec,
                            "received_value": value,
                        },
                    }
                ]
            return []
        if typ in ("INT", "FLOAT"):
            try:
                num = int(value) if typ == "INT" else float(value)
            except (TypeError, ValueError) as exc:
                return [
                    {
                        "type": "invalid_input_type",
                        "message": f"Failed to convert an input value to a {typ} value",
                        "details": f"{name}, {value}, {exc}",
                        "extra_info": {
                            "input_name": name,
                            "input_config": spec,
                            "received_value": value,
                            "exception_message": str(exc),
                        },
                    }
                ]
            if "min" in cfg and num < cfg["min"]:
                return [
                    {
                        "type": "value_smaller_than_min",
                        "message": f"Value {num} smaller than min of {cfg['min']}",
                        "details": name,
                        "extra_info": {
                            "input_name": name,
                            "input_config": spec,
                            "received_value": value,
                        },
                    }
                ]
            if "max" in cfg and num > cfg["max"]:
                return [
                    {
                        "type": "value_bigger_than_max",
                        "message": f"Value {num} bigger than max of {cfg['max']}",
                        "details": name,
                        "extra_info": {
                            "input_name": name,
                            "input_config": spec,
                            "received_value": value,
                        },
                    }
                ]
        return []

    # ---------------------------------------------------------------------- WebSocket

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self._sockets.setdefault(sid, []).append(ws)
        try:
            await ws.send_json(
                {
                    "type": "status",
                    "data": {
                        "status": {"exec_info": {"queue_remaining": self._remaining()}},
                        "sid": sid,
                    },
                }
            )
            job = self._running
            if job is not None and job.client_id == sid and job.current_node is not None:
                # a reconnect mid-run: the server tells where it is, without prompt_id
                await ws.send_json({"type": "executing", "data": {"node": job.current_node}})
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            with contextlib.suppress(ValueError):
                self._sockets.get(sid, []).remove(ws)
        return ws

    def _remaining(self) -> int:
        return len(self._queue) + (1 if self._running else 0)

    async def _send(self, client_id: str | None, msg: dict[str, Any] | bytes) -> None:
        targets = self._sockets.get(client_id or "", []) if client_id else []
        for ws in list(targets):
            try:
                if isinstance(msg, bytes):
                    await ws.send_bytes(msg)
                else:
                    await ws.send_json(msg)
            except (ConnectionError, RuntimeError):
                with contextlib.suppress(ValueError):
                    targets.remove(ws)

    async def _broadcast(self, msg: dict[str, Any] | bytes) -> None:
        for cid in list(self._sockets):
            await self._send(cid, msg)

    async def _broadcast_status(self) -> None:
        await self._broadcast(
            {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": self._remaining()}}},
            }
        )

    async def _drop_client(self, client_id: str | None) -> None:
        for ws in list(self._sockets.get(client_id or "", [])):
            with contextlib.suppress(Exception):
                await ws.close(code=1011, message=b"dropped by test")

    # ---------------------------------------------------------------------- execution

    async def _worker(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = self._queue.pop(0)
            self._running = job
            times = self.job_times[job.prompt_id]
            times.started = time.monotonic()
            try:
                await self._execute(job)
            except Exception as exc:  # pragma: no cover - a bug in the fake itself
                self.history[job.prompt_id] = self._history_entry(
                    job,
                    {},
                    "error",
                    [
                        (
                            "execution_error",
                            {"prompt_id": job.prompt_id, "exception_message": repr(exc)},
                        )
                    ],
                )
            finally:
                times.ended = time.monotonic()
                times.status = (
                    "forgotten"
                    if job.forgotten
                    else str(
                        self.history.get(job.prompt_id, {}).get("status", {}).get("status_str")
                        or "error"
                    )
                )
                self._running = None
            await self._broadcast_status()
            if not job.forgotten:
                await self._send(
                    job.client_id,
                    {"type": "executing", "data": {"node": None, "prompt_id": job.prompt_id}},
                )

    def _order(self, prompt: dict[str, Any], outputs: list[str]) -> list[str]:
        order: list[str] = []

        def visit(nid: str) -> None:
            if nid in order:
                return
            for v in prompt[nid]["inputs"].values():
                if _is_link(v):
                    visit(v[0])
            order.append(nid)

        for out in outputs:
            visit(out)
        return order

    def _history_entry(
        self,
        job: Job,
        outputs: dict[str, Any],
        status: str,
        messages: list[tuple[str, dict[str, Any]]],
    ) -> dict[str, Any]:
        return {
            "prompt": [
                job.number,
                job.prompt_id,
                job.prompt,
                {"client_id": job.client_id},
                job.outputs,
            ],
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": [list(m) for m in messages],
            },
            "meta": {
                nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                for nid in outputs
            },
        }

    async def _execute(self, job: Job) -> None:
        pid, cid = job.prompt_id, job.client_id
        ts = int(time.time() * 1000)
        await self._broadcast_status()
        start_msg = {"prompt_id": pid, "timestamp": ts}
        messages: list[tuple[str, dict[str, Any]]] = [("execution_start", start_msg)]
        await self._send(cid, {"type": "execution_start", "data": start_msg})
        cached = {"nodes": [], "prompt_id": pid, "timestamp": ts}
        messages.append(("execution_cached", cached))
        await self._send(cid, {"type": "execution_cached", "data": cached})
        order = self._order(job.prompt, job.outputs)
        samplers = [n for n in order if job.prompt[n]["class_type"] in SAMPLERS] or order[-1:]
        per_step = self.job_seconds / max(1, len(samplers) * self.sampler_steps)
        drop = self.drop_ws_next_job
        self.drop_ws_next_job = False
        outputs: dict[str, Any] = {}
        for nid in order:
            cls = job.prompt[nid]["class_type"]
            job.current_node = nid
            await self._broadcast(
                {
                    "type": "progress_state",
                    "data": {
                        "prompt_id": pid,
                        "nodes": {
                            nid: {
                                "value": 0.0,
                                "max": 1.0,
                                "state": "running",
                                "node_id": nid,
                                "prompt_id": pid,
                                "display_node_id": nid,
                                "parent_node_id": None,
                                "real_node_id": nid,
                            }
                        },
                    },
                }
            )
            await self._send(
                cid,
                {"type": "executing", "data": {"node": nid, "display_node": nid, "prompt_id": pid}},
            )
            if nid == self.error_node and (
                self.error_jobs is None or job.number in self.error_jobs
            ):
                err = {
                    "prompt_id": pid,
                    "node_id": nid,
                    "node_type": cls,
                    "executed": [],
                    "exception_message": self.error_message + "\n",
                    "exception_type": "torch.OutOfMemoryError",
                    "traceback": ['  File "execution.py", line 496, in execute\n'],
                    "current_inputs": {},
                    "current_outputs": {},
                    "timestamp": ts,
                }
                messages.append(("execution_error", err))
                self.history[pid] = self._history_entry(job, {}, "error", messages)
                await self._send(cid, {"type": "execution_error", "data": err})
                return
            if nid in samplers:
                for step in range(1, self.sampler_steps + 1):
                    if await self._sleep_or_interrupt(job, per_step):
                        await self._interrupted(job, nid, cls, messages)
                        return
                    await self._broadcast(
                        {
                            "type": "progress",
                            "data": {
                                "value": step,
                                "max": self.sampler_steps,
                                "prompt_id": pid,
                                "node": nid,
                            },
                        }
                    )
                    await self._broadcast(_PREVIEW)
                    if self.restart_at_step == step and self.restart_jobs > 0:
                        self.restart_jobs -= 1
                        await self._restart()
                        return
                    if drop and step == 1:
                        drop = False
                        await self._drop_client(cid)
            if cls in IMAGE_SAVERS | VIDEO_SAVERS:
                out = await asyncio.to_thread(self._write_output, job, nid)
                outputs[nid] = out
                await self._send(
                    cid,
                    {
                        "type": "executed",
                        "data": {"node": nid, "display_node": nid, "output": out, "prompt_id": pid},
                    },
                )
        if job.forgotten:
            return
        if job.interrupted:
            await self._interrupted(job, order[-1], job.prompt[order[-1]]["class_type"], messages)
            return
        done = {"prompt_id": pid, "timestamp": int(time.time() * 1000)}
        messages.append(("execution_success", done))
        self.history[pid] = self._history_entry(job, outputs, "success", messages)
        if not self.legacy_end:
            await self._send(cid, {"type": "execution_success", "data": done})

    async def _sleep_or_interrupt(self, job: Job, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if job.interrupted:
                return True
            await asyncio.sleep(min(0.02, max(0.0, end - time.monotonic())))
        return job.interrupted

    async def _interrupted(
        self, job: Job, nid: str, cls: str, messages: list[tuple[str, dict[str, Any]]]
    ) -> None:
        if job.forgotten:
            return
        data = {
            "prompt_id": job.prompt_id,
            "node_id": nid,
            "node_type": cls,
            "executed": [],
            "timestamp": int(time.time() * 1000),
        }
        messages.append(("execution_interrupted", data))
        self.history[job.prompt_id] = self._history_entry(job, {}, "error", messages)
        await self._send(job.client_id, {"type": "execution_interrupted", "data": data})

    # ---------------------------------------------------------------------- outputs

    def _geometry(self, prompt: dict[str, Any], save_id: str) -> tuple[int, int, int, float]:
        """Size, frames and fps of what node ``save_id`` saves, traced back along its links."""
        w = h = frames = None
        fps = None
        seen: set[str] = set()
        queue = [save_id]
        while queue:
            nid = queue.pop(0)
            if nid in seen or nid not in prompt:
                continue
            seen.add(nid)
            ins = prompt[nid]["inputs"]
            if (
                w is None
                and isinstance(ins.get("width"), int)
                and isinstance(ins.get("height"), int)
            ):
                w, h = ins["width"], ins["height"]
            for key in ("length", "frames_number"):
                if frames is None and isinstance(ins.get(key), int):
                    frames = ins[key]
            if fps is None and isinstance(ins.get("fps"), int | float):
                fps = ins["fps"]
            queue.extend(v[0] for v in ins.values() if _is_link(v))
        return int(w or 512), int(h or 512), int(frames or 1), float(fps or 24.0)

    def _next_name(self, prefix: str, ext: str) -> tuple[str, str]:
        self._counter += 1
        sub, _, base = prefix.rpartition("/")
        name = self.output_filename or f"{base or 'ComfyUI'}_{self._counter:05d}_.{ext}"
        return name, sub

    def _write_output(self, job: Job, nid: str) -> dict[str, Any]:
        from PIL import Image

        node = job.prompt[nid]
        cls = node["class_type"]
        prefix = str(node["inputs"].get("filename_prefix") or "ComfyUI")
        w, h, frames, fps = self._geometry(job.prompt, nid)
        seed = int(hashlib.sha256(job.prompt_id.encode()).hexdigest()[:6], 16)
        color = (seed & 255, (seed >> 8) & 255, (seed >> 16) & 255)
        kind = "temp" if cls == "PreviewImage" else "output"
        if cls in IMAGE_SAVERS:
            name, sub = self._next_name(prefix, "png")
            folder = self.root / kind / sub
            folder.mkdir(parents=True, exist_ok=True)
            if not self.output_filename:
                size = (max(1, round(w * self.image_scale)), max(1, round(h * self.image_scale)))
                Image.new("RGB", size, color).save(folder / name, format="PNG")
            return {"images": [{"filename": name, "subfolder": sub, "type": kind}]}
        if cls == "SaveVideo":
            name, sub = self._next_name(prefix, "mp4")
            folder = self.root / kind / sub
            folder.mkdir(parents=True, exist_ok=True)
            if not self.output_filename:
                _write_mp4(folder / name, w, h, frames, fps, color)
            return {
                "images": [{"filename": name, "subfolder": sub, "type": kind}],
                "animated": [True],
            }
        name, sub = self._next_name(prefix, "webp")
        folder = self.root / kind / sub
        folder.mkdir(parents=True, exist_ok=True)
        if not self.output_filename:
            imgs = [
                Image.new("RGB", (w, h), (color[0], (color[1] + 8 * i) % 256, color[2]))
                for i in range(frames)
            ]
            buf = io.BytesIO()
            imgs[0].save(
                buf,
                format="WEBP",
                save_all=True,
                append_images=imgs[1:],
                duration=int(1000 / fps),
                loop=0,
                quality=50,
            )
            (folder / name).write_bytes(buf.getvalue())
        return {"images": [{"filename": name, "subfolder": sub, "type": kind}], "animated": [True]}


def _write_mp4(
    path: Path, w: int, h: int, frames: int, fps: float, color: tuple[int, int, int]
) -> None:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    hexcolor = "0x{:02x}{:02x}{:02x}".format(*color)
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"color=c={hexcolor}:s={w}x{h}:r={fps:g}",
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )


@contextlib.contextmanager
def running_comfyui(**kwargs: Any) -> Iterator[FakeComfyUI]:
    """Start a FakeComfyUI for the duration of a ``with`` block."""
    server = FakeComfyUI(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.close()

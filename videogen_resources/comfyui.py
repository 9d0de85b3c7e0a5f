"""A thin, typed client for ComfyUI servers (HTTP + WebSocket), one method per remote operation.

Protocol facts this client relies on (ComfyUI 0.3.6x and later):

- ``POST /prompt`` takes ``{"prompt": {...}, "client_id": ...}`` and answers ``prompt_id``; a bad
  graph answers HTTP 400 with ``error`` and ``node_errors`` (rendered readably here).
- ``/ws?clientId=...`` first sends ``status`` with the session id, then per prompt
  ``execution_start``, ``execution_cached``, ``executing``, ``progress``, ``progress_state``,
  ``executed`` and one of ``execution_success`` / ``execution_error`` / ``execution_interrupted``;
  the very last message of a prompt is ``executing`` whose ``node`` is null (older servers end
  only that way). Binary frames are previews and are ignored.
- ``GET /history/{id}`` answers ``{}`` for an unknown id; outputs are fetched with ``GET /view``.
- ``POST /queue`` with ``{"delete": [prompt_id, ...]}`` drops prompts still waiting; a running
  one is stopped with ``POST /interrupt`` (``{"prompt_id": ...}`` leaves other prompts alone).
- ``/object_info`` writes choice lists as ``[[...], {...}]`` or ``["COMBO", {"options": [...]}]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import httpx
from pydantic import BaseModel, ConfigDict, Field
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from videogen_domain.atomic import atomic_path
from videogen_resources.errors import ServiceError

log = logging.getLogger(__name__)

SERVICE = "comfyui"
OUTPUT_LIST_KEYS = ("images", "gifs", "videos", "audio", "files")
_SAFE_TYPES = frozenset({"output", "temp", "input"})


# --------------------------------------------------------------------------------------------
# Pydantic models in and out
# --------------------------------------------------------------------------------------------


class SystemStats(BaseModel):
    """GET /system_stats (only the fields the studio uses are typed)."""

    model_config = ConfigDict(extra="allow")

    comfyui_version: str | None = None
    python_version: str | None = None
    devices: list[dict[str, Any]] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)


class InputSpec(BaseModel):
    """One input of a node: its type (``COMBO`` for a choice list) and its options."""

    name: str
    type: str
    options: list[Any] | None = None  # for COMBO
    config: dict[str, Any] = Field(default_factory=dict)
    required: bool = True

    @property
    def is_combo(self) -> bool:
        return self.type == "COMBO"


class NodeSchema(BaseModel):
    """One node class as /object_info describes it."""

    name: str
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list)
    output_names: list[str] = Field(default_factory=list)
    output_node: bool = False
    python_module: str | None = None

    @property
    def required_inputs(self) -> list[InputSpec]:
        return [i for i in self.inputs.values() if i.required]


class ObjectInfo(BaseModel):
    """All node classes a server knows."""

    nodes: dict[str, NodeSchema] = Field(default_factory=dict)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.nodes

    def get(self, class_type: str) -> NodeSchema | None:
        return self.nodes.get(class_type)


class QueueState(BaseModel):
    """GET /queue: prompt ids running and pending."""

    running: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.running) + len(self.pending)


class OutputFile(BaseModel):
    """A file a node wrote on the server (as listed in ``executed`` and in history)."""

    node_id: str
    filename: str
    subfolder: str = ""
    type: str = "output"
    animated: bool = False


class HistoryEntry(BaseModel):
    """GET /history/{prompt_id} for one prompt."""

    prompt_id: str
    status_str: str | None = None
    completed: bool = False
    outputs: list[OutputFile] = Field(default_factory=list)
    messages: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)

    def message(self, kind: str) -> dict[str, Any] | None:
        for name, data in self.messages:
            if name == kind:
                return data
        return None

    @property
    def finished(self) -> bool:
        return self.completed or self.status_str in {"success", "error"}


class ProgressEvent(BaseModel):
    """One thing that happened while a prompt ran."""

    t: float  # seconds since the prompt was queued
    kind: str
    node: str | None = None
    value: float | None = None
    max: float | None = None
    text: str = ""


class RunResult(BaseModel):
    """What ``run_workflow`` did: where, which prompt, which files, how long."""

    prompt_id: str
    server: str
    client_id: str
    files: list[Path] = Field(default_factory=list)
    outputs: list[OutputFile] = Field(default_factory=list)
    progress: list[ProgressEvent] = Field(default_factory=list)
    cached_nodes: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0
    reconnects: int = 0
    lost_prompt: str | None = None  # a prompt the server lost (restart), queued again as this one

    def summary(self) -> dict[str, Any]:
        """A short, JSON-friendly account for logs and asset metadata."""
        steps = [e for e in self.progress if e.kind == "progress"]
        nodes = sorted({e.node for e in self.progress if e.kind == "executing" and e.node})
        return {
            "events": len(self.progress),
            "nodes_executed": len(nodes),
            "nodes_cached": len(self.cached_nodes),
            "sampler_steps": len(steps),
            "reconnects": self.reconnects,
            **({"lost_prompt": self.lost_prompt} if self.lost_prompt else {}),
            "elapsed_s": round(self.elapsed_s, 3),
        }


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def _parse_input(name: str, spec: Any, required: bool) -> InputSpec:
    if isinstance(spec, str):  # "hidden" entries such as "PROMPT"
        return InputSpec(name=name, type=spec, required=required)
    if not isinstance(spec, list | tuple) or not spec:
        return InputSpec(name=name, type="*", required=required)
    head = spec[0]
    config = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(head, list):  # old form: [[choices...], {...}]
        return InputSpec(
            name=name, type="COMBO", options=list(head), config=config, required=required
        )
    if head == "COMBO":  # new form: ["COMBO", {"options": [...]}]
        options = config.get("options")
        return InputSpec(
            name=name, type="COMBO", options=list(options or []), config=config, required=required
        )
    return InputSpec(name=name, type=str(head), config=config, required=required)


def parse_node_schema(name: str, raw: dict[str, Any]) -> NodeSchema:
    """Parse one /object_info entry (both choice-list forms)."""
    inputs: dict[str, InputSpec] = {}
    raw_inputs = raw.get("input") or {}
    for section, required in (("required", True), ("optional", False)):
        for in_name, spec in (raw_inputs.get(section) or {}).items():
            inputs[in_name] = _parse_input(in_name, spec, required)
    outputs = [str(o) if not isinstance(o, list) else "COMBO" for o in raw.get("output") or []]
    return NodeSchema(
        name=name,
        inputs=inputs,
        outputs=outputs,
        output_names=[str(n) for n in raw.get("output_name") or outputs],
        output_node=bool(raw.get("output_node", False)),
        python_module=raw.get("python_module"),
    )


def parse_object_info(raw: dict[str, Any]) -> ObjectInfo:
    """Parse a whole /object_info answer."""
    return ObjectInfo(
        nodes={k: parse_node_schema(k, v) for k, v in raw.items() if isinstance(v, dict)}
    )


def parse_history(prompt_id: str, raw: dict[str, Any]) -> HistoryEntry | None:
    """Parse GET /history/{id}; None when the server does not know the id (``{}``)."""
    entry = raw.get(prompt_id)
    if not isinstance(entry, dict):
        return None
    status = entry.get("status") or {}
    messages: list[tuple[str, dict[str, Any]]] = []
    for item in status.get("messages") or []:
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], dict):
            messages.append((str(item[0]), item[1]))
    return HistoryEntry(
        prompt_id=prompt_id,
        status_str=status.get("status_str"),
        completed=bool(status.get("completed", False)),
        outputs=parse_outputs(entry.get("outputs") or {}),
        messages=messages,
    )


def parse_outputs(outputs: dict[str, Any]) -> list[OutputFile]:
    """The files listed under history ``outputs`` (node id -> {"images": [...], ...})."""
    files: list[OutputFile] = []
    for node_id, out in outputs.items():
        if isinstance(out, dict):
            files.extend(_files_of_node(str(node_id), out))
    return files


def _files_of_node(node_id: str, out: dict[str, Any]) -> list[OutputFile]:
    animated = bool(out.get("animated") and any(out.get("animated") or []))
    files = []
    for key in OUTPUT_LIST_KEYS:
        for item in out.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("filename"), str):
                files.append(
                    OutputFile(
                        node_id=node_id,
                        filename=item["filename"],
                        subfolder=str(item.get("subfolder") or ""),
                        type=str(item.get("type") or "output"),
                        animated=animated,
                    )
                )
    return files


def render_prompt_error(body: Any) -> str:
    """Render a POST /prompt 400 answer readably: node id, class, input and what was wrong."""
    if not isinstance(body, dict):
        return str(body)
    err = body.get("error") or {}
    if isinstance(err, str):
        head = err
    else:
        head = str(err.get("message") or "invalid prompt")
        details = err.get("details")
        node_errors_present = bool(body.get("node_errors"))
        if details and not node_errors_present:
            head += f" ({details})"
    lines = [head]
    node_errors = body.get("node_errors") or {}
    if isinstance(node_errors, dict):
        for node_id, info in node_errors.items():
            if not isinstance(info, dict):
                continue
            class_type = info.get("class_type", "?")
            for e in info.get("errors") or []:
                if not isinstance(e, dict):
                    continue
                extra = e.get("extra_info") or {}
                input_name = extra.get("input_name")
                where = f"node {node_id} ({class_type})"
                if input_name:
                    where += f" input '{input_name}'"
                msg = str(e.get("message") or e.get("type") or "error")
                details = str(e.get("details") or "")
                if details and details != input_name:
                    msg += f": {details}"
                lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def sanitize_filename(name: str) -> str:
    """A server-given file name made safe as a local file name, or ValueError.

    Refuses path separators, ``..``, absolute paths, drive letters, NUL and empty names: a
    server's output name is data, never a path.
    """
    if not name or "\x00" in name:
        raise ValueError("empty file name")
    if "/" in name or "\\" in name or ".." in name or name.startswith("~"):
        raise ValueError(f"unsafe file name from server: {name!r}")
    if re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"unsafe file name from server: {name!r}")
    cleaned = re.sub(r"[^\w.\- ()+=,@]", "_", name).strip(" .")
    if not cleaned:
        raise ValueError(f"unsafe file name from server: {name!r}")
    if len(cleaned) > 200:  # keep the extension when shortening
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = (stem[: 199 - len(ext)] + dot + ext) if dot and len(ext) < 12 else cleaned[:200]
    return cleaned


def _safe_subfolder(sub: str) -> str:
    if sub.startswith(("/", "\\")) or ".." in sub.replace("\\", "/").split("/") or "\x00" in sub:
        raise ValueError(f"unsafe subfolder from server: {sub!r}")
    return sub


def parse_version(text: str | None) -> tuple[int, ...]:
    """'0.3.64' -> (0, 3, 64); unknown -> ()."""
    if not text:
        return ()
    nums = re.findall(r"\d+", text.split("+")[0])
    return tuple(int(n) for n in nums[:3])


# --------------------------------------------------------------------------------------------
# Process-wide server bookkeeping (in-flight jobs, servers out of rotation, object_info cache)
# --------------------------------------------------------------------------------------------


@dataclass
class _ServerState:
    in_flight: int = 0
    down_until: float = 0.0
    object_info: ObjectInfo | None = None
    object_info_at: float = 0.0
    version: str | None = None


@dataclass
class _Registry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    servers: dict[str, _ServerState] = field(default_factory=dict)

    def state(self, url: str) -> _ServerState:
        with self.lock:
            return self.servers.setdefault(url, _ServerState())


_REGISTRY = _Registry()


def _norm_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def _ws_url(base: str, client_id: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, f"clientId={client_id}", ""))


# --------------------------------------------------------------------------------------------
# The resource
# --------------------------------------------------------------------------------------------


class ComfyUIResource(dg.ConfigurableResource):
    """One or several ComfyUI servers, each its own GPU slot; jobs go to the least busy one."""

    urls: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8188"],
        description="Base URLs of the ComfyUI servers (each one a GPU slot).",
    )
    timeout_s: float = Field(
        default=300.0,
        description="Wall-clock limit of one generation, queueing included.",
    )
    connect_timeout_s: float = Field(default=5.0, description="TCP/WebSocket connect timeout.")
    read_timeout_s: float = Field(default=30.0, description="Read timeout of one HTTP call.")
    max_retries: int = Field(
        default=3,
        description="Retries of a safe call on connection errors and HTTP 5xx.",
    )
    backoff_s: float = Field(default=0.5, description="First retry delay; doubles each retry.")
    max_download_bytes: int = Field(
        default=2 * 1024**3,
        description="Refuse output files larger than this many bytes.",
    )
    poll_interval_s: float = Field(
        default=2.0,
        description="How often /history is polled when the WebSocket is silent.",
    )
    down_cooldown_s: float = Field(
        default=30.0,
        description="How long a server that refused connections stays out.",
    )
    object_info_ttl_s: float = Field(
        default=300.0,
        description="How long a server's /object_info is cached in-process.",
    )
    server_folder: str = Field(
        default="videogen",
        description="Subfolder of ComfyUI's input/ and output/ the studio writes into, one "
        "folder per project below it (uploads and generated files).",
    )
    cleanup: bool = Field(
        default_factory=lambda: _env_flag("COMFYUI_CLEANUP", default=True),
        description="Delete the studio's generated files on the server once downloaded (needs "
        "comfyui_dir: ComfyUI has no HTTP endpoint that deletes files). Env COMFYUI_CLEANUP.",
    )
    comfyui_dir: str | None = Field(
        default_factory=lambda: os.environ.get("COMFYUI_DIR") or None,
        description="ComfyUI's base folder (holding input/ and output/) as this machine sees "
        "it, when it does (same machine or a mounted share). Env COMFYUI_DIR.",
    )
    step_log_interval_s: float = Field(
        default=2.0,
        description="Sampler progress (step n/m) is logged at a sampler's first and last step "
        "and at most this often in between.",
    )
    resubmit_lost: bool = Field(
        default=True,
        description="A prompt its server lost (ComfyUI restarted: after the WebSocket reconnects "
        "the prompt is in neither /queue nor /history) is queued again once with the same "
        "inputs and seed; False fails it at once.",
    )

    # ----------------------------------------------------------------------------- plumbing

    def _servers(self) -> list[str]:
        if not self.urls:
            raise ServiceError(SERVICE, "no ComfyUI server URL configured")
        return [_norm_url(u) for u in self.urls]

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)

    @contextlib.contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        with httpx.Client(timeout=self._timeout(), follow_redirects=False) as client:
            yield client

    def _request(
        self,
        method: str,
        url: str,
        *,
        retry: bool,
        retry_5xx: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP call; safe calls are retried on connection errors and 5xx with backoff."""
        attempts = 1 + (max(0, self.max_retries) if retry else 0)
        last: ServiceError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff_s * (2 ** (attempt - 1)))
            try:
                with self._client() as client:
                    resp = client.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = ServiceError(
                    SERVICE, f"cannot connect to {_host(url)}: {exc}", retryable=True
                )
                last.__cause__ = exc
                continue
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                last = ServiceError(
                    SERVICE, f"connection to {_host(url)} broke: {exc}", retryable=True
                )
                continue
            except httpx.TimeoutException as exc:
                raise ServiceError(
                    SERVICE, f"{method} {_path(url)} timed out: {exc}", retryable=True
                ) from exc
            if resp.status_code >= 500:
                last = ServiceError(
                    SERVICE,
                    f"{method} {_path(url)} failed",
                    status=resp.status_code,
                    server_message=resp.text[:2000],
                    retryable=True,
                )
                if not retry_5xx:
                    raise last
                continue
            return resp
        assert last is not None
        raise last

    def _json(self, resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError as exc:
            raise ServiceError(
                SERVICE,
                f"{what}: answer is not JSON",
                status=resp.status_code,
                server_message=resp.text[:500],
            ) from exc

    def _check(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code >= 400:
            raise ServiceError(
                SERVICE,
                f"{what} failed",
                status=resp.status_code,
                server_message=resp.text[:2000],
                retryable=resp.status_code == 429,
            )

    # ------------------------------------------------------------------ one remote operation each

    def system_stats(self, server: str | None = None) -> SystemStats:
        """GET /system_stats."""
        base = _norm_url(server) if server else self._servers()[0]
        resp = self._request("GET", f"{base}/system_stats", retry=True)
        self._check(resp, "GET /system_stats")
        raw = self._json(resp, "GET /system_stats")
        system = raw.get("system") or {}
        stats = SystemStats(
            comfyui_version=system.get("comfyui_version"),
            python_version=system.get("python_version"),
            devices=list(raw.get("devices") or []),
            raw=raw,
        )
        _REGISTRY.state(base).version = stats.comfyui_version
        return stats

    def object_info(self, server: str | None = None, *, cached: bool = False) -> ObjectInfo:
        """GET /object_info, parsed (both choice-list forms); ``cached`` reuses a recent answer."""
        base = _norm_url(server) if server else self._servers()[0]
        state = _REGISTRY.state(base)
        now = time.monotonic()
        if (
            cached
            and state.object_info is not None
            and (now - state.object_info_at < self.object_info_ttl_s)
        ):
            return state.object_info
        resp = self._request("GET", f"{base}/object_info", retry=True)
        self._check(resp, "GET /object_info")
        info = parse_object_info(self._json(resp, "GET /object_info"))
        state.object_info, state.object_info_at = info, now
        return info

    def queue_prompt(
        self, workflow: dict[str, Any], client_id: str, server: str | None = None
    ) -> str:
        """POST /prompt; returns the prompt id. A 400 fails at once with node errors rendered."""
        base = _norm_url(server) if server else self._servers()[0]
        # Nothing is queued when the server refuses the connection or answers 5xx (it answers
        # 500 before queueing, e.g. for a body it cannot parse), so those are retried.
        resp = self._request(
            "POST", f"{base}/prompt", retry=True, json={"prompt": workflow, "client_id": client_id}
        )
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
            raise ServiceError(
                SERVICE,
                "ComfyUI refused the workflow: " + render_prompt_error(body),
                status=resp.status_code,
                server_message=resp.text[:4000],
                retryable=False,
            )
        data = self._json(resp, "POST /prompt")
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if not isinstance(prompt_id, str) or not prompt_id:
            raise ServiceError(
                SERVICE, "POST /prompt answered no prompt_id", server_message=resp.text[:500]
            )
        return prompt_id

    def history(self, prompt_id: str, server: str | None = None) -> HistoryEntry | None:
        """GET /history/{prompt_id}; None when the server does not know it (answers ``{}``)."""
        base = _norm_url(server) if server else self._servers()[0]
        resp = self._request("GET", f"{base}/history/{prompt_id}", retry=True)
        self._check(resp, "GET /history")
        raw = self._json(resp, "GET /history")
        return parse_history(prompt_id, raw if isinstance(raw, dict) else {})

    def queue(self, server: str | None = None) -> QueueState:
        """GET /queue: which prompts run and wait."""
        base = _norm_url(server) if server else self._servers()[0]
        resp = self._request("GET", f"{base}/queue", retry=False)
        self._check(resp, "GET /queue")
        raw = self._json(resp, "GET /queue")

        def ids(items: Any) -> list[str]:
            return [str(i[1]) for i in items or [] if isinstance(i, list) and len(i) > 1]

        return QueueState(
            running=ids(raw.get("queue_running")), pending=ids(raw.get("queue_pending"))
        )

    def interrupt(self, prompt_id: str | None = None, server: str | None = None) -> None:
        """POST /interrupt (only ``prompt_id`` when given, so other jobs are left alone)."""
        base = _norm_url(server) if server else self._servers()[0]
        body = {"prompt_id": prompt_id} if prompt_id else {}
        resp = self._request("POST", f"{base}/interrupt", retry=True, json=body)
        self._check(resp, "POST /interrupt")

    def upload_image(
        self,
        path: str | Path,
        server: str | None = None,
        *,
        overwrite: bool = False,
        subfolder: str = "",
        name: str | None = None,
    ) -> str:
        """POST /upload/image (into ``subfolder`` of the server's input/, as ``name`` when
        given); returns the name to put in LoadImage (the server may rename)."""
        base = _norm_url(server) if server else self._servers()[0]
        path = Path(path)
        data = path.read_bytes()
        files = {
            "image": (
                name or path.name,
                data,
                "image/png" if path.suffix.lower() == ".png" else "application/octet-stream",
            )
        }
        form = {"type": "input", "overwrite": "true" if overwrite else "false"}
        if subfolder:
            form["subfolder"] = _safe_subfolder(subfolder)
        resp = self._request("POST", f"{base}/upload/image", retry=True, files=files, data=form)
        self._check(resp, "POST /upload/image")
        body = self._json(resp, "POST /upload/image")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise ServiceError(
                SERVICE, "POST /upload/image answered no name", server_message=resp.text[:500]
            )
        sub = str(body.get("subfolder") or "")
        return f"{sub}/{name}" if sub else name

    def download(
        self,
        filename: str,
        subfolder: str,
        type: str,
        dest_dir: str | Path,
        server: str | None = None,
        *,
        dest_name: str | None = None,
    ) -> Path:
        """GET /view into ``dest_dir`` (never outside it), atomically, refusing files too large."""
        base = _norm_url(server) if server else self._servers()[0]
        try:
            local = sanitize_filename(dest_name or filename)
            if dest_name is None:
                sanitize_filename(filename)
            _safe_subfolder(subfolder)
        except ValueError as exc:
            raise ServiceError(SERVICE, f"refused output file: {exc}") from exc
        if type not in _SAFE_TYPES:
            raise ServiceError(SERVICE, f"refused output file type {type!r}")
        dest_root = Path(dest_dir).resolve()
        target = (dest_root / local).resolve()
        if target.parent != dest_root:
            raise ServiceError(SERVICE, f"refused output file {filename!r}: escapes {dest_root}")
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        attempts = 1 + max(0, self.max_retries)
        last: ServiceError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff_s * (2 ** (attempt - 1)))
            try:
                return self._download_once(f"{base}/view", params, target)
            except ServiceError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise last

    def _download_once(self, url: str, params: dict[str, str], target: Path) -> Path:
        cap = self.max_download_bytes
        try:
            with self._client() as client, client.stream("GET", url, params=params) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ServiceError(
                        SERVICE,
                        f"GET /view {params['filename']!r} failed",
                        status=resp.status_code,
                        server_message=resp.text[:500],
                        retryable=resp.status_code >= 500,
                    )
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > cap:
                    raise ServiceError(
                        SERVICE,
                        f"output {params['filename']!r} is "
                        f"{int(declared)} bytes, over the {cap}-byte cap",
                    )
                received = 0
                with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                    for chunk in resp.iter_bytes(1 << 16):
                        received += len(chunk)
                        if received > cap:
                            raise ServiceError(
                                SERVICE, f"output {params['filename']!r} is over the {cap}-byte cap"
                            )
                        fh.write(chunk)
                    if declared is not None and declared.isdigit() and received != int(declared):
                        raise ServiceError(
                            SERVICE,
                            f"output {params['filename']!r} truncated: "
                            f"{received} of {declared} bytes",
                            retryable=True,
                        )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServiceError(
                SERVICE, f"cannot connect to {_host(url)}: {exc}", retryable=True
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise ServiceError(
                SERVICE, f"download of {params['filename']!r} broke off: {exc}", retryable=True
            ) from exc
        except httpx.TimeoutException as exc:
            raise ServiceError(
                SERVICE, f"download of {params['filename']!r} timed out", retryable=True
            ) from exc
        return target

    # ---------------------------------------------------------------------------- scheduling

    def server_loads(self) -> dict[str, int | None]:
        """Each server's load: its /queue (running + pending prompts); None = down."""
        loads: dict[str, int | None] = {}
        now = time.monotonic()
        for url in self._servers():
            state = _REGISTRY.state(url)
            if state.down_until > now:
                loads[url] = None
                continue
            try:
                q = self.queue(url)
            except ServiceError:
                state.down_until = now + self.down_cooldown_s
                loads[url] = None
                continue
            # The server's own queue (running + pending) is the truth: a job of ours that the
            # server has finished but that we have not downloaded yet no longer keeps it busy.
            loads[url] = q.size
        return loads

    def pick_server(self, exclude: set[str] | None = None) -> str:
        """The least busy server that is up (ties: the first configured)."""
        exclude = exclude or set()
        loads = {u: v for u, v in self.server_loads().items() if u not in exclude}
        up = {u: v for u, v in loads.items() if v is not None}
        if not up:
            raise ServiceError(
                SERVICE,
                "no ComfyUI server is reachable: " + ", ".join(self._servers()),
                retryable=True,
            )
        # ties: fewer of our own jobs not yet collected, then the first configured
        return min(up, key=lambda u: (up[u] or 0, _REGISTRY.state(u).in_flight))

    def mark_down(self, server: str) -> None:
        """Take a server out of rotation for ``down_cooldown_s``."""
        _REGISTRY.state(_norm_url(server)).down_until = time.monotonic() + self.down_cooldown_s

    # ---------------------------------------------------------------------------- run a job

    def run_workflow(
        self,
        workflow: dict[str, Any] | Callable[[str], dict[str, Any]],
        *,
        outputs_dir: str | Path,
        progress: Callable[[str], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
        output_nodes: list[str] | None = None,
    ) -> RunResult:
        """Run one API-format workflow on the least busy server and download its outputs.

        The WebSocket is opened before queueing (so no message is missed); the run is followed
        to completion, then history is read and the outputs (of ``output_nodes`` when given)
        are downloaded into ``outputs_dir``. ``workflow`` may be a function of the chosen
        server's URL that builds the prompt there (e.g. after uploading images to it).
        This is `submit` followed by `finish`.
        """
        job = self.submit(
            workflow,
            outputs_dir=outputs_dir,
            progress=progress,
            cancel_check=cancel_check,
            output_nodes=output_nodes,
        )
        return self.finish(job)

    def submit(
        self,
        workflow: dict[str, Any] | Callable[[str], dict[str, Any]],
        *,
        outputs_dir: str | Path,
        progress: Callable[[str], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
        output_nodes: list[str] | None = None,
    ) -> QueuedJob:
        """Queue one workflow on the least busy server without waiting for it.

        Opens the job's own WebSocket, then POSTs the prompt; a server that cannot be reached
        is taken out of rotation and the next one is tried. The job counts as in flight on its
        server until `finish` or `cancel` is called with the handle returned (exactly one of
        them must be, or the WebSocket stays open and the server looks busier than it is).
        """
        tried: set[str] = set()
        last: ServiceError | None = None
        for _ in range(len(self._servers())):
            server = self.pick_server(exclude=tried)
            tried.add(server)
            state = _REGISTRY.state(server)
            with _REGISTRY.lock:
                state.in_flight += 1
            try:
                try:
                    prompt = workflow(server) if callable(workflow) else workflow
                except ServiceError as exc:
                    if exc.retryable and exc.status is None:
                        raise _ServerUnreachable(exc) from exc
                    raise
                return self._submit_on(
                    server,
                    prompt,
                    outputs_dir=Path(outputs_dir),
                    progress=progress,
                    cancel_check=cancel_check,
                    output_nodes=output_nodes,
                )
            except _ServerUnreachable as exc:
                log.warning("ComfyUI %s unreachable, trying another server: %s", server, exc)
                self.mark_down(server)
                last = exc.error
                with _REGISTRY.lock:
                    state.in_flight -= 1
            except BaseException:
                with _REGISTRY.lock:
                    state.in_flight -= 1
                raise
        assert last is not None
        raise last

    def finish(
        self,
        job: QueuedJob,
        *,
        on_finished: Callable[[], None] | None = None,
    ) -> RunResult:
        """Follow a queued job to completion, read its history and download its outputs.

        Errors are those of `run_workflow`; a timeout, a ``cancel_check`` that turns True or
        an interruption from outside (KeyboardInterrupt, run termination) interrupts the prompt
        on its server. The wall-clock limit counts from the call, so a job queued ahead behind
        another one is not charged for that wait. ``on_finished`` is called once the prompt
        has finished successfully on its server, before its outputs are downloaded (a batch
        queues its next job there, while the server starts the one queued behind this one).
        """
        if job.released:
            raise RuntimeError(f"ComfyUI prompt {job.prompt_id} was already finished or cancelled")
        try:
            return self._finish(job, on_finished)
        finally:
            job.release()

    def cancel(self, job: QueuedJob) -> None:
        """Take a job that will not be finished off its server: delete it from the queue when it
        still waits there, interrupt it when it already runs. Never raises ServiceError."""
        if job.released:
            return
        try:
            with contextlib.suppress(ServiceError):
                self.delete_queued([job.prompt_id], job.server)
            with contextlib.suppress(ServiceError):
                self.interrupt(job.prompt_id, job.server)
            job.say(f"ComfyUI {job.server}: prompt {job.prompt_id} cancelled")
        finally:
            job.release()

    def remove_server_files(
        self,
        files: list[OutputFile],
        say: Callable[[str], None] | None = None,
        *,
        types: tuple[str, ...] = ("output", "temp"),
    ) -> list[Path]:
        """Delete files from the server's folders (``comfyui_dir``); returns what was deleted.
        ComfyUI has no HTTP endpoint that deletes files, so without ``comfyui_dir`` nothing can
        be deleted. Only files of ``types`` (downloaded outputs unless told) below
        ``server_folder`` are touched: never another client's."""
        if not self.comfyui_dir:
            return []
        base = Path(self.comfyui_dir).expanduser()
        own = self.server_folder.strip("/")
        removed: list[Path] = []
        for out in files:
            if out.type not in types or out.type not in _SAFE_TYPES or not own:
                continue
            sub = out.subfolder.replace("\\", "/").strip("/")
            if sub != own and not sub.startswith(own + "/"):
                continue
            try:
                _safe_subfolder(sub)
                name = sanitize_filename(out.filename)
            except ValueError:
                continue
            folder = (base / out.type).resolve()
            target = (folder / sub / name).resolve()
            if not target.is_relative_to(folder / own):
                continue
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
                removed.append(target)
        if removed and say is not None:
            say(f"ComfyUI: removed {len(removed)} file(s) of ours from {base}")
        return removed

    def remove_uploads(self, names: list[str], say: Callable[[str], None] | None = None) -> None:
        """Delete pictures uploaded for a finished job (names as `upload_image` answered them)
        from the server's input/ (``comfyui_dir``), when ``cleanup`` is on."""
        if not self.cleanup:
            return
        files = []
        for name in names:
            sub, _, filename = name.rpartition("/")
            files.append(OutputFile(node_id="", filename=filename, subfolder=sub, type="input"))
        self.remove_server_files(files, say, types=("input",))

    def delete_queued(self, prompt_ids: list[str], server: str | None = None) -> None:
        """POST /queue ``{"delete": [...]}``: drop prompts that are still waiting (a prompt that
        already runs is left alone; interrupt it)."""
        base = _norm_url(server) if server else self._servers()[0]
        resp = self._request("POST", f"{base}/queue", retry=True, json={"delete": prompt_ids})
        self._check(resp, "POST /queue")

    def _open_ws(self, server: str, client_id: str) -> ClientConnection:
        # max_queue=None: a job queued ahead is not read until its turn; a bounded queue would
        # stop the socket's reader thread, which then answers neither pings nor the close
        # handshake (the socket would drop after the ping timeout or take close_timeout to
        # close). A waiting job only gets the server's few broadcasts (queue status).
        return ws_connect(
            _ws_url(server, client_id),
            open_timeout=self.connect_timeout_s,
            close_timeout=2.0,
            max_size=64 * 1024 * 1024,
            max_queue=None,
            proxy=None,
            compression=None,
        )

    def _submit_on(
        self,
        server: str,
        workflow: dict[str, Any],
        *,
        outputs_dir: Path,
        progress: Callable[[str], None] | None,
        cancel_check: Callable[[], bool] | None,
        output_nodes: list[str] | None,
    ) -> QueuedJob:
        client_id = uuid.uuid4().hex
        say = progress or (lambda _line: None)
        try:
            ws = self._open_ws(server, client_id)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise _ServerUnreachable(
                ServiceError(SERVICE, f"cannot open WebSocket to {server}: {exc}", retryable=True)
            ) from exc
        start = time.monotonic()
        try:
            prompt_id = self.queue_prompt(workflow, client_id, server)
        except ServiceError as exc:
            with contextlib.suppress(Exception):
                ws.close()
            if exc.retryable and exc.status is None:
                raise _ServerUnreachable(exc) from exc
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                ws.close()
            raise
        say(f"ComfyUI {server}: queued prompt {prompt_id}")
        return QueuedJob(
            server=server,
            prompt_id=prompt_id,
            client_id=client_id,
            workflow=workflow,
            outputs_dir=outputs_dir,
            output_nodes=output_nodes,
            start=start,
            say=say,
            cancel_check=cancel_check,
            _ws=ws,
            _state=_REGISTRY.state(server),
        )

    def _finish(self, job: QueuedJob, on_finished: Callable[[], None] | None) -> RunResult:
        server, prompt_id, say = job.server, job.prompt_id, job.say
        follower = _Follower(
            self,
            server,
            job.client_id,
            prompt_id,
            job.take_ws(),
            job.start,
            say,
            job.cancel_check,
            job.workflow,
        )
        follower.deadline = max(follower.deadline, time.monotonic() + self.timeout_s)
        try:
            entry = follower.follow()
        finally:
            job.prompt_id = prompt_id = follower.prompt_id
        if on_finished is not None:
            on_finished()
        files: list[Path] = []
        outputs = entry.outputs if entry is not None else []
        if not outputs:
            outputs = follower.executed_outputs
        if job.output_nodes is not None:
            outputs = [o for o in outputs if o.node_id in set(job.output_nodes)]
        job.outputs_dir.mkdir(parents=True, exist_ok=True)
        for out in outputs:
            files.append(
                self.download(out.filename, out.subfolder, out.type, job.outputs_dir, server)
            )
        if self.cleanup:
            self.remove_server_files(outputs, say)
        elapsed = time.monotonic() - job.start
        say(f"ComfyUI {server}: prompt {prompt_id} done in {elapsed:.1f}s, {len(files)} file(s)")
        return RunResult(
            prompt_id=prompt_id,
            server=server,
            client_id=job.client_id,
            files=files,
            outputs=outputs,
            progress=follower.events,
            cached_nodes=follower.cached,
            elapsed_s=elapsed,
            reconnects=follower.reconnects,
            lost_prompt=follower.resubmitted,
        )


@dataclass(eq=False)
class QueuedJob:
    """A prompt queued on one server by `ComfyUIResource.submit`, bound to that server.

    It holds the WebSocket opened for it (its own client id) and counts as in flight on its
    server until `ComfyUIResource.finish` or `ComfyUIResource.cancel` releases it.
    """

    server: str
    prompt_id: str
    client_id: str
    workflow: dict[str, Any]
    outputs_dir: Path
    output_nodes: list[str] | None
    start: float  # time.monotonic() just before the prompt was posted
    say: Callable[[str], None]
    cancel_check: Callable[[], bool] | None
    _ws: ClientConnection | None
    _state: _ServerState
    _released: bool = False

    def __post_init__(self) -> None:
        with _REGISTRY.lock:
            _LIVE_JOBS.add(self)

    @property
    def released(self) -> bool:
        return self._released

    def take_ws(self) -> ClientConnection:
        """Hand the WebSocket over (to the follower, which closes it)."""
        ws, self._ws = self._ws, None
        if ws is None:
            raise RuntimeError(f"ComfyUI prompt {self.prompt_id} is already being followed")
        return ws

    def release(self) -> None:
        """Close the WebSocket if still held and stop counting the job as in flight (once)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if not self._released:
            self._released = True
            with _REGISTRY.lock:
                self._state.in_flight -= 1
                _LIVE_JOBS.discard(self)


_LIVE_JOBS: set[QueuedJob] = set()  # queued by this process and not yet finished or cancelled


def stop_live_jobs(timeout_s: float = 1.0) -> list[str]:
    """Take every prompt this process has queued or running off its server, at once and from
    any thread (a render stopped by Ctrl-C): a waiting prompt is deleted from the queue, a
    running one interrupted. Returns their prompt ids; the followers then see the prompts end
    as interrupted. Never raises."""
    with _REGISTRY.lock:
        jobs = list(_LIVE_JOBS)
    with httpx.Client(timeout=timeout_s) as client:
        for job in jobs:
            with contextlib.suppress(httpx.HTTPError):
                client.post(f"{job.server}/queue", json={"delete": [job.prompt_id]})
            with contextlib.suppress(httpx.HTTPError):
                client.post(f"{job.server}/interrupt", json={"prompt_id": job.prompt_id})
    return [job.prompt_id for job in jobs]


class _ServerUnreachable(Exception):
    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


class _Follower:
    """Follows one prompt over the WebSocket, reconnecting and polling /history as needed."""

    def __init__(
        self,
        res: ComfyUIResource,
        server: str,
        client_id: str,
        prompt_id: str,
        ws: ClientConnection,
        start: float,
        say: Callable[[str], None],
        cancel_check: Callable[[], bool] | None,
        workflow: dict[str, Any],
    ) -> None:
        self.res, self.server, self.client_id, self.prompt_id = res, server, client_id, prompt_id
        self.ws: ClientConnection | None = ws
        self.start, self.say, self.cancel_check = start, say, cancel_check
        self.workflow = workflow
        self.events: list[ProgressEvent] = []
        self.cached: list[str] = []
        self.executed_outputs: list[OutputFile] = []
        self.reconnects = 0
        self.deadline = start + res.timeout_s
        self.last_poll = time.monotonic()
        self.last_step_at = 0.0
        self.resubmitted: str | None = None  # the lost prompt's id, once queued again

    def _event(
        self,
        kind: str,
        text: str = "",
        node: str | None = None,
        value: float | None = None,
        maximum: float | None = None,
    ) -> None:
        self.events.append(
            ProgressEvent(
                t=round(time.monotonic() - self.start, 4),
                kind=kind,
                node=node,
                value=value,
                max=maximum,
                text=text,
            )
        )

    def _class_of(self, node: str | None) -> str:
        item = self.workflow.get(node or "") if node else None
        return str(item.get("class_type")) if isinstance(item, dict) else "?"

    def follow(self) -> HistoryEntry | None:
        try:
            return self._follow()
        except ServiceError:
            raise
        except BaseException:
            # Stopped from outside (KeyboardInterrupt, Dagster's run termination) or by a bug:
            # the prompt would otherwise go on using the GPU with nobody waiting for it.
            self._interrupt()
            raise
        finally:
            self._close()

    def _close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close()
            self.ws = None

    def _follow(self) -> HistoryEntry | None:
        poll = max(0.05, self.res.poll_interval_s)
        while True:
            now = time.monotonic()
            if self.cancel_check is not None and self.cancel_check():
                self._interrupt()
                raise ServiceError(SERVICE, f"prompt {self.prompt_id} cancelled")
            if now >= self.deadline:
                self._interrupt()
                raise ServiceError(
                    SERVICE,
                    f"prompt {self.prompt_id} on {self.server} ran past its "
                    f"{self.res.timeout_s:g}s timeout and was interrupted",
                    retryable=False,
                )
            if self.ws is None:
                self._reconnect()
                if self.ws is not None:
                    entry = self._after_reconnect()
                    if entry is not None:
                        return entry
            if self.ws is None:  # still no socket: poll history
                entry = self._poll_history(force=True)
                if entry is not None:
                    return entry
                time.sleep(min(poll, max(0.0, self.deadline - time.monotonic())))
                continue
            try:
                msg = self.ws.recv(timeout=min(poll, max(0.01, self.deadline - now)))
            except TimeoutError:
                entry = self._poll_history()
                if entry is not None:
                    return entry
                continue
            except (ConnectionClosed, OSError) as exc:
                self.say(f"ComfyUI {self.server}: WebSocket dropped ({exc}); reconnecting")
                self._event("ws_dropped", str(exc))
                self._close()
                entry = self._poll_history(force=True)
                if entry is not None:
                    return entry
                continue
            if isinstance(msg, bytes):
                continue  # preview frames
            done = self._handle(msg)
            if done:
                return self._final_history()

    def _reconnect(self) -> None:
        try:
            self.ws = self.res._open_ws(self.server, self.client_id)
            self.reconnects += 1
            self._event("ws_reconnected")
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError):
            self.ws = None

    def _after_reconnect(self) -> HistoryEntry | None:
        """After a reconnect: the prompt's history when it finished meanwhile; None when it is
        still queued or running. A prompt in neither /queue nor /history was lost by a server
        restart: it is queued again once (same inputs, same seed), or fails at once."""
        try:
            queue = self.res.queue(self.server)
            if self.prompt_id in queue.running or self.prompt_id in queue.pending:
                return None
            # read after /queue: a prompt leaves the queue and enters history in one step
            entry = self.res.history(self.prompt_id, self.server)
        except ServiceError:
            return None  # cannot tell now; the next drop or poll looks again
        if entry is not None:
            if not entry.finished:
                return None
            self._raise_if_failed(entry)
            return entry
        lost = self.prompt_id
        self._event("prompt_lost", lost)
        if self.resubmitted is not None or not self.res.resubmit_lost:
            again = (
                f" (it had been queued again after prompt {self.resubmitted} was lost)"
                if self.resubmitted is not None
                else ""
            )
            raise ServiceError(
                SERVICE,
                f"ComfyUI {self.server} restarted and lost prompt {lost}{again}; "
                "check the server, then render again",
                retryable=False,
            )
        self.prompt_id = self.res.queue_prompt(self.workflow, self.client_id, self.server)
        self.resubmitted = lost
        self.executed_outputs = []
        self.deadline = max(self.deadline, time.monotonic() + self.res.timeout_s)
        self._event("resubmitted", self.prompt_id)
        self.say(
            f"ComfyUI {self.server} restarted and lost prompt {lost}; queued it again as "
            f"{self.prompt_id} (same inputs, same seed)"
        )
        return None

    def _interrupt(self) -> None:
        with contextlib.suppress(ServiceError):
            self.res.interrupt(self.prompt_id, self.server)
        self._event("interrupt_sent")

    def _poll_history(self, force: bool = False) -> HistoryEntry | None:
        now = time.monotonic()
        if not force and now - self.last_poll < self.res.poll_interval_s:
            return None
        self.last_poll = now
        try:
            entry = self.res.history(self.prompt_id, self.server)
        except ServiceError:
            return None
        if entry is None or not entry.finished:
            return None
        self._raise_if_failed(entry)
        return entry

    def _final_history(self) -> HistoryEntry | None:
        # History is written just before the final messages; read it once, briefly retrying.
        for _ in range(5):
            entry = self.res.history(self.prompt_id, self.server)
            if entry is not None and entry.finished:
                self._raise_if_failed(entry)
                return entry
            time.sleep(0.1)
        return None

    def _raise_if_failed(self, entry: HistoryEntry) -> None:
        if entry.status_str != "error":
            return
        err = entry.message("execution_error")
        if err is not None:
            raise self._execution_error(err)
        intr = entry.message("execution_interrupted")
        if intr is not None:
            raise self._interrupted(intr)
        raise ServiceError(SERVICE, f"prompt {self.prompt_id} failed on {self.server}")

    def _execution_error(self, data: dict[str, Any]) -> ServiceError:
        node = data.get("node_id")
        node_type = data.get("node_type") or self._class_of(str(node) if node else None)
        exc_msg = str(data.get("exception_message") or "").strip()
        exc_type = str(data.get("exception_type") or "")
        return ServiceError(
            SERVICE,
            f"execution error in node {node} ({node_type}): {exc_type}: {exc_msg}".rstrip(": "),
            server_message=exc_msg or None,
            retryable=False,
        )

    def _interrupted(self, data: dict[str, Any]) -> ServiceError:
        node = data.get("node_id")
        return ServiceError(
            SERVICE,
            f"prompt {self.prompt_id} was interrupted at node {node} "
            f"({data.get('node_type') or self._class_of(node)})",
        )

    def _handle(self, raw: str) -> bool:
        try:
            msg = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(msg, dict):
            return False
        kind = str(msg.get("type"))
        raw_data = msg.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        pid = data.get("prompt_id")
        if pid is not None and pid != self.prompt_id:
            return False  # another client's or another prompt's message
        if kind == "execution_start":
            self._event(kind, "started")
            self.say(f"ComfyUI {self.server}: prompt {self.prompt_id} started")
        elif kind == "execution_cached":
            nodes = [str(n) for n in data.get("nodes") or []]
            self.cached.extend(nodes)
            self._event(kind, f"{len(nodes)} cached")
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                if pid == self.prompt_id:
                    self._event(kind, "finished")
                    return True
                return False
            self._event(kind, self._class_of(str(node)), node=str(node))
            self.say(f"ComfyUI: node {node} ({self._class_of(str(node))})")
        elif kind == "progress":
            value, maximum = data.get("value"), data.get("max")
            node = data.get("node")
            self._event(
                kind,
                node=str(node) if node else None,
                value=float(value) if isinstance(value, int | float) else None,
                maximum=float(maximum) if isinstance(maximum, int | float) else None,
            )
            if isinstance(value, int | float) and isinstance(maximum, int | float) and maximum:
                # the first and last step of a sampler, and between them one line every
                # step_log_interval_s: enough to follow it in the run's log, not a flood
                now = time.monotonic()
                first, last = value <= 1, value >= maximum
                if first or last or now - self.last_step_at >= self.res.step_log_interval_s:
                    self.last_step_at = now
                    self.say(
                        f"ComfyUI: node {node} ({self._class_of(str(node))}) "
                        f"step {int(value)}/{int(maximum)}"
                    )
        elif kind == "executed":
            node = str(data.get("node"))
            out = data.get("output") if isinstance(data.get("output"), dict) else {}
            files = _files_of_node(node, out or {})
            self.executed_outputs = [o for o in self.executed_outputs if o.node_id != node]
            self.executed_outputs.extend(files)
            self._event(kind, f"{len(files)} file(s)", node=node)
        elif kind == "execution_success":
            self._event(kind, "success")
            return True
        elif kind == "execution_error":
            self._event(
                kind, str(data.get("exception_message") or ""), node=str(data.get("node_id"))
            )
            raise self._execution_error(data)
        elif kind == "execution_interrupted":
            self._event(kind, node=str(data.get("node_id")))
            raise self._interrupted(data)
        elif kind == "progress_state":
            pass  # per-node state; `executing`/`progress` carry what the studio reports
        return False


def _env_flag(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in {"0", "false", "no", "off"}


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def frames_for(seconds: float, fps: float) -> int:
    """Frames needed to cover ``seconds`` at ``fps`` (ceil, at least 1)."""
    return max(1, math.ceil(round(seconds * fps, 6)))


__all__ = [
    "ComfyUIResource",
    "HistoryEntry",
    "InputSpec",
    "NodeSchema",
    "ObjectInfo",
    "OutputFile",
    "ProgressEvent",
    "QueueState",
    "QueuedJob",
    "RunResult",
    "SystemStats",
    "frames_for",
    "parse_history",
    "parse_object_info",
    "parse_version",
    "render_prompt_error",
    "sanitize_filename",
]

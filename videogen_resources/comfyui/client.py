"""ComfyUI's HTTP calls and its WebSocket, one method per remote operation, on the HTTP base."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from videogen_domain.atomic import atomic_path
from videogen_resources.comfyui.models import (
    SAFE_TYPES,
    SERVICE,
    HistoryEntry,
    ObjectInfo,
    QueueState,
    SystemStats,
    parse_history,
    parse_object_info,
    render_prompt_error,
    safe_subfolder,
    sanitize_filename,
)
from videogen_resources.comfyui.pool import REGISTRY
from videogen_resources.errors import ServiceError
from videogen_resources.http import RETRY_STATUSES, HttpPolicy, HttpService

# A server answers 500 before queueing (e.g. for a body it cannot parse): worth repeating.
RETRY_STATUSES_COMFYUI = RETRY_STATUSES | {500}


def ws_url(base: str, client_id: str) -> str:
    """The WebSocket address of a server for one client id."""
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, f"clientId={client_id}", ""))


class ComfyUIClient:
    """The HTTP calls to ComfyUI servers (absolute base URLs, one pooled client for all)."""

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        max_download_bytes: int,
        object_info_ttl_s: float,
    ) -> None:
        self.policy = policy
        self.http = HttpService(SERVICE, policy=policy)
        self.max_download_bytes = max_download_bytes
        self.object_info_ttl_s = object_info_ttl_s

    def close(self) -> None:
        self.http.close()

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

    def system_stats(self, base: str) -> SystemStats:
        """GET /system_stats."""
        resp = self.http.request("GET", f"{base}/system_stats")
        raw = self._json(resp, "GET /system_stats")
        system = raw.get("system") or {}
        stats = SystemStats(
            comfyui_version=system.get("comfyui_version"),
            python_version=system.get("python_version"),
            devices=list(raw.get("devices") or []),
            raw=raw,
        )
        REGISTRY.state(base).version = stats.comfyui_version
        return stats

    def object_info(self, base: str, *, cached: bool = False) -> ObjectInfo:
        """GET /object_info, parsed (both choice-list forms); ``cached`` reuses a recent answer."""
        state = REGISTRY.state(base)
        now = time.monotonic()
        if (
            cached
            and state.object_info is not None
            and (now - state.object_info_at < self.object_info_ttl_s)
        ):
            return state.object_info
        resp = self.http.request("GET", f"{base}/object_info")
        info = parse_object_info(self._json(resp, "GET /object_info"))
        state.object_info, state.object_info_at = info, now
        return info

    def queue_prompt(self, base: str, workflow: dict[str, Any], client_id: str) -> str:
        """POST /prompt; returns the prompt id. A 400 fails at once with node errors rendered."""
        # Nothing is queued when the server refuses the connection or answers 5xx, so the
        # call is safe to repeat.
        resp = self.http.request(
            "POST",
            f"{base}/prompt",
            safe=True,
            check=False,
            json={"prompt": workflow, "client_id": client_id},
        )
        if resp.status_code in self.policy.retry_statuses:
            raise self.http.status_error(resp, "POST", f"{base}/prompt")
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

    def history(self, base: str, prompt_id: str) -> HistoryEntry | None:
        """GET /history/{prompt_id}; None when the server does not know it (answers ``{}``)."""
        resp = self.http.request("GET", f"{base}/history/{prompt_id}")
        raw = self._json(resp, "GET /history")
        return parse_history(prompt_id, raw if isinstance(raw, dict) else {})

    def queue(self, base: str) -> QueueState:
        """GET /queue: which prompts run and wait (asked once: it measures a server's load)."""
        resp = self.http.request("GET", f"{base}/queue", retries=0)
        raw = self._json(resp, "GET /queue")

        def ids(items: Any) -> list[str]:
            return [str(i[1]) for i in items or [] if isinstance(i, list) and len(i) > 1]

        return QueueState(
            running=ids(raw.get("queue_running")), pending=ids(raw.get("queue_pending"))
        )

    def interrupt(self, base: str, prompt_id: str | None = None) -> None:
        """POST /interrupt (only ``prompt_id`` when given, so other jobs are left alone)."""
        body = {"prompt_id": prompt_id} if prompt_id else {}
        self.http.request("POST", f"{base}/interrupt", safe=True, json=body)

    def delete_queued(self, base: str, prompt_ids: list[str]) -> None:
        """POST /queue ``{"delete": [...]}``: drop prompts that are still waiting."""
        self.http.request("POST", f"{base}/queue", safe=True, json={"delete": prompt_ids})

    def upload_image(
        self,
        base: str,
        path: Path,
        *,
        overwrite: bool = False,
        subfolder: str = "",
        name: str | None = None,
    ) -> str:
        """POST /upload/image; returns the name to put in LoadImage (the server may rename)."""
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
            form["subfolder"] = safe_subfolder(subfolder)
        resp = self.http.request("POST", f"{base}/upload/image", safe=True, files=files, data=form)
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
        base: str,
        filename: str,
        subfolder: str,
        type: str,
        dest_dir: str | Path,
        *,
        dest_name: str | None = None,
    ) -> Path:
        """GET /view into ``dest_dir`` (never outside it), atomically, refusing files too large;
        a broken or truncated download is fetched again."""
        try:
            local = sanitize_filename(dest_name or filename)
            if dest_name is None:
                sanitize_filename(filename)
            safe_subfolder(subfolder)
        except ValueError as exc:
            raise ServiceError(SERVICE, f"refused output file: {exc}") from exc
        if type not in SAFE_TYPES:
            raise ServiceError(SERVICE, f"refused output file type {type!r}")
        dest_root = Path(dest_dir).resolve()
        target = (dest_root / local).resolve()
        if target.parent != dest_root:
            raise ServiceError(SERVICE, f"refused output file {filename!r}: escapes {dest_root}")
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        return self.http.retrying(
            lambda _final: self._download_once(f"{base}/view", params, target),
            what=f"GET /view {filename!r}",
        )

    def _download_once(self, url: str, params: dict[str, str], target: Path) -> Path:
        cap = self.max_download_bytes
        name = params["filename"]
        with self.http.stream("GET", url, params=params) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise ServiceError(
                    SERVICE,
                    f"GET /view {name!r} failed",
                    status=resp.status_code,
                    server_message=resp.text[:500],
                    retryable=resp.status_code >= 500 or resp.status_code == 429,
                )
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise ServiceError(
                    SERVICE, f"output {name!r} is {int(declared)} bytes, over the {cap}-byte cap"
                )
            received = 0
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 16):
                    received += len(chunk)
                    if received > cap:
                        raise ServiceError(SERVICE, f"output {name!r} is over the {cap}-byte cap")
                    fh.write(chunk)
                if declared is not None and declared.isdigit() and received != int(declared):
                    raise ServiceError(
                        SERVICE,
                        f"output {name!r} truncated: {received} of {declared} bytes",
                        retryable=True,
                    )
        return target

    def open_ws(self, base: str, client_id: str) -> ClientConnection:
        """A WebSocket to ``base`` for ``client_id``."""
        # max_queue=None: a job queued ahead is not read until its turn; a bounded queue would
        # stop the socket's reader thread, which then answers neither pings nor the close
        # handshake (the socket would drop after the ping timeout or take close_timeout to
        # close). A waiting job only gets the server's few broadcasts (queue status).
        return ws_connect(
            ws_url(base, client_id),
            open_timeout=self.policy.connect_s,
            close_timeout=2.0,
            max_size=64 * 1024 * 1024,
            max_queue=None,
            proxy=None,
            compression=None,
        )

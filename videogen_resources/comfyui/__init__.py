"""ComfyUI servers (HTTP + WebSocket): a typed client, one method per remote operation.

``models`` holds the answers as typed values and their parsing, ``client`` the HTTP calls (on
the shared HTTP base), ``follower`` follows one prompt over its WebSocket, ``pool`` keeps each
server's load and the jobs this process has queued, ``resource`` is the Dagster resource that
picks a server and runs a job end to end.

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

from videogen_resources.comfyui.models import (
    HistoryEntry,
    InputSpec,
    NodeSchema,
    ObjectInfo,
    OutputFile,
    ProgressEvent,
    QueueState,
    RunResult,
    SystemStats,
    frames_for,
    parse_history,
    parse_object_info,
    parse_version,
    render_prompt_error,
    sanitize_filename,
)
from videogen_resources.comfyui.pool import QueuedJob, stop_live_jobs
from videogen_resources.comfyui.resource import ComfyUIResource

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
    "stop_live_jobs",
]

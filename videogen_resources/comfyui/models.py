"""ComfyUI's answers as typed values, and the parsing and checking of what a server sends."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SERVICE = "comfyui"
OUTPUT_LIST_KEYS = ("images", "gifs", "videos", "audio", "files")
SAFE_TYPES = frozenset({"output", "temp", "input"})


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
            files.extend(files_of_node(str(node_id), out))
    return files


def files_of_node(node_id: str, out: dict[str, Any]) -> list[OutputFile]:
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


def safe_subfolder(sub: str) -> str:
    if sub.startswith(("/", "\\")) or ".." in sub.replace("\\", "/").split("/") or "\x00" in sub:
        raise ValueError(f"unsafe subfolder from server: {sub!r}")
    return sub


def parse_version(text: str | None) -> tuple[int, ...]:
    """'0.3.64' -> (0, 3, 64); unknown -> ()."""
    if not text:
        return ()
    nums = re.findall(r"\d+", text.split("+")[0])
    return tuple(int(n) for n in nums[:3])


def frames_for(seconds: float, fps: float) -> int:
    """Frames needed to cover ``seconds`` at ``fps`` (ceil, at least 1)."""
    return max(1, math.ceil(round(seconds * fps, 6)))

"""Versioned ComfyUI workflows: API-format JSON + a binding file + a registry entry.

A workflow is a ComfyUI API-format graph (``{"id": {"class_type": ..., "inputs": {...}}}``).
Its binding file names which node input receives each value the studio supplies (prompt, seed,
size, frames, fps, LoRAs, images) and which node's output is the result. ``workflows.yaml``
maps a workflow name to its file, kind, minimum ComfyUI version and description. Adding a model
means adding those three things; no code changes.

The registry is layered. The shipped workflows (``workflows_data/``, package data, so an
installed wheel has them) come first; a studio's own ``<studio>/workflows/`` folder, then each
folder named in ``VIDEOGEN_WORKFLOWS`` (several separated by ``os.pathsep``) are overlays: each
holds its own ``workflows.yaml`` whose entries add workflows or replace shipped ones of the same
name, with files relative to that folder.

``Workflow.version`` is a short content hash of the JSON and the binding: it becomes the asset
code version, so editing either file makes the affected assets stale.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from videogen_domain.errors import InputError
from videogen_domain.names import WORKFLOW_NAME_RE
from videogen_resources.comfyui import ObjectInfo, parse_object_info

REGISTRY_FILE = "workflows.yaml"
_MODEL_FILE_RE = re.compile(r"\.(safetensors|sft|ckpt|pt|pth|bin|gguf|onnx|pkl)$", re.I)


class WorkflowError(InputError):
    """A workflow, binding or registry file is wrong (names the file and the field)."""


# --------------------------------------------------------------------------------------------
# Binding model
# --------------------------------------------------------------------------------------------


class Target(BaseModel):
    """One node input that receives a slot's value."""

    model_config = ConfigDict(extra="forbid")

    node: str
    input: str


class Bypass(BaseModel):
    """Remove ``node`` and feed its consumers from the link on its input(s) ``through``.

    ``through`` is one input name (every output of the node is replaced by that input's link)
    or a map from output index to input name (e.g. LoraLoader: ``{0: model, 1: clip}``).
    """

    model_config = ConfigDict(extra="forbid")

    node: str
    through: str | dict[int, str]

    def input_for(self, output_index: int) -> str | None:
        if isinstance(self.through, str):
            return self.through
        return self.through.get(output_index)


class Slot(BaseModel):
    """A value the studio supplies, and where it goes."""

    model_config = ConfigDict(extra="forbid")

    targets: list[Target]
    required: bool = False
    default: Any = None
    bypass: list[Bypass] = Field(default_factory=list)  # applied when the value is not given
    multiple_of: int | None = Field(default=None, ge=1)  # round integers up to k*m + plus
    plus: int = 0
    maximum: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "node" in data:
            data = dict(data)
            target = {"node": str(data.pop("node")), "input": data.pop("input", None)}
            data["targets"] = [target, *data.get("targets", [])]
        if isinstance(data, dict):
            for t in data.get("targets") or []:
                if isinstance(t, dict) and "node" in t:
                    t["node"] = str(t["node"])
            for b in data.get("bypass") or []:
                if isinstance(b, dict) and "node" in b:
                    b["node"] = str(b["node"])
        return data

    def round(self, value: int) -> int:
        """Round an integer up to the form ``k * multiple_of + plus`` (then cap at maximum)."""
        if self.multiple_of:
            k = max(0, math.ceil((value - self.plus) / self.multiple_of))
            value = k * self.multiple_of + self.plus
            if self.maximum is not None and value > self.maximum:
                value = ((self.maximum - self.plus) // self.multiple_of) * self.multiple_of
                value += self.plus
        elif self.maximum is not None:
            value = min(value, self.maximum)
        return value


class Binding(BaseModel):
    """A binding file: the output node and the slots."""

    model_config = ConfigDict(extra="forbid")

    output_node: str
    slots: dict[str, Slot] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _str_ids(cls, data: Any) -> Any:
        if isinstance(data, dict) and "output_node" in data:
            data = dict(data)
            data["output_node"] = str(data["output_node"])
        return data


class RegistryEntry(BaseModel):
    """One entry of workflows.yaml."""

    model_config = ConfigDict(extra="forbid")

    file: str
    binding: str | None = None
    kind: Literal["image", "video"]
    min_comfyui_version: str
    description: str = ""


class WorkflowProblem(BaseModel):
    """One thing wrong with a workflow against a server's node definitions."""

    node: str | None = None
    class_type: str | None = None
    input: str | None = None
    message: str

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node {self.node}" + (f" ({self.class_type})" if self.class_type else ""))
        if self.input:
            where.append(f"input '{self.input}'")
        return (" ".join(where) + ": " if where else "") + self.message


# --------------------------------------------------------------------------------------------
# Workflow
# --------------------------------------------------------------------------------------------


class Workflow(BaseModel):
    """A loaded workflow: its graph, binding, registry facts and content version."""

    name: str
    kind: Literal["image", "video"]
    min_comfyui_version: str
    description: str = ""
    path: Path
    binding_path: Path
    prompt: dict[str, dict[str, Any]]
    binding: Binding
    version: str

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(self.binding.slots)

    def has_slot(self, name: str) -> bool:
        return name in self.binding.slots

    @property
    def output_node(self) -> str:
        return self.binding.output_node

    def class_types(self) -> set[str]:
        return {str(n.get("class_type")) for n in self.prompt.values()}

    def slot_default(self, name: str) -> Any:
        """The slot's default, else the value the template holds at its first target."""
        slot = self.binding.slots[name]
        if slot.default is not None:
            return slot.default
        t = slot.targets[0]
        return self.prompt[t.node]["inputs"].get(t.input)

    def fit_size(self, width: int, height: int) -> tuple[int, int]:
        """The size this workflow is asked for ``width`` x ``height``: both sides scaled down by
        one factor when either exceeds its slot's ``maximum`` (a 16:9 request stays 16:9), then
        each rounded per its slot (``multiple_of``/``plus``)."""
        slots = self.binding.slots
        w_slot, h_slot = slots.get("width"), slots.get("height")
        factor = 1.0
        if w_slot is not None and w_slot.maximum is not None and width > w_slot.maximum:
            factor = min(factor, w_slot.maximum / width)
        if h_slot is not None and h_slot.maximum is not None and height > h_slot.maximum:
            factor = min(factor, h_slot.maximum / height)
        w, h = max(1, math.floor(width * factor)), max(1, math.floor(height * factor))
        return (w_slot.round(w) if w_slot else w, h_slot.round(h) if h_slot else h)

    def _fit_size_values(self, values: dict[str, Any]) -> dict[str, Any]:
        w, h = values.get("width"), values.get("height")
        if not (isinstance(w, int) and isinstance(h, int)) or bool in (type(w), type(h)):
            return values
        fitted_w, fitted_h = self.fit_size(w, h)
        return {**values, "width": fitted_w, "height": fitted_h}

    def apply(self, values: dict[str, Any]) -> dict[str, Any]:
        """A fresh API prompt with ``values`` bound; unused optional parts bypassed and pruned.

        A slot whose value is None (or not given) keeps the template's value, unless it has a
        ``bypass``: then the named nodes are removed and their consumers rewired. Integers are
        rounded up per the slot (e.g. frames to 8k+1); a width and height over their slots'
        ``maximum`` are scaled down together, keeping the aspect (`fit_size`). Nodes the
        output no longer needs are dropped. Unknown slot names are an error.
        """
        unknown = sorted(set(values) - set(self.binding.slots))
        if unknown:
            raise WorkflowError(
                f"workflow {self.name!r} has no slot(s) {', '.join(unknown)}; "
                f"it has: {', '.join(sorted(self.binding.slots))}",
                file=self.binding_path,
                field="slots",
            )
        prompt = copy.deepcopy(self.prompt)
        values = self._fit_size_values(values)
        for name, slot in self.binding.slots.items():
            value = values.get(name)
            if value is None:
                value = slot.default
            if value is None:
                if slot.required:
                    raise WorkflowError(
                        f"workflow {self.name!r} needs a value for {name!r}",
                        file=self.binding_path,
                        field=f"slots.{name}",
                    )
                for b in slot.bypass:
                    _bypass(prompt, b, self.binding_path)
                continue
            for t in slot.targets:
                node = prompt.get(t.node)
                if node is None:  # removed by an earlier bypass
                    continue
                old = node["inputs"].get(t.input)
                node["inputs"][t.input] = _coerce(value, old, slot)
        return _prune(prompt, self.binding.output_node)


def _coerce(value: Any, old: Any, slot: Slot) -> Any:
    if isinstance(old, bool) or isinstance(value, bool):
        return bool(value)
    if isinstance(old, int) and isinstance(value, int | float):
        return slot.round(math.ceil(value) if isinstance(value, float) else value)
    if isinstance(old, float) and isinstance(value, int | float):
        return float(value)
    if isinstance(value, int) and slot.multiple_of:
        return slot.round(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _is_link(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) == 2
        and isinstance(v[0], str)
        and isinstance(v[1], int)
        and not isinstance(v[1], bool)
    )


def _bypass(prompt: dict[str, Any], b: Bypass, binding_path: Path) -> None:
    node = prompt.get(b.node)
    if node is None:
        return
    for other_id, other in prompt.items():
        if other_id == b.node:
            continue
        for in_name, v in list(other["inputs"].items()):
            if _is_link(v) and v[0] == b.node:
                through = b.input_for(v[1])
                src = node["inputs"].get(through) if through else None
                if not isinstance(src, list) or not _is_link(src):
                    raise WorkflowError(
                        f"cannot bypass node {b.node}: its input {through!r} is not a link",
                        file=binding_path,
                        field="bypass",
                    )
                other["inputs"][in_name] = list(src)
    del prompt[b.node]


def _prune(prompt: dict[str, Any], output_node: str) -> dict[str, Any]:
    keep: set[str] = set()
    stack = [output_node]
    while stack:
        nid = stack.pop()
        if nid in keep or nid not in prompt:
            continue
        keep.add(nid)
        for v in prompt[nid]["inputs"].values():
            if _is_link(v):
                stack.append(v[0])
    return {k: v for k, v in prompt.items() if k in keep}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


SHIPPED_ROOT = Path(__file__).resolve().parent / "workflows_data"
"""The workflows shipped with the studio (package data)."""

STUDIO_FOLDER = "workflows"
"""A studio's own overlay: ``<studio>/workflows/``."""

ENV_VAR = "VIDEOGEN_WORKFLOWS"


def workflows_root(root: str | Path | None = None) -> Path:
    """``root``, else the shipped workflows folder."""
    return Path(root) if root is not None else SHIPPED_ROOT


def registry_folders(
    root: str | Path | None = None, env: Mapping[str, str] | None = None
) -> list[Path]:
    """The registry's layers, weakest first: the shipped folder, ``root`` (a studio's
    ``workflows/`` folder; skipped when it holds no ``workflows.yaml``), then each folder of
    ``$VIDEOGEN_WORKFLOWS`` (an error when one holds no ``workflows.yaml``)."""
    env = os.environ if env is None else env
    layers = [SHIPPED_ROOT]
    if root is not None and (Path(root) / REGISTRY_FILE).is_file():
        layers.append(Path(root))
    for part in env.get(ENV_VAR, "").split(os.pathsep):
        if part.strip():
            layers.append(Path(part.strip()).expanduser())
    out: list[Path] = []
    for layer in layers:
        if all(layer.resolve() != seen.resolve() for seen in out):
            out.append(layer)
    return out


def studio_workflows(studio: str | Path) -> Path:
    """A studio's own workflows folder (an overlay of the shipped registry)."""
    return Path(studio) / STUDIO_FOLDER


def _read_registry(folder: Path) -> dict[str, RegistryEntry]:
    path = folder / REGISTRY_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        hint = f" (named by ${ENV_VAR})" if folder != SHIPPED_ROOT else ""
        raise WorkflowError(f"workflow registry not found{hint}", file=path) from exc
    except yaml.YAMLError as exc:
        raise WorkflowError(f"not valid YAML: {exc}", file=path) from exc
    items = raw.get("workflows") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and "workflows" in raw and items is None:
        items = {}  # an overlay that lists nothing yet
    if not isinstance(items, dict):
        raise WorkflowError("expected a mapping under 'workflows'", file=path, field="workflows")
    out: dict[str, RegistryEntry] = {}
    for name, item in items.items():
        if not isinstance(name, str) or not WORKFLOW_NAME_RE.fullmatch(name):
            raise WorkflowError(
                f"invalid workflow name {name!r}: use letters, digits, '.', '_' or '-'",
                file=path,
                field="workflows",
            )
        try:
            out[str(name)] = RegistryEntry.model_validate(item)
        except ValidationError as exc:
            raise WorkflowError(_pyd(exc), file=path, field=f"workflows.{name}") from exc
    return out


def registry_sources(root: str | Path | None = None) -> dict[str, Path]:
    """Name -> the folder whose ``workflows.yaml`` defines it (the strongest layer wins)."""
    out: dict[str, Path] = {}
    for folder in registry_folders(root):
        for name in _read_registry(folder):
            out[name] = folder
    return out


def load_registry(root: str | Path | None = None) -> dict[str, RegistryEntry]:
    """Every registered workflow, name -> entry, over all layers (see `registry_folders`)."""
    out: dict[str, RegistryEntry] = {}
    for folder in registry_folders(root):
        out.update(_read_registry(folder))
    return out


def list_workflows(kind: str | None = None, root: str | Path | None = None) -> list[str]:
    """Names in the registry (of ``kind`` when given)."""
    return [n for n, e in load_registry(root).items() if kind is None or e.kind == kind]


def check_workflow_name(
    name: str, kind: Literal["image", "video"], root: str | Path | None = None
) -> str:
    """``name`` when the registry has a workflow of ``kind`` by that name, else a WorkflowError
    listing the ones it has."""
    registry = load_registry(root)
    entry = registry.get(name)
    known = ", ".join(sorted(n for n, e in registry.items() if e.kind == kind))
    if entry is None:
        raise WorkflowError(
            f"unknown {kind} workflow {name!r}; known {kind} workflows: {known} (add your own "
            f"under <studio>/{STUDIO_FOLDER}/)",
            field=f"{kind}_workflow",
        )
    if entry.kind != kind:
        raise WorkflowError(
            f"{name!r} is an {entry.kind} workflow, not a {kind} workflow; {kind} workflows: "
            f"{known}",
            field=f"{kind}_workflow",
        )
    return name


def load_workflow(name: str, root: str | Path | None = None) -> Workflow:
    """Load a registered workflow and its binding, checking that they fit together.

    ``root`` is a studio's own workflows folder (an overlay; see `registry_folders`).
    """
    sources = registry_sources(root)
    base = sources.get(name)
    if base is None:
        raise WorkflowError(
            f"unknown workflow {name!r}; known: {', '.join(sorted(sources))}",
            file=registry_folders(root)[-1] / REGISTRY_FILE,
            field="workflows",
        )
    entry = _read_registry(base)[name]
    path = base / entry.file
    binding_path = (
        (base / entry.binding)
        if entry.binding
        else path.with_name(path.name.removesuffix(".json") + ".binding.yaml")
    )
    return load_workflow_files(
        path,
        binding_path,
        name=name,
        kind=entry.kind,
        min_comfyui_version=entry.min_comfyui_version,
        description=entry.description,
    )


def load_workflow_files(
    path: str | Path,
    binding_path: str | Path,
    *,
    name: str | None = None,
    kind: Literal["image", "video"] = "image",
    min_comfyui_version: str = "0",
    description: str = "",
) -> Workflow:
    """Load one workflow JSON + binding pair (no registry needed)."""
    path, binding_path = Path(path), Path(binding_path)
    try:
        wf_bytes = path.read_bytes()
    except FileNotFoundError as exc:
        raise WorkflowError("workflow file not found", file=path) from exc
    try:
        bind_bytes = binding_path.read_bytes()
    except FileNotFoundError as exc:
        raise WorkflowError("binding file not found", file=binding_path) from exc
    prompt = parse_api_workflow(wf_bytes, path)
    try:
        raw_binding = yaml.safe_load(bind_bytes.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise WorkflowError(f"not valid YAML: {exc}", file=binding_path) from exc
    try:
        binding = Binding.model_validate(raw_binding)
    except ValidationError as exc:
        raise WorkflowError(_pyd(exc), file=binding_path) from exc
    _check_binding(prompt, binding, binding_path)
    version = hashlib.sha256(wf_bytes + b"\0" + bind_bytes).hexdigest()[:12]
    return Workflow(
        name=name or path.stem,
        kind=kind,
        min_comfyui_version=min_comfyui_version,
        description=description,
        path=path,
        binding_path=binding_path,
        prompt=prompt,
        binding=binding,
        version=version,
    )


def parse_api_workflow(data: bytes | str, path: str | Path = "<workflow>") -> dict[str, Any]:
    """Parse API-format workflow JSON, with errors naming the file and the node/field."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WorkflowError(f"not valid JSON: {exc}", file=path) from exc
    if isinstance(raw, dict) and "nodes" in raw and "links" in raw:
        raise WorkflowError(
            "this is a ComfyUI UI-format workflow; save it with 'Export (API)' instead", file=path
        )
    if isinstance(raw, dict) and isinstance(raw.get("prompt"), dict):
        raw = raw["prompt"]
    if not isinstance(raw, dict) or not raw:
        raise WorkflowError("expected a JSON object of nodes keyed by id", file=path)
    for nid, node in raw.items():
        if not isinstance(node, dict):
            raise WorkflowError("node is not an object", file=path, field=f"{nid}")
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            raise WorkflowError("node has no class_type", file=path, field=f"{nid}.class_type")
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError("node inputs is not an object", file=path, field=f"{nid}.inputs")
        node.setdefault("inputs", {})
        for in_name, v in node["inputs"].items():
            if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
                if str(v[0]) not in raw:
                    raise WorkflowError(
                        f"links to node {v[0]!r}, which does not exist",
                        file=path,
                        field=f"{nid}.inputs.{in_name}",
                    )
                v[0] = str(v[0])
    return raw


def _check_binding(prompt: dict[str, Any], binding: Binding, path: Path) -> None:
    if binding.output_node not in prompt:
        raise WorkflowError(
            f"output node {binding.output_node!r} is not in the workflow",
            file=path,
            field="output_node",
        )
    for name, slot in binding.slots.items():
        if not slot.targets:
            raise WorkflowError("slot has no target", file=path, field=f"slots.{name}")
        for t in slot.targets:
            node = prompt.get(t.node)
            if node is None:
                raise WorkflowError(
                    f"names node {t.node!r}, which is not in the workflow",
                    file=path,
                    field=f"slots.{name}",
                )
            if t.input not in node["inputs"]:
                raise WorkflowError(
                    f"names input {t.input!r} of node {t.node} ({node['class_type']}), which "
                    f"the workflow does not set; it has: {', '.join(node['inputs'])}",
                    file=path,
                    field=f"slots.{name}",
                )
            if _is_link(node["inputs"][t.input]):
                raise WorkflowError(
                    f"input {t.input!r} of node {t.node} is a link, not a value",
                    file=path,
                    field=f"slots.{name}",
                )
        for b in slot.bypass:
            node = prompt.get(b.node)
            if node is None:
                raise WorkflowError(
                    f"bypasses node {b.node!r}, which is not in the workflow",
                    file=path,
                    field=f"slots.{name}.bypass",
                )
            names = [b.through] if isinstance(b.through, str) else list(b.through.values())
            for n in names:
                if not _is_link(node["inputs"].get(n)):
                    raise WorkflowError(
                        f"bypass of node {b.node} goes through {n!r}, which is not a linked input",
                        file=path,
                        field=f"slots.{name}.bypass",
                    )


def _pyd(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Validation against a server's node definitions
# --------------------------------------------------------------------------------------------


def _as_info(object_info: ObjectInfo | dict[str, Any]) -> ObjectInfo:
    return object_info if isinstance(object_info, ObjectInfo) else parse_object_info(object_info)


def missing_nodes(
    workflow: Workflow | dict[str, Any], object_info: ObjectInfo | dict[str, Any]
) -> list[str]:
    """Class types the workflow uses that the server does not have (sorted)."""
    info = _as_info(object_info)
    prompt = workflow.prompt if isinstance(workflow, Workflow) else workflow
    return sorted({str(n.get("class_type")) for n in prompt.values()} - set(info.nodes))


def _types_match(received: str, wanted: str) -> bool:
    if received == "*" or wanted == "*":
        return True
    got = set(received.split(","))
    want = set(wanted.split(","))
    return bool(got & want)


def _is_model_file(value: Any) -> bool:
    return isinstance(value, str) and bool(_MODEL_FILE_RE.search(value))


def validate_workflow(
    workflow: Workflow | dict[str, Any], object_info: ObjectInfo | dict[str, Any]
) -> list[WorkflowProblem]:
    """Check a workflow against node definitions the way ComfyUI's validation would.

    Every class_type exists; every required input is given, linked or bound; every link points
    to an existing node output of the type the input wants; numbers are in range; choice values
    are among the options (model-file names and uploaded images are not checked: they depend on
    what is installed). Inputs the node does not define are reported too (likely typos).
    """
    info = _as_info(object_info)
    prompt = workflow.prompt if isinstance(workflow, Workflow) else workflow
    bound: set[tuple[str, str]] = set()
    if isinstance(workflow, Workflow):
        bound = {(t.node, t.input) for s in workflow.binding.slots.values() for t in s.targets}
    problems: list[WorkflowProblem] = []

    def add(nid: str | None, cls: str | None, inp: str | None, msg: str) -> None:
        problems.append(WorkflowProblem(node=nid, class_type=cls, input=inp, message=msg))

    has_output = False
    for nid, node in prompt.items():
        cls = str(node.get("class_type"))
        schema = info.get(cls)
        if schema is None:
            add(nid, cls, None, f"node class {cls!r} does not exist on this server")
            continue
        has_output = has_output or schema.output_node
        inputs: dict[str, Any] = node.get("inputs") or {}
        for spec in schema.inputs.values():
            if spec.required and spec.name not in inputs and (nid, spec.name) not in bound:
                add(nid, cls, spec.name, f"required input is missing ({spec.type})")
        for in_name, value in inputs.items():
            ispec = schema.inputs.get(in_name)
            if ispec is None:
                add(nid, cls, in_name, "the node has no such input")
                continue
            if _is_link(value):
                src_id, idx = value
                src = prompt.get(src_id)
                if src is None:
                    add(nid, cls, in_name, f"links to node {src_id!r}, which does not exist")
                    continue
                src_schema = info.get(str(src.get("class_type")))
                if src_schema is None:
                    continue  # reported on that node
                if idx < 0 or idx >= len(src_schema.outputs):
                    add(
                        nid,
                        cls,
                        in_name,
                        f"links to output {idx} of node {src_id} "
                        f"({src_schema.name}), which has {len(src_schema.outputs)} output(s)",
                    )
                    continue
                got = src_schema.outputs[idx]
                if not _types_match(got, ispec.type):
                    add(
                        nid,
                        cls,
                        in_name,
                        f"wants {ispec.type} but node {src_id} "
                        f"({src_schema.name}) output {idx} gives {got}",
                    )
                continue
            problems.extend(
                _check_value(
                    nid, cls, ispec.name, ispec.type, ispec.options, ispec.config, value, bound
                )
            )
    if not has_output and prompt:
        add(None, None, None, "the workflow has no output node")
    if isinstance(workflow, Workflow):
        out = prompt.get(workflow.output_node)
        schema = info.get(str(out.get("class_type"))) if out else None
        if schema is not None and not schema.output_node:
            add(
                workflow.output_node,
                schema.name,
                None,
                "the binding's output node is not an output node",
            )
    return problems


def _check_value(
    nid: str,
    cls: str,
    name: str,
    typ: str,
    options: list[Any] | None,
    config: dict[str, Any],
    value: Any,
    bound: set[tuple[str, str]],
) -> list[WorkflowProblem]:
    out: list[WorkflowProblem] = []

    def bad(msg: str) -> None:
        out.append(WorkflowProblem(node=nid, class_type=cls, input=name, message=msg))

    if typ == "COMBO":
        if config.get("image_upload") or _is_model_file(value) or not options:
            return out  # depends on the server's files
        if value not in options:
            shown = ", ".join(repr(o) for o in options[:12])
            more = ", ..." if len(options) > 12 else ""
            bad(f"value {value!r} not among the choices [{shown}{more}]")
        return out
    if typ in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(f"expects {typ}, got {value!r}")
            return out
        if typ == "INT" and isinstance(value, float) and not value.is_integer():
            bad(f"expects INT, got {value!r}")
        lo, hi = config.get("min"), config.get("max")
        if isinstance(lo, int | float) and value < lo:
            bad(f"value {value} smaller than min of {lo}")
        if isinstance(hi, int | float) and value > hi:
            bad(f"value {value} bigger than max of {hi}")
        return out
    if typ == "BOOLEAN" and not isinstance(value, bool):
        bad(f"expects BOOLEAN, got {value!r}")
    elif typ == "STRING" and not isinstance(value, str):
        bad(f"expects STRING, got {value!r}")
    elif typ not in ("INT", "FLOAT", "BOOLEAN", "STRING", "COMBO") and (nid, name) not in bound:
        bad(f"expects a link to a {typ} output, got a value {value!r}")
    return out


def missing_models(
    workflow: Workflow, object_info: ObjectInfo | dict[str, Any]
) -> list[WorkflowProblem]:
    """Model files the workflow loads that the server does not list among the input's choices.

    `validate_workflow` leaves model files alone (they depend on the server's disk); against a
    live server they can be checked. Inputs a binding slot fills are skipped (the studio sets
    them per job, e.g. a character's LoRA).
    """
    info = _as_info(object_info)
    bound = {(t.node, t.input) for s in workflow.binding.slots.values() for t in s.targets}
    problems: list[WorkflowProblem] = []
    for nid, node in workflow.prompt.items():
        schema = info.get(str(node.get("class_type")))
        if schema is None:
            continue
        for in_name, value in (node.get("inputs") or {}).items():
            spec = schema.inputs.get(in_name)
            if spec is None or spec.type != "COMBO" or (nid, in_name) in bound:
                continue
            if _is_model_file(value) and spec.options is not None and value not in spec.options:
                problems.append(
                    WorkflowProblem(
                        node=nid,
                        class_type=schema.name,
                        input=in_name,
                        message=f"model file {value!r} is not installed on the server "
                        f"({len(spec.options)} file(s) offered)",
                    )
                )
    return problems


def newer_node_schemas(root: str | Path | None = None) -> dict[str, Any]:
    """Node schemas (object_info form) of nodes newer than ComfyUI 0.3.64: Flux 2, LTX-2."""
    path = workflows_root(root) / "schemas" / "newer_nodes.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    nodes: dict[str, Any] = raw["nodes"]
    return nodes


__all__ = [
    "Binding",
    "Bypass",
    "RegistryEntry",
    "Slot",
    "Target",
    "Workflow",
    "WorkflowError",
    "WorkflowProblem",
    "check_workflow_name",
    "list_workflows",
    "load_registry",
    "load_workflow",
    "load_workflow_files",
    "missing_models",
    "missing_nodes",
    "newer_node_schemas",
    "parse_api_workflow",
    "registry_folders",
    "registry_sources",
    "studio_workflows",
    "validate_workflow",
    "workflows_root",
]

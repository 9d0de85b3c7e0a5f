"""Read YAML into pydantic models with errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from videogen_domain.errors import InputError
from videogen_domain.safeio import read_limited

M = TypeVar("M", bound=BaseModel)


MAX_YAML_BYTES = 1024 * 1024
"""A brief or binding is a few hundred bytes; anything over 1 MB is not one."""


def _read_text(path: Path) -> str:
    raw = read_limited(path, MAX_YAML_BYTES)
    if len(raw) > MAX_YAML_BYTES:
        raise InputError(
            f"larger than {MAX_YAML_BYTES // 1024} KB; this is not a YAML file the studio wrote",
            file=path,
            line=1,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            file=path,
            line=line,
        ) from None


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Walk a composed YAML node tree along a pydantic error location; return a 1-based line."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if getattr(key_node, "value", None) == part:
                    best = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return best
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part < len(node.value):
                node = node.value[part]
                best = node.start_mark.line + 1
            else:
                return best
        else:
            return best
    return best


def load_yaml_model(path: Path, model: type[M], *, text: str | None = None) -> M:
    """Parse ``path`` (or ``text``) as YAML and validate it as ``model``.

    Raises:
        InputError: naming the file, the line and the field of the first problem.
    """
    source = _read_text(path) if text is None else text
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(
            f"malformed YAML: {problem}", file=path, line=mark.line + 1 if mark else None
        ) from None
    except RecursionError:
        raise InputError("malformed YAML: nested too deeply", file=path, line=1) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("expected a mapping of fields at the top level", file=path, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        field = ".".join(str(p) for p in loc) or None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        raise InputError(msg, file=path, line=_line_of(node, loc), field=field) from None

"""The `videogen workflows` command: the ComfyUI workflow registry, its bindings, and a check
of each workflow against a live server's node definitions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_resources.errors import ServiceError


def _root(ctx: click.Context) -> Path:
    return paths.studio_root(ctx.obj.get("home") if ctx.obj else None)


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _where(folder: Path, studio_folder: Path) -> str:
    # lazy: the workflow registry loads Dagster and httpx; `videogen --help` lists this command
    from videogen_resources.workflows import SHIPPED_ROOT

    if folder == SHIPPED_ROOT:
        return "shipped"
    if folder.resolve() == studio_folder.resolve():
        return "studio"
    return str(folder)


def _binding_rows(wf: Any) -> list[dict[str, Any]]:
    rows = []
    for name, slot in wf.binding.slots.items():
        targets = [f"{t.node}.{t.input} ({wf.prompt[t.node]['class_type']})" for t in slot.targets]
        default = slot.default if slot.default is not None else wf.slot_default(name)
        rows.append(
            {
                "slot": name,
                "targets": targets,
                "required": slot.required,
                "default": default,
                "optional_nodes": [b.node for b in slot.bypass],
            }
        )
    return rows


@click.command(name="workflows")
@click.argument("names", nargs=-1)
@click.option("--bindings", is_flag=True, help="Show which node input each studio value fills.")
@click.option(
    "--validate",
    is_flag=True,
    help="Check the workflows against a live ComfyUI server's /object_info (nodes, inputs, "
    "types, choices, installed model files, minimum version).",
)
@click.option(
    "--url",
    default=None,
    help="The ComfyUI server to validate against (default: every server of COMFYUI_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripting.")
@click.pass_context
def workflows_cmd(
    ctx: click.Context,
    names: tuple[str, ...],
    bindings: bool,
    validate: bool,
    url: str | None,
    as_json: bool,
) -> None:
    """List the ComfyUI workflows a project can use (shipped, the studio's own, and
    $VIDEOGEN_WORKFLOWS), or NAMES only."""
    # lazy: the workflow registry loads Dagster and httpx; `videogen --help` lists this command
    from videogen_resources.workflows import (
        load_workflow,
        registry_sources,
        studio_workflows,
    )

    root = _root(ctx)
    overlay = studio_workflows(root)
    try:
        sources = registry_sources(overlay)
        unknown = [n for n in names if n not in sources]
        if unknown:
            raise InputError(
                f"unknown workflow(s) {', '.join(unknown)}; known: {', '.join(sorted(sources))}",
                field="workflows",
            )
        loaded = [load_workflow(n, overlay) for n in (names or sorted(sources))]
    except InputError as exc:
        _fail(exc)
    report: list[dict[str, Any]] = []
    for wf in loaded:
        item: dict[str, Any] = {
            "name": wf.name,
            "kind": wf.kind,
            "min_comfyui_version": wf.min_comfyui_version,
            "version": wf.version,
            "from": _where(sources[wf.name], overlay),
            "file": str(wf.path),
            "description": wf.description,
        }
        if bindings:
            item["output_node"] = wf.output_node
            item["bindings"] = _binding_rows(wf)
        report.append(item)
    failed = False
    if validate:
        failed = _validate(loaded, report, url)
    if as_json:
        click.echo(json.dumps({"workflows": report}, indent=2, default=str))
    else:
        _print(report)
    if failed:
        sys.exit(1)


def _validate(loaded: list[Any], report: list[dict[str, Any]], url: str | None) -> bool:
    """Fill each report item's ``checks`` (one per server) from live servers: ``--url``, else
    every server of COMFYUI_URL (a job may go to any of them). True when any has a problem."""
    # lazy: the ComfyUI client loads Dagster and httpx; `videogen --help` lists this command
    from videogen_resources.comfyui import ComfyUIResource, parse_version
    from videogen_resources.workflows import missing_models, validate_workflow

    servers = (
        [url]
        if url
        else [u.strip() for u in os.environ.get("COMFYUI_URL", "").split(",") if u.strip()]
    )
    if not servers:
        _fail(InputError("--validate needs a server: pass --url or set COMFYUI_URL"))
    failed = False
    for item in report:
        item["checks"] = []
    for server in servers:
        comfy = ComfyUIResource(urls=[server], max_retries=1)
        try:
            info = comfy.object_info(server)
            version = comfy.system_stats(server).comfyui_version
        except ServiceError as exc:
            _fail(exc)
        for wf, item in zip(loaded, report, strict=True):
            problems = [str(p) for p in validate_workflow(wf, info)]
            problems += [str(p) for p in missing_models(wf, info)]
            if version and parse_version(version) < parse_version(wf.min_comfyui_version):
                problems.append(
                    f"the workflow needs ComfyUI >= {wf.min_comfyui_version}; "
                    f"the server has {version}"
                )
            item["checks"].append({"server": server, "version": version, "problems": problems})
            failed = failed or bool(problems)
    return failed


def _print(report: list[dict[str, Any]]) -> None:
    for item in report:
        click.echo(
            f"{item['name']}\t{item['kind']}\tComfyUI >= {item['min_comfyui_version']}\t"
            f"{item['from']}\t{item['description']}"
        )
        if "bindings" in item:
            click.echo(f"  output node: {item['output_node']}")
            for row in item["bindings"]:
                flags = " (required)" if row["required"] else ""
                if row["optional_nodes"]:
                    flags += f" (left out when unset: node {', '.join(row['optional_nodes'])})"
                default = "" if row["default"] is None else f" = {row['default']!r}"
                click.echo(f"  {row['slot']} -> {', '.join(row['targets'])}{default}{flags}")
        for check in item.get("checks", []):
            server = f"{check['server']} (ComfyUI {check['version'] or '?'})"
            if not check["problems"]:
                click.echo(f"  ok on {server}")
            for problem in check["problems"]:
                click.echo(f"  problem on {server}: {problem}")

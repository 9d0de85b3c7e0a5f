"""The `videogen character ...` and `videogen cast ...` commands (the character library)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from videogen.cli import _instance, _root
from videogen.cli_errors import echo_error
from videogen_domain.errors import InputError

if TYPE_CHECKING:
    from videogen_store.characters import CharacterInfo


def _fail(exc: Exception) -> NoReturn:
    echo_error(str(exc))
    sys.exit(2)


def _describe(info: CharacterInfo) -> str:
    lines = [info.name]
    if info.description:
        lines.append(f"  description: {info.description}")
    for image in info.images:
        lines.append(f"  image: {image}")
    if info.lora:
        lines.append(f"  lora: {info.lora} (strength {info.lora_strength:g})")
    if info.voice:
        lines.append(f"  voice: {info.voice}")
    lines.append(f"  cast in: {', '.join(info.projects) or '-'}")
    return "\n".join(lines)


_IMAGE = click.Path(path_type=str)  # as typed: a URL must reach the check unmangled


@click.group("character")
def character_group() -> None:
    """The character library: recurring people with descriptions, reference images and LoRAs."""


@character_group.command("add")
@click.argument("name")
@click.option("--description", default="", help="What they look like (goes into shot prompts).")
@click.option("--image", "images", type=_IMAGE, multiple=True, help="Reference image (repeat).")
@click.option("--lora", default=None, help="LoRA file name in ComfyUI's loras folder.")
@click.option("--lora-strength", type=float, default=1.0, show_default=True, help="0 to 2.")
@click.option("--voice", default=None, help="Narration voice when they speak.")
@click.pass_context
def character_add(
    ctx: click.Context,
    name: str,
    description: str,
    images: tuple[str, ...],
    lora: str | None,
    lora_strength: float,
    voice: str | None,
) -> None:
    """Add a character NAME to the library."""
    # lazy: the library and the settings load Dagster; `videogen --help` lists this command
    from videogen_assets.environment import check_environment
    from videogen_resources.settings import check_voice
    from videogen_store import characters as lib

    try:
        check_voice(check_environment(), voice, field="voice")
        info = lib.add_character(
            _root(ctx),
            name=name,
            description=description,
            images=list(images),
            lora=lora,
            lora_strength=lora_strength,
            voice=voice,
        )
    except InputError as exc:
        _fail(exc)
    click.echo(f"added {info.name} ({len(info.images)} reference image(s))")


@character_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def character_list(ctx: click.Context, as_json: bool) -> None:
    """List the characters of the library."""
    # lazy: the library loads the database and Dagster; `videogen --help` lists this command
    from videogen_store import characters as lib

    try:
        infos = lib.list_characters(_root(ctx))
    except InputError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2, ensure_ascii=False))
        return
    if not infos:
        click.echo("no characters yet (videogen character add NAME --description ...)")
        return
    for info in infos:
        extras = [f"{len(info.images)} image(s)"]
        if info.lora:
            extras.append(f"lora {info.lora}")
        if info.projects:
            extras.append(f"cast in {', '.join(info.projects)}")
        click.echo(f"{info.name}: {info.description or '-'} [{'; '.join(extras)}]")


@character_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def character_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one character."""
    # lazy: the library loads the database and Dagster; `videogen --help` lists this command
    from videogen_store import characters as lib

    try:
        info = lib.show_character(_root(ctx), name)
    except InputError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(_describe(info))


@character_group.command("edit")
@click.argument("name")
@click.option("--name", "new_name", default=None, help="Rename (not while cast in a project).")
@click.option("--description", default=None, help="New description.")
@click.option(
    "--image", "images", type=_IMAGE, multiple=True, help="Replace the reference images (repeat)."
)
@click.option("--add-image", "add_images", type=_IMAGE, multiple=True, help="Add an image.")
@click.option("--clear-images", is_flag=True, help="Remove all reference images.")
@click.option("--lora", default=None, help="New LoRA file name.")
@click.option("--no-lora", is_flag=True, help="Remove the LoRA.")
@click.option("--lora-strength", type=float, default=None, help="0 to 2.")
@click.option("--voice", default=None, help="New voice.")
@click.option("--no-voice", is_flag=True, help="Remove the voice.")
@click.pass_context
def character_edit(
    ctx: click.Context,
    name: str,
    new_name: str | None,
    description: str | None,
    images: tuple[str, ...],
    add_images: tuple[str, ...],
    clear_images: bool,
    lora: str | None,
    no_lora: bool,
    lora_strength: float | None,
    voice: str | None,
    no_voice: bool,
) -> None:
    """Change character NAME (only the options given change)."""
    # lazy: the library and the settings load Dagster; `videogen --help` lists this command
    from videogen_assets.environment import check_environment
    from videogen_resources.settings import check_voice
    from videogen_store import characters as lib

    try:
        if clear_images and images:
            raise InputError("give --image or --clear-images, not both", field="images")
        if no_lora and lora is not None:
            raise InputError("give --lora or --no-lora, not both", field="lora")
        if no_voice and voice is not None:
            raise InputError("give --voice or --no-voice, not both", field="voice")
        if voice:
            check_voice(check_environment(), voice, field="voice")
        info = lib.edit_character(
            _root(ctx),
            name,
            new_name=new_name,
            description=description,
            images=[] if clear_images else (list(images) if images else None),
            add_images=list(add_images),
            lora="" if no_lora else lora,
            lora_strength=lora_strength,
            voice="" if no_voice else voice,
        )
    except InputError as exc:
        _fail(exc)
    click.echo(_describe(info))
    _resync(ctx, info.projects)


def _resync(ctx: click.Context, projects: tuple[str, ...] | list[str]) -> None:
    """Re-derive the data versions of the projects that cast an edited character, so exactly
    the shots (and narrations) that use it become stale."""
    # lazy: loads Dagster, which `videogen --help` does not need
    from videogen.operations import sync

    root = _root(ctx)
    for project in projects:
        result = sync(root, project, instance=_instance(root), force=True)
        changed = sorted(set(result.text_changed) | set(result.direction_changed))
        if changed:
            click.echo(f"{project}: {len(changed)} sentence(s) will regenerate")


@character_group.command("remove")
@click.argument("name")
@click.pass_context
def character_remove(ctx: click.Context, name: str) -> None:
    """Remove character NAME from the library (refused while a project casts them)."""
    # lazy: the library loads the database and Dagster; `videogen --help` lists this command
    from videogen_store import characters as lib

    try:
        lib.remove_character(_root(ctx), name)
    except InputError as exc:
        _fail(exc)
    click.echo(f"removed {name}")


@click.group("cast")
def cast_group() -> None:
    """A project's cast: library characters its script may name."""


@cast_group.command("add")
@click.argument("project")
@click.argument("character")
@click.pass_context
def cast_add(ctx: click.Context, project: str, character: str) -> None:
    """Cast CHARACTER in PROJECT."""
    # lazy: the library loads the database and Dagster; `videogen --help` lists this command
    from videogen_store import characters as lib

    try:
        cast = lib.cast_add(_root(ctx), project, character)
    except InputError as exc:
        _fail(exc)
    click.echo(f"cast of {project}: {', '.join(cast)}")
    _resync(ctx, [project])


@cast_group.command("remove")
@click.argument("project")
@click.argument("character")
@click.pass_context
def cast_remove(ctx: click.Context, project: str, character: str) -> None:
    """Take CHARACTER out of PROJECT's cast."""
    # lazy: the library loads the database and Dagster; `videogen --help` lists this command
    from videogen_store import characters as lib

    try:
        cast = lib.cast_remove(_root(ctx), project, character)
    except InputError as exc:
        _fail(exc)
    click.echo(f"cast of {project}: {', '.join(cast) or '-'}")
    _resync(ctx, [project])


@cast_group.command("list")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cast_list(ctx: click.Context, project: str, as_json: bool) -> None:
    """List PROJECT's cast."""
    # lazy: the library loads the database and Dagster; `videogen --help` lists this command
    from videogen_store import characters as lib

    try:
        members = lib.cast_list(_root(ctx), project)
    except InputError as exc:
        _fail(exc)
    if as_json:
        data = [
            info.to_dict() if info else {"name": name, "missing": True} for name, info in members
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not members:
        click.echo(f"{project} has no cast yet (videogen cast add {project} NAME)")
        return
    for name, info in members:
        if info is None:
            click.echo(f"{name}: not in the character library")
        else:
            click.echo(f"{name}: {info.description or '-'}")

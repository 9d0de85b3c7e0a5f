"""The character library (FR-201..204) and project casts.

Contract: characters live in the studio database, their reference images under
``characters/<sha256-prefix>.png`` (any common format normalized to PNG, alpha kept, named
after the PNG bytes so the same picture is stored once). Every operation validates its whole
input first: bad input raises an InputError naming the field and leaves the database and the
studio folder unchanged. A character cast in a project cannot be removed; casting updates the
``project_cast`` table and ``project.yaml``'s ``cast`` together. The `character` and `cast`
click groups print ``error: ...`` and exit 2 on bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select

from videogen.cli_characters import cast_group, character_group
from videogen.operations import create_project
from videogen_domain.errors import InputError
from videogen_domain.project import load_brief
from videogen_store import characters as lib
from videogen_store.database import Character, Project, ProjectCast, StudioDatabase


def _image(path: Path, fmt: str, *, mode: str = "RGB", color: Any = (200, 30, 40)) -> Path:
    Image.new(mode, (24, 16), color).save(path, format=fmt)
    return path


def _state(root: Path) -> tuple[dict[str, bytes], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Everything an operation could change: studio files (the database by content) and rows."""
    files = {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("studio.db")
    }
    with StudioDatabase.for_studio(root).session() as s:
        chars = [
            (
                c.id,
                c.name,
                c.description,
                tuple(c.reference_images),
                c.style_lora,
                c.lora_strength,
                c.voice,
            )
            for c in s.scalars(select(Character).order_by(Character.id))
        ]
        cast = [
            (c.project_id, c.character_id)
            for c in s.scalars(select(ProjectCast).order_by(ProjectCast.id))
        ]
    return files, chars, cast


def _db_cast(root: Path, project: str) -> list[str]:
    with StudioDatabase.for_studio(root).session() as s:
        rows = s.scalars(
            select(Character.name).join(ProjectCast).where(ProjectCast.project_id == project)
        )
        return sorted(rows)


@pytest.fixture
def ada(studio_root: Path, tmp_path: Path) -> lib.CharacterInfo:
    return lib.add_character(
        studio_root,
        name="Ada",
        description="a woman in her 30s with short red hair",
        images=[_image(tmp_path / "ada.jpg", "JPEG")],
        lora="ada_v2.safetensors",
        lora_strength=0.8,
        voice="warm alto",
    )


def test_crud_round_trip(studio_root: Path, tmp_path: Path, ada: lib.CharacterInfo) -> None:
    assert ada.name == "Ada"
    assert ada.lora == "ada_v2.safetensors" and ada.lora_strength == 0.8
    assert len(ada.images) == 1 and (studio_root / ada.images[0]).is_file()
    lib.add_character(studio_root, name="bob")
    assert [c.name for c in lib.list_characters(studio_root)] == ["Ada", "bob"]

    shown = lib.show_character(studio_root, "ADA")  # names match regardless of case
    assert shown == ada and shown.projects == ()

    extra = _image(tmp_path / "ada2.png", "PNG", color=(0, 90, 0))
    edited = lib.edit_character(
        studio_root,
        "Ada",
        description="red hair, green coat",
        add_images=[extra],
        lora_strength=1.5,
        voice="",
    )
    assert edited.description == "red hair, green coat"
    assert edited.images[0] == ada.images[0] and len(edited.images) == 2
    assert edited.lora == "ada_v2.safetensors" and edited.lora_strength == 1.5
    assert edited.voice is None

    replaced = lib.edit_character(studio_root, "Ada", images=[extra], lora="", new_name="Ada L.")
    assert replaced.name == "Ada L." and replaced.lora is None
    assert replaced.images == (edited.images[1],)
    assert not (studio_root / ada.images[0]).exists()  # no character uses it any more

    lib.remove_character(studio_root, "ada l.")
    assert [c.name for c in lib.list_characters(studio_root)] == ["bob"]
    assert not (studio_root / replaced.images[0]).exists()
    with pytest.raises(InputError, match=r"no character named 'Ada L\.'") as err:
        lib.show_character(studio_root, "Ada L.")
    assert err.value.field == "name"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Ada"}, "name"),
        ({"name": "aDA"}, "name"),
        ({"name": "Eve", "images": ["missing.png"]}, "images"),
        ({"name": "Eve", "images": ["noise.png"]}, "images"),
        ({"name": "Eve", "images": ["good.png", "noise.png"]}, "images"),
        ({"name": "Eve", "lora": "loras/eve.safetensors"}, "lora"),
        ({"name": "Eve", "lora": "..\\eve.safetensors"}, "lora"),
        ({"name": "Eve", "lora": "/abs/eve.safetensors"}, "lora"),
        ({"name": "Eve", "lora": "..eve"}, "lora"),
        ({"name": "Eve/Adam"}, "name"),
        ({"name": "../Eve"}, "name"),
        ({"name": "Eve\x07"}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "E" * 121}, "name"),
        ({"name": "Eve", "lora_strength": 2.5}, "lora_strength"),
        ({"name": "Eve", "lora_strength": -0.1}, "lora_strength"),
        ({"name": "Eve", "lora_strength": float("nan")}, "lora_strength"),
        ({"name": "Eve", "voice": "x" * 121}, "voice"),
    ],
)
def test_bad_input_changes_nothing(
    studio_root: Path,
    tmp_path: Path,
    ada: lib.CharacterInfo,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "noise.png").write_bytes(os.urandom(512))
    _image(inputs / "good.png", "PNG", color=(1, 2, 3))
    if "images" in kwargs:
        kwargs = {**kwargs, "images": [inputs / p for p in kwargs["images"]]}
    before = _state(studio_root)
    with pytest.raises(InputError) as err:
        lib.add_character(studio_root, **kwargs)
    assert err.value.field == field
    if field == "images":
        assert err.value.file is not None and err.value.file.endswith(".png")
    assert _state(studio_root) == before


def test_bad_edits_change_nothing(
    studio_root: Path, tmp_path: Path, ada: lib.CharacterInfo
) -> None:
    lib.add_character(studio_root, name="Bob")
    noise = tmp_path / "noise.png"
    noise.write_bytes(os.urandom(256))
    good = _image(tmp_path / "good.png", "PNG", color=(9, 9, 9))
    before = _state(studio_root)
    bad: list[dict[str, Any]] = [
        {"new_name": "bob"},
        {"new_name": "a/b"},
        {"description": "new", "add_images": [good, noise]},
        {"description": "new", "lora": "x/y.safetensors"},
        {"description": "new", "lora_strength": 3},
    ]
    for changes in bad:
        with pytest.raises(InputError):
            lib.edit_character(studio_root, "Ada", **changes)
        assert _state(studio_root) == before, changes
    with pytest.raises(InputError, match="no character named 'Zed'"):
        lib.edit_character(studio_root, "Zed", description="x")


def test_images_normalized_to_png_and_sha_named(studio_root: Path, tmp_path: Path) -> None:
    rgba = _image(tmp_path / "a.png", "PNG", mode="RGBA", color=(10, 20, 30, 128))
    frames = [Image.new("RGB", (24, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    sources = {
        "jpeg": _image(tmp_path / "b.jpeg", "JPEG", color=(1, 2, 3)),
        "webp": _image(tmp_path / "c.webp", "WEBP", color=(4, 5, 6)),
        "bmp": _image(tmp_path / "d.bmp", "BMP", color=(7, 8, 9)),
        "gif": gif,
        "rgba": rgba,
    }
    info = lib.add_character(studio_root, name="Cleo", images=list(sources.values()))
    assert len(info.images) == len(sources)
    for rel in info.images:
        path = studio_root / rel
        assert rel.startswith("characters/") and rel.endswith(".png")
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()[: lib.IMAGE_HASH_CHARS]
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (24, 16)
    with Image.open(studio_root / info.images[-1]) as im:
        assert im.mode == "RGBA" and im.getpixel((0, 0)) == (10, 20, 30, 128)
    with Image.open(studio_root / info.images[3]) as im:  # the GIF's first frame
        assert im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)

    # The same picture again (another file, even another character) is stored once.
    copy = tmp_path / "copy.png"
    copy.write_bytes(rgba.read_bytes())
    dana = lib.add_character(studio_root, name="Dana", images=[copy, rgba])
    assert dana.images == (info.images[-1],)
    assert len(list((studio_root / "characters").iterdir())) == len(sources)
    lib.remove_character(studio_root, "Dana")  # Cleo still uses the image: it stays
    assert (studio_root / info.images[-1]).is_file()


def test_cast_add_remove_updates_yaml_and_db(studio_root: Path, ada: lib.CharacterInfo) -> None:
    folder, _ = create_project(studio_root, title="Volcanoes", name="volcanoes")
    lib.add_character(studio_root, name="Bob", description="a bearded geologist")

    assert lib.cast_add(studio_root, "volcanoes", "ada") == ["Ada"]  # library spelling
    assert lib.cast_add(studio_root, "volcanoes", "Bob") == ["Ada", "Bob"]
    assert lib.cast_add(studio_root, "volcanoes", "BOB") == ["Ada", "Bob"]  # idempotent
    assert load_brief(folder).cast == ["Ada", "Bob"]
    assert _db_cast(studio_root, "volcanoes") == ["Ada", "Bob"]
    with StudioDatabase.for_studio(studio_root).session() as s:
        assert s.get(Project, "volcanoes") is not None
    assert lib.show_character(studio_root, "Ada").projects == ("volcanoes",)
    assert [n for n, _ in lib.cast_list(studio_root, "volcanoes")] == ["Ada", "Bob"]

    before = _state(studio_root)
    with pytest.raises(InputError, match="is cast in volcanoes") as err:
        lib.remove_character(studio_root, "Ada")
    assert err.value.field == "name"
    with pytest.raises(InputError, match="no character named 'Zed'") as err:
        lib.cast_add(studio_root, "volcanoes", "Zed")
    assert err.value.field == "character"
    with pytest.raises(InputError, match="no project named 'oceans'") as err:
        lib.cast_add(studio_root, "oceans", "Ada")
    assert err.value.field == "project"
    with pytest.raises(InputError, match="invalid project name"):
        lib.cast_add(studio_root, "../x", "Ada")
    assert _state(studio_root) == before

    assert lib.cast_remove(studio_root, "volcanoes", "Ada") == ["Bob"]
    assert load_brief(folder).cast == ["Bob"]
    assert _db_cast(studio_root, "volcanoes") == ["Bob"]
    with pytest.raises(InputError, match="not in the cast"):
        lib.cast_remove(studio_root, "volcanoes", "Ada")
    lib.remove_character(studio_root, "Ada")
    assert [c.name for c in lib.list_characters(studio_root)] == ["Bob"]


def test_cast_in_yaml_only_still_blocks_removal(studio_root: Path, ada: lib.CharacterInfo) -> None:
    folder, _ = create_project(studio_root, title="Caves", name="caves")
    brief = load_brief(folder)
    (folder / "project.yaml").write_text(
        (folder / "project.yaml").read_text(encoding="utf-8").replace("cast: []", "cast:\n- ada"),
        encoding="utf-8",
    )
    assert load_brief(folder).cast == ["ada"] != brief.cast
    with pytest.raises(InputError, match="is cast in caves"):
        lib.remove_character(studio_root, "Ada")
    assert lib.cast_remove(studio_root, "caves", "Ada") == []
    lib.remove_character(studio_root, "Ada")


@pytest.mark.slow
def test_cli_character_and_cast(studio_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    obj = {"home": str(studio_root)}
    img = _image(tmp_path / "ada.webp", "WEBP")

    def run(group: Any, *args: str) -> Any:
        return runner.invoke(group, list(args), obj=obj)

    res = run(character_group, "add", "Ada", "--description", "red hair", "--image", str(img),
              "--lora", "ada.safetensors", "--lora-strength", "0.7", "--voice", "en")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "added Ada (1 reference image(s))" in res.output

    res = run(character_group, "show", "ada", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["name"] == "Ada" and data["lora_strength"] == 0.7 and data["voice"] == "en"
    assert data["images"][0].startswith("characters/") and data["projects"] == []

    res = run(character_group, "edit", "Ada", "--description", "short red hair", "--no-lora")
    assert res.exit_code == 0, res.output
    assert "short red hair" in res.output and "lora:" not in res.output

    res = run(character_group, "list")
    assert res.exit_code == 0 and res.output.startswith("Ada: short red hair")

    for args, needle in [
        (("add", "ada"), "already exists"),
        (("add", "Eve", "--lora", "dir/eve.safetensors"), "lora: "),
        (("add", "Eve", "--lora-strength", "9"), "lora_strength: "),
        (("add", "Eve", "--image", str(tmp_path / "nope.png")), "nope.png"),
        (("add", "a/b"), "name: "),
        (("show", "Zed"), "no character named 'Zed'"),
    ]:
        res = run(character_group, *args)
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.startswith("error: ") and needle in res.stderr, res.stderr

    create_project(studio_root, title="Volcanoes", name="volcanoes")
    res = run(cast_group, "add", "volcanoes", "ada")
    assert res.exit_code == 0 and "cast of volcanoes: Ada" in res.output
    res = run(cast_group, "list", "volcanoes")
    assert res.exit_code == 0 and res.output.strip() == "Ada: short red hair"

    res = run(character_group, "remove", "Ada")
    assert res.exit_code == 2 and "volcanoes" in res.stderr
    res = run(cast_group, "add", "volcanoes", "Zed")
    assert res.exit_code == 2 and res.stderr.startswith("error: ")
    res = run(cast_group, "add", "nowhere", "Ada")
    assert res.exit_code == 2 and "no project named 'nowhere'" in res.stderr

    res = run(cast_group, "remove", "volcanoes", "Ada")
    assert res.exit_code == 0 and "cast of volcanoes: -" in res.output
    res = run(character_group, "remove", "Ada")
    assert res.exit_code == 0 and "removed Ada" in res.output
    res = run(character_group, "list", "--json")
    assert res.exit_code == 0 and json.loads(res.output) == []


def test_same_pixels_in_another_format_share_one_file(studio_root: Path, tmp_path: Path) -> None:
    png = _image(tmp_path / "x.png", "PNG", color=(30, 60, 90))
    bmp = _image(tmp_path / "x.bmp", "BMP", color=(30, 60, 90))
    assert png.read_bytes() != bmp.read_bytes()
    info = lib.add_character(studio_root, name="Flo", images=[png, bmp])
    assert len(info.images) == 1
    assert lib.normalize_image(bmp) == (studio_root / info.images[0]).read_bytes()

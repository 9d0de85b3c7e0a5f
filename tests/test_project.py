"""Projects: `videogen new` creates project.yaml (+ script.md); bad input names file, line, field
and changes nothing on disk or in the database."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, list_projects, sync
from videogen_domain import paths
from videogen_domain.errors import InputError
from videogen_domain.project import load_brief
from videogen_store.database import StudioDatabase


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_new_project_with_script(studio_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "my.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    folder, result = create_project(
        studio_root,
        title="How volcanoes work",
        minutes=3,
        style="documentary",
        script_file=script,
    )
    assert folder == studio_root / "projects" / "how_volcanoes_work"
    brief = load_brief(folder)
    assert brief.title == "How volcanoes work" and brief.minutes == 3
    assert (folder / "script.md").read_text(encoding="utf-8") == SMALL_SCRIPT
    assert result is not None
    assert result.order == [f"how_volcanoes_work.s{i:04d}" for i in (1, 2, 3)]
    assert list_projects(studio_root) == ["how_volcanoes_work"]
    db = StudioDatabase.for_studio(studio_root)
    rows = db.sentences("how_volcanoes_work")
    assert [r.text for r in rows] == [
        "The sky over the volcano glows red.",
        "Ash falls like grey snow.",
        "Life returns to the slopes.",
    ]
    assert rows[1].camera_movement == "zoom-in" and rows[1].motion_strength == 0.7
    assert [s.title for s in db.sections("how_volcanoes_work")] == ["Opening", "Ending"]


def test_project_without_script_has_only_a_brief(studio_root: Path) -> None:
    folder, result = create_project(studio_root, title="Tides", minutes=2)
    assert result is None
    assert sorted(p.name for p in folder.iterdir()) == ["project.yaml"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"minutes": 0}, "minutes"),
        ({"minutes": 61}, "minutes"),
        ({"style": "vaporwave"}, "style"),
        ({"name": "../evil"}, "name"),
        ({"name": "a/b"}, "name"),
    ],
)
def test_bad_brief_creates_nothing(studio_root: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(InputError) as err:
        create_project(studio_root, title="Bad one", **kwargs)
    assert err.value.field == field
    assert list_projects(studio_root) == []
    assert not (studio_root / "projects").exists() or not any((studio_root / "projects").iterdir())


def test_bad_script_file_creates_nothing(studio_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "bad.md"
    script.write_text("# A\nFine.\n> camera: wobble\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        create_project(studio_root, title="Bad script", script_file=script)
    assert err.value.line == 3 and err.value.field == "camera"
    assert str(script) in str(err.value)
    assert list_projects(studio_root) == []


def test_non_utf8_script_names_the_line(studio_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "latin1.md"
    script.write_bytes(b"# A\nFine.\nCaf\xe9 au lait.\n")
    with pytest.raises(InputError) as err:
        create_project(studio_root, title="Latin", script_file=script)
    assert err.value.line == 3 and "UTF-8" in str(err.value)


@pytest.mark.parametrize(
    ("yaml_text", "line", "field"),
    [
        ("name: p\ntitle: T\nminutes: -1\n", 3, "minutes"),
        ("name: p\ntitle: T\nstyle: nope\n", 3, "style"),
        ("name: p\ntitle: T\ncolour: red\n", 3, "colour"),
        ("name: p\ntitle: [unclosed\n", 3, None),
        ("name: p\ntitle: T\nminutes: 99\n", 3, "minutes"),
    ],
)
def test_malformed_project_yaml(
    studio_root: Path, yaml_text: str, line: int, field: str | None
) -> None:
    folder, _ = create_project(studio_root, title="P", name="p")
    before = _snapshot(studio_root)
    (folder / "project.yaml").write_text(yaml_text, encoding="utf-8")
    before["projects/p/project.yaml"] = yaml_text.encode()
    with pytest.raises(InputError) as err:
        load_brief(folder)
    assert err.value.file == str(folder / "project.yaml")
    assert err.value.line == line
    assert err.value.field == field
    with pytest.raises(InputError):
        sync(studio_root, "p")
    assert _snapshot(studio_root) == before


def test_brief_is_plain_yaml(studio_root: Path) -> None:
    folder, _ = create_project(studio_root, title="Rivers", minutes=4.5, style="minimal")
    data = yaml.safe_load((folder / paths.PROJECT_FILE).read_text(encoding="utf-8"))
    assert data["style"] == "minimal" and data["minutes"] == 4.5
    assert data["image_workflow"] == "flux-2-v1" and data["video_workflow"] == "wan-2.2-v1"

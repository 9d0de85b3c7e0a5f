"""Contract: every bundled style preset validates as a `StylePreset`; `list_styles` finds them
by their YAML files; a bad preset names its file and field; an unknown name lists the known ones;
adding a style is adding a YAML file (no code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from videogen_domain.errors import InputError
from videogen_domain.models import CAMERA_MOVEMENTS
from videogen_domain.styles import FONT_FAMILIES, LAYOUTS, StylePreset, list_styles, load_style

BUILT_IN = {"documentary", "cinematic", "anime", "watercolor", "minimal", "playful"}


def test_built_in_styles_are_listed_and_valid() -> None:
    names = list_styles()
    assert BUILT_IN <= set(names)
    for name in names:
        style = load_style(name)
        assert isinstance(style, StylePreset)
        assert style.name == name
        assert style.layout in LAYOUTS
        assert style.typography.font in FONT_FAMILIES
        assert style.default_camera and set(style.default_camera) <= set(CAMERA_MOVEMENTS)
        assert 0.0 <= style.motion_strength <= 1.0
        assert style.palette.rgb("background") != style.palette.rgb("text")


def test_layouts_are_all_used_by_some_style() -> None:
    assert {load_style(n).layout for n in BUILT_IN} == set(LAYOUTS)


def test_unknown_style_lists_known_ones() -> None:
    with pytest.raises(InputError) as err:
        load_style("no-such-style")
    message = str(err.value)
    assert "no-such-style" in message
    for name in BUILT_IN:
        assert name in message


def test_adding_a_yaml_file_adds_a_style(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "videogen_domain/styles/minimal.yaml").read_text()
    (tmp_path / "noir.yaml").write_text(text.replace("name: minimal", "name: noir"))
    assert "noir" in list_styles([tmp_path])
    style = load_style("noir", [tmp_path])
    assert style.name == "noir"
    assert style.camera_for(5) in CAMERA_MOVEMENTS


def test_bad_preset_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(
        "name: broken\npalette:\n  background: '#000000'\n  background_alt: '#111111'\n"
        "  text: 'white'\n  accent: '#ff0000'\n  muted: '#888888'\n"
    )
    with pytest.raises(InputError) as err:
        load_style("broken", [tmp_path])
    assert err.value.file is not None and err.value.file.endswith("broken.yaml")
    assert err.value.field == "palette.text"

    typo = tmp_path / "typo.yaml"
    typo.write_text(
        bad.read_text().replace("name: broken", "name: typo").replace("white", "#fff000")
        + "layout: diagonal\n"
    )
    with pytest.raises(InputError) as err2:
        load_style("typo", [tmp_path])
    assert err2.value.field == "layout"

    unparsable = tmp_path / "bad.yaml"
    unparsable.write_text("name: bad\npalette: [unclosed\n")
    with pytest.raises(InputError) as err3:
        load_style("bad", [tmp_path])
    assert "bad.yaml" in str(err3.value)


def test_prompt_helpers() -> None:
    style = load_style("documentary")
    prompt = style.image_prompt("a volcano at dawn")
    assert prompt.startswith(style.prompt_prefix)
    assert "a volcano at dawn" in prompt
    cams = [style.camera_for(i) for i in range(len(style.default_camera) * 2)]
    assert cams[: len(style.default_camera)] == cams[len(style.default_camera) :]

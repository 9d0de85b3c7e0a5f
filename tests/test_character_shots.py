"""Cast characters reach the shots: a sentence whose script says ``> characters: Ada, Bob``
gets an image prompt carrying both library descriptions, and the makers' view of the cast
(CharacterRef) carries each character's reference image and LoRA from the library.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from videogen.operations import create_project
from videogen_assets.context import cast_of, sentence_order
from videogen_assets.sentence_assets import shot_by_rules
from videogen_domain.styles import load_style
from videogen_resources.studio import StudioResource
from videogen_store import characters as lib
from videogen_store.database import StudioDatabase

SCRIPT = """# The lab
Ada shows Bob the new telescope.
> characters: Ada, Bob

The night sky is clear.
"""


def test_cast_descriptions_reach_the_shot_prompts(studio_root: Path, tmp_path: Path) -> None:
    portrait = tmp_path / "ada.jpg"
    Image.new("RGB", (32, 32), (180, 60, 40)).save(portrait, format="JPEG")
    lib.add_character(
        studio_root,
        name="Ada",
        description="a woman with short red hair and round glasses",
        images=[portrait],
        lora="ada_v2.safetensors",
        lora_strength=0.8,
    )
    lib.add_character(studio_root, name="Bob", description="a tall man with a grey beard")
    script = tmp_path / "script.md"
    script.write_text(SCRIPT, encoding="utf-8")
    create_project(studio_root, title="Stargazing", name="stargazing", script_file=script)
    lib.cast_add(studio_root, "stargazing", "Ada")
    lib.cast_add(studio_root, "stargazing", "Bob")

    db = StudioDatabase.for_studio(studio_root)
    studio = StudioResource(root=str(studio_root))
    refs = cast_of(db, studio, "stargazing")
    assert sorted(refs) == ["Ada", "Bob"]
    ada = refs["Ada"]
    assert ada.lora == "ada_v2.safetensors" and ada.lora_strength == 0.8
    assert ada.reference_image is not None and ada.reference_image.is_file()
    assert refs["Bob"].reference_image is None and refs["Bob"].lora is None

    style = load_style("documentary")
    cast = {name: c.description for name, c in refs.items()}
    shots = [shot_by_rules(s, style, cast) for s in sentence_order(db, "stargazing")]
    assert len(shots) == 2
    first, second = shots
    assert first.characters == ("Ada", "Bob")
    assert "Ada: a woman with short red hair and round glasses" in first.image_prompt
    assert "Bob: a tall man with a grey beard" in first.image_prompt
    assert second.characters == ()
    assert "red hair" not in second.image_prompt and "grey beard" not in second.image_prompt

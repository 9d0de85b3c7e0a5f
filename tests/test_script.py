"""The script.md format: sections, sentence splitting, directives and their errors."""

from __future__ import annotations

import pytest

from videogen_domain.errors import InputError
from videogen_domain.script import MAX_SENTENCE_CHARS, parse_script


def test_sections_sentences_and_directives() -> None:
    script = parse_script(
        "# Intro\n"
        "Dr. Smith measured 3.5 tons of ash. It was hot!\n"
        "> image: an ash cloud | camera: zoom-in\n"
        "> motion: 0.7 | characters: Ada, Bob\n"
        "\n"
        "## Part two\n"
        "Lava flows.\n"
        "> speaker: Ada\n"
    )
    assert script.sections == ["Intro", "Part two"]
    texts = [s.text for s in script.sentences]
    assert texts == ["Dr. Smith measured 3.5 tons of ash.", "It was hot!", "Lava flows."]
    first, second, third = script.sentences
    assert first.directives.camera is None
    assert second.directives.image_prompt == "an ash cloud"
    assert second.directives.camera == "zoom-in"
    assert second.directives.motion == 0.7
    assert second.directives.characters == ("Ada", "Bob")
    assert third.section == "Part two" and third.directives.speaker == "Ada"
    assert [s.line for s in script.sentences] == [2, 2, 7]


def test_text_before_any_heading_gets_a_default_section() -> None:
    script = parse_script("Just one line.\n")
    assert script.sections == ["Introduction"]


def test_comments_are_ignored() -> None:
    script = parse_script("# A\n<!-- a note\nspanning lines -->\nReal sentence.\n")
    assert [s.text for s in script.sentences] == ["Real sentence."]


def test_versions_separate_words_from_directives() -> None:
    a = parse_script("# S\nThe same words.\n").sentences[0]
    b = parse_script("# S\nThe same words.\n> image: a new prompt\n").sentences[0]
    c = parse_script("# S\nOther words.\n").sentences[0]
    assert a.sentence_version == b.sentence_version
    assert a.direction_version != b.direction_version
    assert a.sentence_version != c.sentence_version
    assert a.direction_version == c.direction_version


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("", 1, "script", "no sentences"),
        ("# Only a heading\n", 1, "script", "no sentences"),
        ("# A\nHello.\n> camera: sideways\n", 3, "camera", "unknown camera movement"),
        ("# A\nHello.\n> motion: 1.5\n", 3, "motion", "from 0 to 1"),
        ("# A\nHello.\n> motion: fast\n", 3, "motion", "from 0 to 1"),
        ("# A\nHello.\n> colour: red\n", 3, "colour", "unknown directive"),
        ("# A\n> image: orphan\n", 2, "directive", "must follow"),
        ("# A\nHello.\n> characters: ../etc\n", 3, "characters", "invalid character"),
        ("# A\nBad \x07 bell.\n", 2, "text", "control character"),
        ("# A\n" + "word " * 250 + "\n", 2, "sentence", "limit"),
    ],
)
def test_bad_scripts_name_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        parse_script(text, file="script.md")
    assert err.value.line == line
    assert err.value.field == field
    assert words in str(err.value)
    assert str(err.value).startswith(f"script.md:{line}: {field}: ")


def test_sentence_limit_is_the_documented_one() -> None:
    ok = "a" * (MAX_SENTENCE_CHARS - 1) + "."
    assert parse_script(ok).sentences[0].text == ok

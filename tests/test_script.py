"""The script.md format: sections, sentence splitting, directives and their errors; the split
cache gives the parse a script gets without it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from videogen_domain.errors import InputError
from videogen_domain.script import (
    MAX_SENTENCE_CHARS,
    SPLIT_CACHE_FORMAT,
    parse_script,
    read_script,
    split_sentences,
)


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


def test_versions_are_stable_across_releases() -> None:
    # Stored versions are compared with those of every later sync: a change of how they are
    # computed would make every sentence of every studio stale after an upgrade.
    s = parse_script("# Lava\nMagma rises — über fast.\n> image: a red glow\n").sentences[0]

    def digest(obj: object) -> str:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    assert s.sentence_version == digest({"text": "Magma rises — über fast.", "speaker": None})
    directives = s.directives.model_dump(mode="json", exclude={"speaker"})
    assert directives["image_prompt"] == "a red glow"
    assert s.direction_version == digest({"directives": directives, "section": "Lava"})


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


SPLIT_SCRIPT = (
    "# Intro\n"
    "Dr. Smith measured 3.5 tons of ash. It was hot!\n"
    "> camera: zoom-in\n"
    "## Part two\n"
    "Lava flows. Ash falls.\n"
)


def _line_key(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:32]


def test_split_cache_gives_the_uncached_parse_and_keeps_the_lines_in_use(tmp_path: Path) -> None:
    script = tmp_path / "script.md"
    cache = tmp_path / "cache" / "splits.json"
    script.write_text(SPLIT_SCRIPT, encoding="utf-8")
    plain = read_script(script)
    assert read_script(script, split_cache=cache) == plain
    data = json.loads(cache.read_text(encoding="utf-8"))
    assert data["format"] == SPLIT_CACHE_FORMAT and data["splitter"].startswith("pysbd ")
    first = "Dr. Smith measured 3.5 tons of ash. It was hot!"
    assert data["splits"] == {
        _line_key(first): ["Dr. Smith measured 3.5 tons of ash.", "It was hot!"],
        _line_key("Lava flows. Ash falls."): ["Lava flows.", "Ash falls."],
    }
    assert read_script(script, split_cache=cache) == plain  # read back from the file

    # an edited line is split and stored; the line it replaced is dropped from the file
    script.write_text(SPLIT_SCRIPT.replace("Ash falls.", "Ash falls fast."), encoding="utf-8")
    edited = read_script(script, split_cache=cache)
    assert [s.text for s in edited.sentences][-1] == "Ash falls fast."
    splits = json.loads(cache.read_text(encoding="utf-8"))["splits"]
    assert set(splits) == {_line_key(first), _line_key("Lava flows. Ash falls fast.")}


def test_split_cache_file_is_what_the_parse_reads(tmp_path: Path) -> None:
    """A valid cache entry is used as it is (no line is split again); an entry of another
    splitter version, a broken file or a wrong entry is ignored."""
    script = tmp_path / "script.md"
    cache = tmp_path / "splits.json"
    script.write_text("# A\nOne. Two.\n", encoding="utf-8")
    read_script(script, split_cache=cache)
    data = json.loads(cache.read_text(encoding="utf-8"))
    data["splits"][_line_key("One. Two.")] = ["One. Two."]  # as if the splitter kept them whole
    cache.write_text(json.dumps(data), encoding="utf-8")
    assert [s.text for s in read_script(script, split_cache=cache).sentences] == ["One. Two."]

    for broken in (
        json.dumps({**data, "splitter": "pysbd 0.0.0 en clean=False"}),
        json.dumps({**data, "format": SPLIT_CACHE_FORMAT + 1}),
        json.dumps({**data, "splits": {_line_key("One. Two."): [3]}}),
        json.dumps(["not", "a", "cache"]),
        "{not json",
    ):
        cache.write_text(broken, encoding="utf-8")
        assert [s.text for s in read_script(script, split_cache=cache).sentences] == [
            "One.",
            "Two.",
        ]
        assert json.loads(cache.read_text(encoding="utf-8"))["splits"] == {
            _line_key("One. Two."): ["One.", "Two."]
        }


def test_split_cache_that_cannot_be_written_only_costs_time(tmp_path: Path) -> None:
    script = tmp_path / "script.md"
    script.write_text("# A\nOne. Two.\n", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    parsed = read_script(script, split_cache=blocker / "splits.json")  # its folder is a file
    assert [s.text for s in parsed.sentences] == ["One.", "Two."]


def test_a_bad_script_leaves_the_split_cache_as_it_was(tmp_path: Path) -> None:
    script = tmp_path / "script.md"
    cache = tmp_path / "splits.json"
    script.write_text("# A\nOne. Two.\n", encoding="utf-8")
    read_script(script, split_cache=cache)
    before = cache.read_bytes()
    script.write_text("# A\nThree. Four.\n> camera: sideways\n", encoding="utf-8")
    with pytest.raises(InputError):
        read_script(script, split_cache=cache)
    assert cache.read_bytes() == before


def test_remembered_splits_are_copies() -> None:
    first = split_sentences("Mud slides. Rocks roll.")
    first.append("changed")
    assert split_sentences("Mud slides. Rocks roll.") == ["Mud slides.", "Rocks roll."]

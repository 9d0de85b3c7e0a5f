"""Properties of the script parser and of sentence alignment, checked on generated inputs.

- The parser raises nothing but InputError, whatever the text.
- A script rendered from sentences (one per line, under headings) parses back to exactly those
  sentences and sections.
- Alignment keeps every id of an unedited script in order, uses each old id at most once, gives
  one answer per new sentence, and lets every sentence untouched by an edit (inserts, deletes,
  replacements, moves) keep its id.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from videogen_domain.align import align
from videogen_domain.errors import InputError
from videogen_domain.script import parse_script

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the parser --------------------------------------------------------------------------------

FRAGMENTS = [
    "# ",
    "## ",
    "#",
    "> ",
    "> camera: zoom-in",
    "> camera: spin",
    "> motion: 0.5",
    "> motion: 2",
    "> characters: Ada, ../Bob",
    "> speaker: Ada",
    " | ",
    "image: ",
    "<!--",
    "-->",
    "Dr. Smith measured 3.5 km.",
    "It erupts!",
    "\n",
    "\r\n",
    "\r",
    "\u2028",
    "\x00",
    "\x85",
    "\ufeff",
    "بركان",
    "🌋",
]

script_like = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=40
).map("".join)


def parse_or_input_error(text: str) -> None:
    try:
        parsed = parse_script(text)
    except InputError as exc:
        assert exc.line is None or exc.line >= 1
        return
    assert parsed.sentences
    assert all(s.text and s.text == s.text.strip() for s in parsed.sentences)
    assert all(0 <= s.section_index < len(parsed.sections) for s in parsed.sentences)


@pytest.mark.slow
@SETTINGS
@given(st.text(max_size=3000))
def test_the_parser_raises_only_input_error_on_any_text(text: str) -> None:
    parse_or_input_error(text)


@SETTINGS
@given(script_like)
def test_the_parser_raises_only_input_error_on_script_like_text(text: str) -> None:
    parse_or_input_error(text)


words = st.lists(
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=9), min_size=1, max_size=10
)
sentence = st.builds(
    lambda ws, end: " ".join(ws).capitalize() + end, words, st.sampled_from([".", "!", "?"])
)
title = words.map(lambda ws: " ".join(ws).title())
sections = st.lists(
    st.tuples(title, st.lists(sentence, min_size=1, max_size=6)), min_size=1, max_size=5
)


@pytest.mark.slow
@SETTINGS
@given(sections)
def test_a_rendered_script_parses_back_to_its_sentences(
    parts: list[tuple[str, list[str]]],
) -> None:
    lines: list[str] = []
    for heading, texts in parts:
        lines += [f"## {heading}", *texts, ""]
    parsed = parse_script("\n".join(lines))
    assert [s.text for s in parsed.sentences] == [t for _, texts in parts for t in texts]
    assert parsed.sections == [heading for heading, _ in parts]
    expected_index = [i for i, (_, texts) in enumerate(parts) for _ in texts]
    assert [s.section_index for s in parsed.sentences] == expected_index
    for s in parsed.sentences:
        assert lines[s.line - 1] == s.text


# -- alignment ---------------------------------------------------------------------------------

texts = st.text(alphabet=string.ascii_lowercase + " .", min_size=1, max_size=30)


@dataclass(frozen=True)
class Edit:
    op: str  # insert, delete, replace, move
    at: int
    to: int


edits = st.lists(
    st.builds(
        Edit,
        st.sampled_from(["insert", "delete", "replace", "move"]),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    max_size=12,
)


def apply_edits(old: list[tuple[str, str]], ops: list[Edit]) -> tuple[list[str], list[str | None]]:
    """The edited texts, and for each the id it must keep (None: inserted or rewritten)."""
    rows: list[tuple[str, str | None]] = [(t, i) for i, t in old]
    fresh = 0
    for e in ops:
        if e.op == "insert" or not rows:
            rows.insert(e.at % (len(rows) + 1), (f"NEW {fresh}", None))
            fresh += 1
        elif e.op == "delete":
            rows.pop(e.at % len(rows))
        elif e.op == "replace":
            rows[e.at % len(rows)] = (f"NEW {fresh}", None)
            fresh += 1
        else:
            row = rows.pop(e.at % len(rows))
            rows.insert(e.to % (len(rows) + 1), row)
    return [t for t, _ in rows], [i for _, i in rows]


def old_script(items: list[str]) -> list[tuple[str, str]]:
    return [(f"p.s{n:04d}", t) for n, t in enumerate(items, 1)]


@SETTINGS
@given(st.lists(texts, max_size=40))
def test_aligning_a_script_with_itself_keeps_every_id_in_order(items: list[str]) -> None:
    old = old_script(items)
    assert align(old, items) == [i for i, _ in old]


@SETTINGS
@given(st.lists(texts, max_size=30), st.lists(texts, max_size=30))
def test_every_old_id_is_used_at_most_once(before: list[str], after: list[str]) -> None:
    old = old_script(before)
    result = align(old, after)
    assert len(result) == len(after)
    kept = [i for i in result if i is not None]
    assert len(kept) == len(set(kept))
    assert set(kept) <= {i for i, _ in old}


@SETTINGS
@given(st.lists(texts, unique=True, max_size=30), edits)
def test_unchanged_sentences_keep_their_ids_through_edits(
    items: list[str], ops: list[Edit]
) -> None:
    old = old_script(items)
    new_texts, must_keep = apply_edits(old, ops)
    result = align(old, new_texts)
    assert len(result) == len(new_texts)
    for got, want in zip(result, must_keep, strict=True):
        if want is not None:
            assert got == want
    kept = [i for i in result if i is not None]
    assert len(kept) == len(set(kept))

"""Sentence identity through edits: edits keep ids, inserts get new ones, moves keep theirs,
and repeated texts are told apart by position, neighbours and directives (never by text alone):
an insert, a delete or an edit keeps the id of every other sentence."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videogen_domain.align import align


def _old(texts: list[str]) -> list[tuple[str, str]]:
    return [(f"s{i}", t) for i, t in enumerate(texts)]


BASE = [
    "Volcanoes are openings in the crust.",
    "Magma rises because it is light.",
    "Pressure builds in the chamber.",
    "Then the volcano erupts.",
    "Ash rises into the sky.",
]


def test_unchanged_script_keeps_every_id() -> None:
    assert align(_old(BASE), BASE) == ["s0", "s1", "s2", "s3", "s4"]


def test_edited_sentence_keeps_its_id() -> None:
    new = list(BASE)
    new[2] = "Pressure slowly builds in the magma chamber."
    assert align(_old(BASE), new) == ["s0", "s1", "s2", "s3", "s4"]


def test_inserted_sentence_gets_a_new_id() -> None:
    new = [*BASE[:2], "A completely different thought appears here.", *BASE[2:]]
    assert align(_old(BASE), new) == ["s0", "s1", None, "s2", "s3", "s4"]


def test_deleted_sentence_is_gone() -> None:
    new = [BASE[0], BASE[1], BASE[3], BASE[4]]
    result = align(_old(BASE), new)
    assert result == ["s0", "s1", "s3", "s4"]
    assert "s2" not in result


def test_reordering_changes_order_only() -> None:
    new = [BASE[4], BASE[0], BASE[1], BASE[2], BASE[3]]
    assert align(_old(BASE), new) == ["s4", "s0", "s1", "s2", "s3"]


def test_replaced_by_unrelated_text_is_delete_plus_insert() -> None:
    new = list(BASE)
    new[1] = "Penguins live in Antarctica and eat fish."
    result = align(_old(BASE), new)
    assert result[1] is None
    assert "s1" not in result


def test_mixed_edit_of_a_400_sentence_script() -> None:
    rng = random.Random(7)
    words = "lava ash magma crust plate quake cone vent rock gas heat cloud river forest".split()
    texts = [
        f"Sentence {i}: the " + " ".join(rng.choice(words) for _ in range(8)) + "."
        for i in range(400)
    ]
    old = _old(texts)
    new = list(texts)
    expected: list[str | None] = [f"s{i}" for i in range(400)]
    # edit 10, delete 10, insert 10, move one block of 5
    for i in range(5, 400, 40):
        new[i] = new[i].replace("the", "then the", 1) + " Indeed."
    deleted = set(range(20, 400, 40))
    new = [t for i, t in enumerate(new) if i not in deleted]
    expected = [e for i, e in enumerate(expected) if i not in deleted]
    for n, pos in enumerate(range(30, 360, 33)):
        new.insert(pos, f"Brand new inserted sentence number {n} about penguins and ice.")
        expected.insert(pos, None)
    block, block_ids = new[100:105], expected[100:105]
    del new[100:105], expected[100:105]
    new[250:250], expected[250:250] = block, block_ids

    result = align(old, new)
    assert result == expected
    kept = [r for r in result if r is not None]
    assert len(kept) == len(set(kept)) == 390


MAGMA = "Magma rises."


def _repeated(n: int, tagged: bool) -> tuple[list[tuple[str, str]], list[str]]:
    old = [(f"s{i}", MAGMA) for i in range(n)]
    tags = [f"image: view number {i}" if tagged else "" for i in range(n)]
    return old, tags


def test_sixty_identical_lines_with_directives_keep_ids_through_insert_and_edit() -> None:
    old, tags = _repeated(60, tagged=True)
    # insert one line at the top (same words, its own directive), then edit sentence 30
    texts = [MAGMA] * 61
    new_tags = ["image: view number new", *tags]
    first = align(old, texts, old_tags=tags, new_tags=new_tags)
    assert first == [None, *(f"s{i}" for i in range(60))]
    after_insert = [("new", MAGMA), *old]
    texts[31] = "Magma rises fast."
    second = align(after_insert, texts, old_tags=new_tags, new_tags=new_tags)
    assert second == ["new", *(f"s{i}" for i in range(60))]


def test_three_hundred_identical_lines_keep_ids_by_position() -> None:
    for tagged in (False, True):
        old, tags = _repeated(300, tagged)
        texts = ["A brand new opening line about penguins.", *[MAGMA] * 300]
        texts[31] = "Magma rises fast."  # old sentence 30
        new_tags = ["", *tags]
        result = align(old, texts, old_tags=tags, new_tags=new_tags)
        assert result == [None, *(f"s{i}" for i in range(300))], tagged


def test_delete_inside_identical_lines_removes_one_id_and_keeps_the_rest() -> None:
    old, tags = _repeated(100, tagged=True)
    texts = [MAGMA] * 99
    new_tags = tags[:40] + tags[41:]
    result = align(old, texts, old_tags=tags, new_tags=new_tags)
    assert result == [f"s{i}" for i in range(100) if i != 40]


def test_swap_two_sentences_and_edit_both_keeps_both_ids() -> None:
    # "keeps" = each id follows its sentence's content: the edited first sentence, now second,
    # keeps the first sentence's id; the swap itself is a reorder.
    new = [
        BASE[0],
        "Pressure slowly builds in the chamber.",
        "Magma rises because it is light!",
        BASE[3],
        BASE[4],
    ]
    assert align(_old(BASE), new) == ["s0", "s2", "s1", "s3", "s4"]


def test_swap_two_identical_lines_with_directives_and_edit_both() -> None:
    old, tags = _repeated(20, tagged=True)
    texts = [MAGMA] * 20
    new_tags = list(tags)
    new_tags[5], new_tags[12] = tags[12], tags[5]
    texts[5], texts[12] = "Magma rises fast.", "Magma rises slowly."
    result = align(old, texts, old_tags=tags, new_tags=new_tags)
    expected = [f"s{i}" for i in range(20)]
    expected[5], expected[12] = "s12", "s5"
    assert result == expected


_TEXTS = ["Magma rises.", "Lava flows down the slope.", "Magma rises."]
_EDITS = [" fast", " again", " slowly today"]


@st.composite
def _edited_script(
    draw: st.DrawFn, *, tagged: bool, deletes: bool
) -> tuple[list[tuple[str, str]], list[str], list[str], list[str], list[str | None]]:
    """An old script of repeated texts, random inserts / deletes / text edits on it, and the
    ids the edited script must keep (None for an inserted sentence)."""
    n = draw(st.integers(min_value=1, max_value=60))
    pick = draw(st.lists(st.integers(0, len(_TEXTS) - 1), min_size=n, max_size=n))
    old = [(f"s{i}", _TEXTS[k]) for i, k in enumerate(pick)]
    old_tags = [f"> image: view {i}" if tagged else "" for i in range(n)]
    rows: list[tuple[str, str, str | None]] = [
        (t, tag, sid) for (sid, t), tag in zip(old, old_tags, strict=True)
    ]
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["insert", "edit", "delete"] if deletes else ["insert", "edit"]),
                st.integers(0, 10_000),
                st.integers(0, len(_EDITS) - 1),
            ),
            max_size=12,
        )
    )
    inserted = 0
    edited: set[str] = set()
    for op, where, which in ops:
        if op == "insert":
            pos = where % (len(rows) + 1)
            tag = f"> image: inserted {inserted}" if tagged else ""
            rows.insert(pos, (f"Penguins number {inserted} dive under the pack ice.", tag, None))
            inserted += 1
        elif rows:
            pos = where % len(rows)
            text, tag, sid = rows[pos]
            if op == "delete":
                del rows[pos]
            elif sid is not None and sid not in edited:
                edited.add(sid)
                rows[pos] = (text.rstrip(".") + _EDITS[which] + ".", tag, sid)
    return (old, old_tags, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(_edited_script(tagged=True, deletes=True))
def test_property_repeated_texts_with_directives_keep_every_untouched_and_edited_id(
    case: tuple[list[tuple[str, str]], list[str], list[str], list[str], list[str | None]],
) -> None:
    old, old_tags, texts, tags, expected = case
    assert align(old, texts, old_tags=old_tags, new_tags=tags) == expected


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(_edited_script(tagged=False, deletes=False))
def test_property_repeated_texts_without_directives_inserts_and_edits_keep_every_id(
    case: tuple[list[tuple[str, str]], list[str], list[str], list[str], list[str | None]],
) -> None:
    old, old_tags, texts, tags, expected = case
    assert align(old, texts, old_tags=old_tags, new_tags=tags) == expected


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(_edited_script(tagged=False, deletes=True))
def test_property_repeated_texts_without_directives_lose_only_deleted_ids(
    case: tuple[list[tuple[str, str]], list[str], list[str], list[str], list[str | None]],
) -> None:
    # Identical lines without directives cannot be told apart when one of them is deleted:
    # which copy is "the deleted one" is the same answer either way. What must hold: inserts
    # and only inserts get new ids, as many ids go as sentences were deleted, and an untouched
    # sentence keeps the id of a sentence with its very words.
    old, old_tags, texts, tags, expected = case
    result = align(old, texts, old_tags=old_tags, new_tags=tags)
    old_text = dict(old)
    assert [r is None for r in result] == [e is None for e in expected]
    kept = [r for r in result if r is not None]
    assert len(kept) == len(set(kept))
    for got, want, text in zip(result, expected, texts, strict=True):
        if want is not None and text == old_text[want]:
            assert got is not None and old_text[got] == text

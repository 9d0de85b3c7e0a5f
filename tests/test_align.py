"""Sentence identity through edits: edits keep ids, inserts get new ones, moves keep theirs."""

from __future__ import annotations

import random

from videogen.align import align


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

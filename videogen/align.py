"""Sentence identity through edits: align the sentences of an edited script with the old ones.

An edited sentence keeps its id, inserted sentences get new ids, deleted ones are removed and
reordering changes order only. The alignment is a diff of the two text sequences
(``difflib.SequenceMatcher``): equal runs keep their ids; moved sentences (same text, elsewhere)
keep theirs; inside a replaced run, old and new sentences are paired in order when they are
similar enough to be "the same sentence, edited".
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Sequence

EDIT_SIMILARITY = 0.5
"""Minimum similarity (difflib ratio over characters) for a changed line to keep its id."""


def _similar(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < EDIT_SIMILARITY or matcher.quick_ratio() < EDIT_SIMILARITY:
        return 0.0
    return matcher.ratio()


def align(old: Sequence[tuple[str, str]], new_texts: Sequence[str]) -> list[str | None]:
    """Match new sentences to old ids.

    Args:
        old: ``(id, text)`` of the sentences as last synced, in order.
        new_texts: the texts of the edited script, in order.

    Returns:
        For each new sentence, the old id it keeps, or None for an inserted sentence. Every old
        id appears at most once; old ids that appear nowhere were deleted.
    """
    old_texts = [t for _, t in old]
    result: list[str | None] = [None] * len(new_texts)
    matcher = difflib.SequenceMatcher(None, old_texts, list(new_texts), autojunk=False)
    unmatched_old: list[int] = []
    unmatched_new: list[int] = []
    replace_blocks: list[tuple[list[int], list[int]]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                result[j1 + k] = old[i1 + k][0]
            continue
        olds = list(range(i1, i2))
        news = list(range(j1, j2))
        unmatched_old.extend(olds)
        unmatched_new.extend(news)
        if tag == "replace":
            replace_blocks.append((olds, news))

    # 1. Moves: identical text deleted in one place and inserted in another keeps its id.
    pool: dict[str, list[int]] = defaultdict(list)
    for i in unmatched_old:
        pool[old_texts[i]].append(i)
    used_old: set[int] = set()
    for j in unmatched_new:
        candidates = pool.get(new_texts[j])
        if candidates:
            i = candidates.pop(0)
            result[j] = old[i][0]
            used_old.add(i)

    # 2. Edits: inside each replaced run, pair remaining old/new in order by similarity.
    for olds, news in replace_blocks:
        free_old = [i for i in olds if i not in used_old]
        start = 0
        for j in news:
            if result[j] is not None:
                continue
            best, best_score = None, EDIT_SIMILARITY
            for pos in range(start, len(free_old)):
                score = _similar(old_texts[free_old[pos]], new_texts[j])
                if score >= best_score:
                    best, best_score = pos, score
            if best is not None:
                i = free_old[best]
                result[j] = old[i][0]
                used_old.add(i)
                start = best + 1
    return result

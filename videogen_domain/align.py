"""Sentence identity through edits: align the sentences of an edited script with the old ones.

An edited sentence keeps its id, inserted sentences get new ids, deleted ones are removed and
reordering changes order only. Identity is decided by position and neighbours, not by text
alone, so scripts that repeat a sentence many times keep every id through inserts and edits:

1. Each sentence is a key: its text plus a tag (its directives, when the caller gives them), so
   sixty ``Magma rises.`` lines with sixty different ``> image:`` directives are sixty different
   sentences.
2. The common head and tail of the two scripts keep their ids as they are.
3. In between, keys that occur exactly once on both sides and in the same order (the longest
   such chain, as in patience diff) are anchors: they keep their ids and split the rest into
   small gaps.
4. Each gap is aligned in order by dynamic programming that scores an identical sentence 1, an
   edited one (same text with other directives, or similar text) less, and nothing else: an
   insert or a delete never shifts the ids of its neighbours, and an edit inside a run of
   repeated lines keeps the id of the line at its place.
5. Sentences left over on both sides are paired when they are the same sentence moved
   (identical key, then identical text) or an edited sentence moved (similar text), the
   candidate nearest in relative position first. So a swap of two sentences keeps both ids,
   even when both were edited too: each id follows its sentence's content to its new place.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import re
from collections import defaultdict
from collections.abc import Sequence

EDIT_SIMILARITY = 0.5
"""Minimum similarity (difflib ratio over words; over characters for short lines) for a
changed line to keep its id."""

SHORT = 40
"""Lines shorter than this many characters are also compared character by character."""

DP_CELLS = 250_000
"""Largest gap (old x new sentences) aligned by dynamic programming; larger gaps (a rewrite
without any anchor) are aligned by difflib, then paired by similarity."""

BAND = 16
"""In the dynamic programming, edited (not identical) pairs are looked for only this many
sentences off the gap's diagonal; identical ones anywhere."""

NEAREST = 64
"""When pairing left-over sentences by similarity, each new one looks at this many nearest
left-over old ones."""

_EXACT = 1.0
_SAME_TEXT = 0.9


_WORD = re.compile(r"\w+")


def _similar(a: str, b: str) -> float:
    """Similarity of two lines: the ratio of their word sequences (fast), or of their
    characters when both are short (a one-word change in a three-word line)."""
    if not a or not b:
        return 0.0
    wa, wb = _words(a), _words(b)
    if _vocabulary(a).isdisjoint(_vocabulary(b)):
        score = 0.0  # no word in common: nothing can match (cheap)
    else:
        score = difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()
    if score >= EDIT_SIMILARITY or len(a) >= SHORT or len(b) >= SHORT:
        return score
    return max(score, _char_similarity(a, b))


@functools.lru_cache(maxsize=1 << 14)
def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


@functools.lru_cache(maxsize=1 << 14)
def _vocabulary(text: str) -> frozenset[str]:
    return frozenset(_words(text))


def _char_similarity(a: str, b: str) -> float:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < EDIT_SIMILARITY or matcher.quick_ratio() < EDIT_SIMILARITY:
        return 0.0
    return matcher.ratio()


class _Aligner:
    def __init__(
        self,
        old_texts: Sequence[str],
        new_texts: Sequence[str],
        old_tags: Sequence[str],
        new_tags: Sequence[str],
    ) -> None:
        self.old_texts, self.new_texts = old_texts, new_texts
        self.old_tags, self.new_tags = old_tags, new_tags
        intern: dict[tuple[str, str], int] = {}
        self.old_keys = [
            intern.setdefault(k, len(intern)) for k in zip(old_texts, old_tags, strict=True)
        ]
        self.new_keys = [
            intern.setdefault(k, len(intern)) for k in zip(new_texts, new_tags, strict=True)
        ]
        self.match: dict[int, int] = {}  # new index -> old index
        self.old_tag_at = _unique_positions(old_tags)
        self.new_tag_at = _unique_positions(new_tags)
        self._sim: dict[tuple[str, str], float] = {}

    # -------------------------------------------------------------------------- scoring

    def text_similarity(self, a: str, b: str) -> float:
        pair = (a, b)
        score = self._sim.get(pair)
        if score is None:
            score = self._sim[pair] = _similar(a, b)
        return score

    def weight(self, i: int, j: int) -> float:
        """How much pairing old ``i`` with new ``j`` is worth (0: they are not one sentence)."""
        if self.old_keys[i] == self.new_keys[j]:
            return _EXACT
        if self._tag_elsewhere(i, j):
            return 0.0
        a, b = self.old_texts[i], self.new_texts[j]
        if a == b:
            return _SAME_TEXT
        sim = self.text_similarity(a, b)
        if sim < EDIT_SIMILARITY:
            return 0.0
        bonus = 0.1 if self.old_tags[i] and self.old_tags[i] == self.new_tags[j] else 0.0
        return 0.5 + 0.3 * sim + bonus

    def _tag_elsewhere(self, i: int, j: int) -> bool:
        """Whether old ``i`` or new ``j`` carries a directive that, unique on both sides, marks
        another sentence as its counterpart whose words fit at least as well (the directive
        moved with its sentence: it decides where the words cannot)."""
        if not self.new_tags[j] and not self.old_tags[i]:
            return False
        here = self.text_similarity(self.old_texts[i], self.new_texts[j])
        tag = self.new_tags[j]
        if tag and self.new_tag_at.get(tag) == j:
            other = self.old_tag_at.get(tag, i)
            if (
                other != i
                and self.text_similarity(self.old_texts[other], self.new_texts[j]) >= here
            ):
                return True
        tag = self.old_tags[i]
        if tag and self.old_tag_at.get(tag) == i:
            other = self.new_tag_at.get(tag, j)
            if (
                other != j
                and self.text_similarity(self.old_texts[i], self.new_texts[other]) >= here
            ):
                return True
        return False

    # -------------------------------------------------------------------------- in order

    def region(self, olds: list[int], news: list[int]) -> None:
        """Align old ``olds`` with new ``news`` (index lists, in order)."""
        ok, nk = self.old_keys, self.new_keys
        lo = 0
        while lo < len(olds) and lo < len(news) and ok[olds[lo]] == nk[news[lo]]:
            self.match[news[lo]] = olds[lo]
            lo += 1
        hi_o, hi_n = len(olds), len(news)
        while hi_o > lo and hi_n > lo and ok[olds[hi_o - 1]] == nk[news[hi_n - 1]]:
            self.match[news[hi_n - 1]] = olds[hi_o - 1]
            hi_o, hi_n = hi_o - 1, hi_n - 1
        olds, news = olds[lo:hi_o], news[lo:hi_n]
        if not olds or not news:
            return
        anchors = self._anchors(olds, news)
        if not anchors:
            self._gap(olds, news)
            return
        po = pn = 0
        for a_o, a_n in anchors:
            self.region(olds[po:a_o], news[pn:a_n])
            self.match[news[a_n]] = olds[a_o]
            po, pn = a_o + 1, a_n + 1
        self.region(olds[po:], news[pn:])

    def _anchors(self, olds: list[int], news: list[int]) -> list[tuple[int, int]]:
        """Positions (in ``olds``, in ``news``) of keys unique on both sides, longest chain
        increasing on both."""
        count_o: dict[int, int] = defaultdict(int)
        pos_o: dict[int, int] = {}
        for p, i in enumerate(olds):
            count_o[self.old_keys[i]] += 1
            pos_o[self.old_keys[i]] = p
        count_n: dict[int, int] = defaultdict(int)
        for j in news:
            count_n[self.new_keys[j]] += 1
        pairs = [
            (pos_o[self.new_keys[j]], q)
            for q, j in enumerate(news)
            if count_n[self.new_keys[j]] == 1 and count_o.get(self.new_keys[j]) == 1
        ]
        return _longest_increasing(pairs)

    def _gap(self, olds: list[int], news: list[int]) -> None:
        n, m = len(olds), len(news)
        if n * m > DP_CELLS:
            keys_o = [self.old_keys[i] for i in olds]
            keys_n = [self.new_keys[j] for j in news]
            matcher = difflib.SequenceMatcher(None, keys_o, keys_n, autojunk=False)
            for block in matcher.get_matching_blocks():
                for k in range(block.size):
                    self.match[news[block.b + k]] = olds[block.a + k]
            return
        # score[p][q]: best total weight aligning olds[:p] with news[:q]
        score = [[0.0] * (m + 1) for _ in range(n + 1)]
        ok, nk = self.old_keys, self.new_keys
        for p in range(1, n + 1):
            i = olds[p - 1]
            key_i = ok[i]
            row, prev = score[p], score[p - 1]
            centre = p * m / n
            for q in range(1, m + 1):
                best = prev[q] if prev[q] >= row[q - 1] else row[q - 1]
                j = news[q - 1]
                if nk[j] == key_i:
                    w = _EXACT
                elif abs(q - centre) <= BAND:
                    w = self.weight(i, j)
                else:
                    w = 0.0
                if w and prev[q - 1] + w > best:
                    best = prev[q - 1] + w
                row[q] = best
        p, q = n, m
        while p and q:
            here = score[p][q]
            if here == score[p - 1][q]:
                p -= 1
            elif here == score[p][q - 1]:
                q -= 1
            else:
                self.match[news[q - 1]] = olds[p - 1]
                p, q = p - 1, q - 1

    # -------------------------------------------------------------------------- left over

    def leftovers(self) -> None:
        """Pair sentences that moved (and maybe were edited too)."""
        n_old, n_new = len(self.old_keys), len(self.new_keys)
        used = set(self.match.values())
        free_old = [i for i in range(n_old) if i not in used]
        free_new = [j for j in range(n_new) if j not in self.match]
        if not free_old or not free_new:
            return

        def rel_old(i: int) -> float:
            return i / max(1, n_old - 1)

        def rel_new(j: int) -> float:
            return j / max(1, n_new - 1)

        free_rel = [rel_old(i) for i in free_old]
        candidates: list[tuple[float, float, int, int]] = []
        by_key: dict[int, list[int]] = defaultdict(list)
        by_text: dict[str, list[int]] = defaultdict(list)
        for i in free_old:
            by_key[self.old_keys[i]].append(i)
            by_text[self.old_texts[i]].append(i)
        for j in free_new:
            for i in by_key.get(self.new_keys[j], []):
                candidates.append((-_EXACT, abs(rel_old(i) - rel_new(j)), i, j))
            for i in by_text.get(self.new_texts[j], []):
                if self.old_keys[i] != self.new_keys[j]:
                    candidates.append((-_SAME_TEXT, abs(rel_old(i) - rel_new(j)), i, j))
            # the NEAREST left-over old sentences by relative position (free_old is in order)
            here = rel_new(j)
            mid = bisect.bisect_left(free_rel, here)
            window = free_old[max(0, mid - NEAREST) : mid + NEAREST]
            nearest = sorted(window, key=lambda i: abs(rel_old(i) - here))
            for i in nearest[:NEAREST]:
                if self.old_texts[i] != self.new_texts[j]:
                    w = self.weight(i, j)
                    if w:
                        candidates.append((-w, abs(rel_old(i) - rel_new(j)), i, j))
        candidates.sort()
        taken_old: set[int] = set()
        for _, _, i, j in candidates:
            if i in taken_old or j in self.match:
                continue
            self.match[j] = i
            taken_old.add(i)


def _unique_positions(tags: Sequence[str]) -> dict[str, int]:
    """Non-empty tags that occur exactly once, and where."""
    seen: dict[str, int] = {}
    twice: set[str] = set()
    for k, tag in enumerate(tags):
        if tag:
            if tag in seen:
                twice.add(tag)
            seen[tag] = k
    return {t: k for t, k in seen.items() if t not in twice}


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of ``pairs`` (increasing in the second item) whose first items
    increase too (patience sorting, O(n log n))."""
    tails: list[int] = []  # first item of the chain's last pair, per chain length
    tail_idx: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for k, (a, _) in enumerate(pairs):
        pos = bisect.bisect_left(tails, a)
        if pos == len(tails):
            tails.append(a)
            tail_idx.append(k)
        else:
            tails[pos] = a
            tail_idx[pos] = k
        back[k] = tail_idx[pos - 1] if pos else -1
    chain: list[tuple[int, int]] = []
    k = tail_idx[-1] if tail_idx else -1
    while k >= 0:
        chain.append(pairs[k])
        k = back[k]
    chain.reverse()
    return chain


def align(
    old: Sequence[tuple[str, str]],
    new_texts: Sequence[str],
    *,
    old_tags: Sequence[str] | None = None,
    new_tags: Sequence[str] | None = None,
) -> list[str | None]:
    """Match new sentences to old ids.

    Args:
        old: ``(id, text)`` of the sentences as last synced, in order.
        new_texts: the texts of the edited script, in order.
        old_tags, new_tags: optional per-sentence tags (e.g. the directives) that, with the
            text, tell repeated sentences apart; an empty tag means none.

    Returns:
        For each new sentence, the old id it keeps, or None for an inserted sentence. Every old
        id appears at most once; old ids that appear nowhere were deleted.
    """
    old_texts = [t for _, t in old]
    o_tags = list(old_tags) if old_tags is not None else [""] * len(old)
    n_tags = list(new_tags) if new_tags is not None else [""] * len(new_texts)
    if len(o_tags) != len(old) or len(n_tags) != len(new_texts):
        raise ValueError("one tag per sentence is needed")
    aligner = _Aligner(old_texts, list(new_texts), o_tags, n_tags)
    aligner.region(list(range(len(old))), list(range(len(new_texts))))
    aligner.leftovers()
    return [old[aligner.match[j]][0] if j in aligner.match else None for j in range(len(new_texts))]

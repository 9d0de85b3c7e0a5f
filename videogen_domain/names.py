"""Names a creator types (characters, speakers): normalized so that what looks the same is the
same, and compared by their look-alike skeleton so that what only looks the same is refused.

``normalize_name`` applies Unicode NFKC (full-width letters, ligatures and compatibility forms
become the plain ones) and deletes invisible characters (zero-width spaces and joiners, soft
hyphens, bidi controls: every format character, category Cf). ``skeleton`` maps each character
that is confusable with a Latin letter (a Cyrillic "А", a Greek "Ο") to that letter and folds
case, so ``Аda`` (Cyrillic А) and ``ada`` have the same skeleton.
"""

from __future__ import annotations

import functools
import re
import unicodedata

WORKFLOW_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A workflow name of workflows.yaml and of a brief's ``image_workflow``/``video_workflow``.
Matched whole (``fullmatch``): ``$`` would also match before a final newline, and these names
end up in file names and run tags."""


def normalize_name(name: str) -> str:
    """NFKC, without invisible (format) characters, with runs of spaces made one."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


@functools.lru_cache(maxsize=4096)
def _latin_lookalike(ch: str) -> str:
    if ch.isascii():
        return ch
    from confusable_homoglyphs import confusables

    found = confusables.is_confusable(ch, preferred_aliases=["latin"], greedy=False)
    if found:
        for glyph in found[0].get("homoglyphs", []):
            c = glyph.get("c", "")
            if len(c) == 1 and c.isascii():
                return c
    return ch


def skeleton(name: str) -> str:
    """The look-alike key of a name: two names with one skeleton cannot be told apart by eye."""
    return "".join(_latin_lookalike(ch) for ch in normalize_name(name)).casefold()

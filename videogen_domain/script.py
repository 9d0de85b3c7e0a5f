"""The ``script.md`` format: sections, sentences and per-sentence directives.

Format (documented in the README):

- ``#`` / ``##`` (any level) headings start a section.
- Every other non-empty line is split into sentences with a real sentence splitter (pysbd knows
  abbreviations like "Dr." and decimals like "3.5"); each sentence is one unit of the video.
- A line starting with ``>`` right after a sentence gives that sentence directives:
  ``> image: ...``, ``> video: ...``, ``> camera: zoom-in``, ``> motion: 0.6``,
  ``> characters: Ada, Bob``, ``> speaker: Ada``; several may share a line, separated by `` | ``.
- ``<!-- ... -->`` lines are comments.

Splitting is the slow part of reading a long script (pysbd builds its regular expressions for
every line), so each line's split is remembered: in this process by its text, and between
processes in a cache file `read_script` is given (JSON: the hash of each line -> its sentences,
tagged with the splitter's version). An edit then splits only the lines it changed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from videogen_domain.atomic import atomic_write_text
from videogen_domain.errors import InputError
from videogen_domain.models import CAMERA_MOVEMENTS, Directives
from videogen_domain.names import normalize_name, skeleton
from videogen_domain.safeio import read_limited

MAX_SENTENCE_CHARS = 1000
MAX_LINE_CHARS = 10 * MAX_SENTENCE_CHARS
"""Longer lines are refused before sentence splitting, whose time grows with the square of the
length of some lines (100,000 characters of "lava lava ..." take tens of seconds)."""
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
DEFAULT_SECTION = "Introduction"

_HEADING = re.compile(r"^(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
# C0/C1 controls (tab and CR aside) and the Unicode line/paragraph separators, which editors
# and str.splitlines() disagree about: they would shift every line number after them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_DIRECTIVE_KEYS = {
    "image": "image_prompt",
    "image prompt": "image_prompt",
    "video": "video_prompt",
    "video prompt": "video_prompt",
    "camera": "camera",
    "motion": "motion",
    "characters": "characters",
    "cast": "characters",
    "speaker": "speaker",
}


class ParsedSentence(BaseModel):
    """One sentence as read from the script, before it gets its stable id."""

    model_config = ConfigDict(frozen=True)

    text: str
    section: str
    section_index: int
    line: int
    directives: Directives = Directives()
    # The line of the directive that named the characters / the speaker (for errors).
    name_lines: dict[str, int] = Field(default_factory=dict, exclude=True)

    @property
    def sentence_version(self) -> str:
        """Hash of what narration uses: the words and who speaks them."""
        return _hash({"text": self.text, "speaker": self.directives.speaker})

    @property
    def direction_version(self) -> str:
        """Hash of what the shot uses besides the words: directives and the section title."""
        d = self.directives.model_dump(mode="json", exclude={"speaker"})
        return _hash({"directives": d, "section": self.section})


class ParsedScript(BaseModel):
    """A whole script: sections in order and the sentences within them."""

    sections: list[str]
    sentences: list[ParsedSentence]


_HASH_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
"""What `json.dumps(obj, sort_keys=True, ensure_ascii=False)` uses, made once: every sync hashes
each sentence twice, and `dumps` with options builds a new encoder per call."""


def _hash(obj: object) -> str:
    data = _HASH_JSON.encode(obj).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _segmenter():  # type: ignore[no-untyped-def]
    import pysbd  # lazy: a script whose lines are all in the split cache never needs it

    return pysbd.Segmenter(language="en", clean=False)


SPLITS_MEMORY_CHARS = 16 * 1024 * 1024
"""How much line text this process remembers splits of (four scripts of the largest size)."""


class _RememberedSplits:
    """Line -> its sentences, up to `SPLITS_MEMORY_CHARS` of line text (oldest forgotten first)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.splits: dict[str, tuple[str, ...]] = {}

    def get(self, line: str) -> tuple[str, ...] | None:
        return self.splits.get(line)

    def put(self, line: str, sentences: tuple[str, ...]) -> None:
        if line in self.splits:
            return
        self.splits[line] = sentences
        self.chars += len(line)
        while self.chars > self.max_chars:
            oldest = next(iter(self.splits))
            del self.splits[oldest]
            self.chars -= len(oldest)


_REMEMBERED = _RememberedSplits(SPLITS_MEMORY_CHARS)


def split_sentences(paragraph: str) -> list[str]:
    """Split one line of prose into sentences (remembered for the next parse in this process)."""
    known = _REMEMBERED.get(paragraph)
    if known is None:
        parts = (p.strip() for p in _segmenter().segment(paragraph))
        known = tuple(p for p in parts if p)
        _REMEMBERED.put(paragraph, known)
    return list(known)


SPLIT_CACHE_FORMAT = 1
"""Version of the split cache file's layout; a file of another version is ignored."""


@functools.lru_cache(maxsize=1)
def _splitter_tag() -> str:
    """What the cached splits depend on: the splitter, its version and its settings."""
    import pysbd  # lazy: see _segmenter

    return f"pysbd {pysbd.__version__} en clean=False"


def _line_key(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:32]


class _SplitCache:
    """The splits of one cache file, and those a parse used (what the file keeps next)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stored = self._load(path)
        self.used: dict[str, list[str]] = {}

    @staticmethod
    def _load(path: Path) -> dict[str, list[str]]:
        """The file's splits; none when it is missing, unreadable or of another version."""
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or data.get("format") != SPLIT_CACHE_FORMAT
            or data.get("splitter") != _splitter_tag()
            or not isinstance(data.get("splits"), dict)
        ):
            return {}
        return {
            k: v
            for k, v in data["splits"].items()
            if isinstance(v, list) and all(isinstance(p, str) and p for p in v)
        }

    def split(self, line: str) -> list[str]:
        key = _line_key(line)
        known = self.stored.get(key)
        if known is None:
            known = split_sentences(line)
        self.used[key] = known
        return list(known)

    def save(self) -> None:
        """Write the splits the parse used, when they differ from the file's (atomically)."""
        if self.used == self.stored:
            return
        data = {"format": SPLIT_CACHE_FORMAT, "splitter": _splitter_tag(), "splits": self.used}
        # A cache that cannot be written (read-only studio, full disk) only costs time.
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(data, ensure_ascii=False))


def _directive_name(raw: str, *, file: str, line: int, field: str) -> str:
    """A character name of a directive, normalized (NFKC, no invisible characters)."""
    name = normalize_name(raw)
    if (
        not name
        or "/" in name
        or "\\" in name
        or ".." in name
        or "|" in name
        or _CONTROL.search(name)
    ):
        raise InputError(
            f"invalid character name {raw.strip()!r}; use a name from the character library",
            file=file,
            line=line,
            field=field,
        )
    return name


def _parse_directives(body: str, *, file: str, line: int, current: Directives) -> Directives:
    values = current.model_dump()
    for chunk in body.split(" | "):
        chunk = chunk.strip()
        if not chunk:
            continue
        key, sep, value = chunk.partition(":")
        key = key.strip().lower()
        value = value.strip()
        if not sep or key not in _DIRECTIVE_KEYS:
            known = "image, video, camera, motion, characters, speaker"
            raise InputError(
                f"unknown directive {key!r}; write '> key: value' with key one of {known}",
                file=file,
                line=line,
                field=key or "directive",
            )
        field = _DIRECTIVE_KEYS[key]
        if not value:
            raise InputError("directive has no value", file=file, line=line, field=key)
        if field == "camera":
            if value not in CAMERA_MOVEMENTS:
                raise InputError(
                    f"unknown camera movement {value!r}; use one of {', '.join(CAMERA_MOVEMENTS)}",
                    file=file,
                    line=line,
                    field="camera",
                )
            values["camera"] = value
        elif field == "motion":
            try:
                motion = float(value)
            except ValueError:
                motion = float("nan")
            if not 0.0 <= motion <= 1.0:
                raise InputError(
                    f"motion strength must be a number from 0 to 1, got {value!r}",
                    file=file,
                    line=line,
                    field="motion",
                )
            values["motion"] = motion
        elif field == "characters":
            names = tuple(
                _directive_name(n, file=file, line=line, field="characters")
                for n in value.split(",")
                if normalize_name(n)
            )
            if not names:
                raise InputError("directive has no value", file=file, line=line, field=key)
            values["characters"] = names
        elif field == "speaker":
            values["speaker"] = _directive_name(value, file=file, line=line, field="speaker")
        else:
            values[field] = value
    try:
        return Directives.model_validate(values)
    except ValidationError as exc:  # pragma: no cover - every field is checked above
        raise InputError(str(exc), file=file, line=line, field="directive") from None


def parse_script(
    text: str,
    *,
    file: str | Path = "script.md",
    split: Callable[[str], list[str]] = split_sentences,
) -> ParsedScript:
    """Parse script text; raise InputError naming the file, line and field of the first problem.

    ``split`` splits one line into sentences (`split_sentences`, or a cache's in front of it).
    """
    fname = str(file)
    if len(text.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise InputError(
            f"script is larger than {MAX_SCRIPT_BYTES // (1024 * 1024)} MB",
            file=fname,
            line=1,
            field="script",
        )
    sections: list[str] = []
    sentences: list[ParsedSentence] = []
    in_comment = False
    comment_line = 0
    can_direct = False  # a directive line may follow a sentence (or another directive) only
    for lineno, raw in enumerate(_NEWLINE.split(text), start=1):
        line = raw.strip().lstrip("\ufeff")
        if in_comment:
            if "-->" in line:
                in_comment = False
            continue
        if not line:
            continue
        if line.startswith("<!--"):
            in_comment = "-->" not in line
            comment_line = lineno
            continue
        bad = _CONTROL.search(line)
        if bad:
            raise InputError(
                f"control character U+{ord(bad.group()):04X} in the text",
                file=fname,
                line=lineno,
                field="text",
            )
        heading = _HEADING.match(line)
        if heading:
            title = (heading.group(2) or "").strip()
            if not title:
                raise InputError("empty heading", file=fname, line=lineno, field="section")
            sections.append(title)
            can_direct = False
            continue
        if line.startswith(">"):
            if not can_direct:
                raise InputError(
                    "a directive line must follow the sentence it applies to",
                    file=fname,
                    line=lineno,
                    field="directive",
                )
            last = sentences[-1]
            directives = _parse_directives(
                line[1:], file=fname, line=lineno, current=last.directives
            )
            lines = dict(last.name_lines)
            if directives.characters != last.directives.characters:
                lines["characters"] = lineno
            if directives.speaker != last.directives.speaker:
                lines["speaker"] = lineno
            sentences[-1] = last.model_copy(update={"directives": directives, "name_lines": lines})
            continue
        if not sections:
            sections.append(DEFAULT_SECTION)
        can_direct = True
        if len(line) > MAX_LINE_CHARS:
            raise InputError(
                f"line is {len(line)} characters long; the limit is {MAX_LINE_CHARS} "
                f"(and {MAX_SENTENCE_CHARS} for one sentence): split it into shorter lines",
                file=fname,
                line=lineno,
                field="sentence",
            )
        for sentence in split(line):
            if len(sentence) > MAX_SENTENCE_CHARS:
                raise InputError(
                    f"sentence is {len(sentence)} characters long; the limit is "
                    f"{MAX_SENTENCE_CHARS} (split it into shorter sentences)",
                    file=fname,
                    line=lineno,
                    field="sentence",
                )
            if not any(unicodedata.category(ch)[0] in "LN" for ch in sentence):
                raise InputError(
                    f"sentence {sentence!r} has no words to narrate (only punctuation or "
                    "symbols); write words, or delete it",
                    file=fname,
                    line=lineno,
                    field="sentence",
                )
            sentences.append(
                ParsedSentence(
                    text=sentence,
                    section=sections[-1],
                    section_index=len(sections) - 1,
                    line=lineno,
                )
            )
    if in_comment:
        raise InputError(
            "comment '<!--' is never closed with '-->'",
            file=fname,
            line=comment_line,
            field="comment",
        )
    if not sentences:
        raise InputError("the script has no sentences", file=fname, line=1, field="script")
    used = sorted({s.section_index for s in sentences})
    # Sections without sentences are dropped; indices are renumbered densely.
    remap = {old: new for new, old in enumerate(used)}
    sentences = [
        s  # (most keep their index: copying thousands of models is a sync's time)
        if remap[s.section_index] == s.section_index
        else s.model_copy(update={"section_index": remap[s.section_index]})
        for s in sentences
    ]
    return ParsedScript(sections=[sections[i] for i in used], sentences=sentences)


def resolve_character_names(
    script: ParsedScript, known: Iterable[str], *, file: str | Path = "script.md"
) -> ParsedScript:
    """The script with every ``characters:`` / ``speaker:`` name spelt as in the library.

    A name matches a library character regardless of case (after normalization). An unknown
    name, or one that only looks like a library name (a Cyrillic "А" in "Аda"), is an error
    naming its line and the known characters: a typo must not quietly use the default voice.
    """
    by_key = {normalize_name(n).casefold(): n for n in known}
    by_skeleton = {skeleton(n): n for n in known}
    listing = ", ".join(sorted(by_key.values(), key=str.casefold)) or "none yet"

    def canonical(name: str, field: str, line: int) -> str:
        found = by_key.get(name.casefold())
        if found is not None:
            return found
        twin = by_skeleton.get(skeleton(name))
        if twin is not None:
            odd = ", ".join(f"U+{ord(c):04X}" for c in name if not c.isascii() and c not in twin)
            hint = f"it looks like {twin!r} but is spelt with other letters ({odd})"
            raise InputError(
                f"unknown character {name!r}: {hint}; type the name as {twin!r}",
                file=file,
                line=line,
                field=field,
            )
        raise InputError(
            f"unknown character {name!r}; known characters: {listing} "
            "(add one with `videogen character add`)",
            file=file,
            line=line,
            field=field,
        )

    out: list[ParsedSentence] = []
    for s in script.sentences:
        d = s.directives
        chars = tuple(
            canonical(n, "characters", s.name_lines.get("characters", s.line)) for n in d.characters
        )
        speaker = (
            canonical(d.speaker, "speaker", s.name_lines.get("speaker", s.line))
            if d.speaker
            else None
        )
        if chars != d.characters or speaker != d.speaker:
            d = d.model_copy(update={"characters": chars, "speaker": speaker})
            s = s.model_copy(update={"directives": d})
        out.append(s)
    return script.model_copy(update={"sentences": out})


def read_script_bytes(path: Path) -> bytes:
    """The bytes of a ``script.md``: a regular file, read up to the size limit (plus one byte)."""
    raw = read_limited(path, MAX_SCRIPT_BYTES, field="script")
    if len(raw) > MAX_SCRIPT_BYTES:
        raise InputError(
            f"script is larger than {MAX_SCRIPT_BYTES // (1024 * 1024)} MB; "
            "split it into several projects",
            file=path,
            line=1,
            field="script",
        )
    return raw


def read_script(
    path: Path, raw: bytes | None = None, *, split_cache: Path | None = None
) -> ParsedScript:
    """Read and parse a ``script.md`` file (UTF-8 required); ``raw`` = its bytes, if read.

    ``split_cache``: a file keeping the script's sentence splits between processes (read when
    it is valid, rewritten after a successful parse that split lines it did not hold).
    """
    if raw is None:
        raw = read_script_bytes(path)
    if len(raw) > MAX_SCRIPT_BYTES:
        raise InputError(
            f"script is larger than {MAX_SCRIPT_BYTES // (1024 * 1024)} MB; "
            "split it into several projects",
            file=path,
            line=1,
            field="script",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file=path, line=line, field="text"
        ) from None
    if split_cache is None:
        return parse_script(text, file=path)
    cache = _SplitCache(split_cache)
    parsed = parse_script(text, file=path, split=cache.split)
    cache.save()
    return parsed

"""Chapters from a script's sections: YouTube's description format (``chapters.txt``) and the
chapter marks an MP4 carries (FFmpeg's metadata file), both from one plan.

YouTube shows chapters only when the description lists at least three timestamps, the first at
00:00, each chapter at least 10 s long. A section shorter than that is merged into a neighbour
(the next one; the last section into the one before), the merged chapter keeping the title of
the longer of the two; when fewer than three chapters remain there are none, and the plan says
why. Lengths are checked on the whole seconds the description shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_CHAPTERS = 3
MIN_CHAPTER_S = 10

CHAPTERS_FILE = "chapters.txt"
"""A rough cut's chapters in YouTube's description format, beside it (and in the export)."""


@dataclass(frozen=True)
class Chapter:
    """One chapter: where it starts and ends in the video (seconds) and its title."""

    start_s: float
    end_s: float
    title: str

    @property
    def shown_start(self) -> int:
        """The start as the description shows it (whole seconds)."""
        return round(self.start_s)


@dataclass(frozen=True)
class ChapterPlan:
    """The chapters of a video (empty when it gets none) and, then, why."""

    chapters: tuple[Chapter, ...]
    why_none: str | None = None


def _shown_length(c: Chapter) -> int:
    return round(c.end_s) - c.shown_start


def plan_chapters(
    sections: Sequence[tuple[str, float, float]],
    *,
    min_chapters: int = MIN_CHAPTERS,
    min_seconds: int = MIN_CHAPTER_S,
) -> ChapterPlan:
    """The chapters of sections given in order as ``(title, start_s, end_s)``; consecutive
    sections of the same title are one chapter; an untitled section is "Part N"."""
    chapters: list[Chapter] = []
    for n, (title, start, end) in enumerate(sections, start=1):
        name = " ".join(title.split()) or f"Part {n}"
        if chapters and chapters[-1].title == name and abs(chapters[-1].end_s - start) < 1e-6:
            chapters[-1] = Chapter(chapters[-1].start_s, end, name)
        else:
            chapters.append(Chapter(start, end, name))
    titled = len(chapters)
    if chapters:
        first = chapters[0]
        chapters[0] = Chapter(0.0, first.end_s, first.title)  # the first is at 00:00
    while len(chapters) > 1:
        short = next((i for i, c in enumerate(chapters) if _shown_length(c) < min_seconds), None)
        if short is None:
            break
        other = short + 1 if short + 1 < len(chapters) else short - 1
        a, b = sorted((short, other))
        left, right = chapters[a], chapters[b]
        longer = left if _shown_length(left) >= _shown_length(right) else right
        chapters[a : b + 1] = [Chapter(left.start_s, right.end_s, longer.title)]
    if len(chapters) < min_chapters:
        return ChapterPlan(
            (),
            f"{titled} section(s) make {len(chapters)} chapter(s) of at least "
            f"{min_seconds} s; YouTube needs {min_chapters} (add sections, or longer ones)",
        )
    return ChapterPlan(tuple(chapters))


def timestamp(seconds: int, *, hours: bool) -> str:
    """``MM:SS``, or ``H:MM:SS`` for a video of an hour or more."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if hours else f"{m + 60 * h:02d}:{s:02d}"


def youtube_description(plan: ChapterPlan) -> str:
    """The chapter lines to paste into a YouTube description ('' when there are none)."""
    if not plan.chapters:
        return ""
    hours = round(plan.chapters[-1].end_s) >= 3600
    return "".join(f"{timestamp(c.shown_start, hours=hours)} {c.title}\n" for c in plan.chapters)


def _escape_ffmetadata(text: str) -> str:
    out = []
    for ch in text:
        if ch in "=;#\\\n":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def ffmetadata(plan: ChapterPlan) -> str:
    """FFmpeg's metadata file with the plan's chapters (milliseconds), for ``-map_chapters``."""
    lines = [";FFMETADATA1"]
    for c in plan.chapters:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(c.start_s * 1000)}",
            f"END={round(c.end_s * 1000)}",
            f"title={_escape_ffmetadata(c.title)}",
        ]
    return "\n".join(lines) + "\n"

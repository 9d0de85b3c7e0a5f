"""Chapters from sections (`videogen_domain.chapters`): what YouTube accepts in a description —
at least three timestamps, the first at 00:00, each chapter at least 10 s as shown in whole
seconds — with short sections merged into a neighbour (the longer one's title kept) and no
chapters, with the reason, when fewer than three remain; the MP4's marks from the same plan."""

from __future__ import annotations

import re

import pytest

from videogen_domain.chapters import (
    ChapterPlan,
    ffmetadata,
    plan_chapters,
    timestamp,
    youtube_description,
)


def _sections(*spec: tuple[str, float]) -> list[tuple[str, float, float]]:
    """(title, length) in order -> (title, start, end)."""
    out, t = [], 0.0
    for title, length in spec:
        out.append((title, t, t + length))
        t += length
    return out


def _check_youtube_rules(plan: ChapterPlan, total: float) -> None:
    lines = youtube_description(plan).splitlines()
    assert len(lines) >= 3 and lines[0].startswith("00:00 ")
    starts = []
    for line in lines:
        m = re.fullmatch(r"(\d{2}):(\d{2}) (.+)", line)
        assert m, line
        starts.append(int(m[1]) * 60 + int(m[2]))
    ends = [*starts[1:], round(total)]
    assert all(e - s >= 10 for s, e in zip(starts, ends, strict=True))


def test_long_sections_are_chapters_as_they_are() -> None:
    plan = plan_chapters(_sections(("Intro", 12.4), ("The eruption", 30.0), ("Ash", 61.2)))
    assert [c.title for c in plan.chapters] == ["Intro", "The eruption", "Ash"]
    assert youtube_description(plan) == "00:00 Intro\n00:12 The eruption\n00:42 Ash\n"
    _check_youtube_rules(plan, 103.6)


def test_a_short_section_joins_the_next_and_the_longer_title_stays() -> None:
    plan = plan_chapters(
        _sections(("Cold open", 4.0), ("Beneath", 20.0), ("Eruption", 15.0), ("Ash", 12.0))
    )
    assert [(c.title, c.start_s) for c in plan.chapters] == [
        ("Beneath", 0.0),
        ("Eruption", 24.0),
        ("Ash", 39.0),
    ]
    _check_youtube_rules(plan, 51.0)


def test_a_short_last_section_joins_the_one_before() -> None:
    plan = plan_chapters(_sections(("A", 15.0), ("B", 15.0), ("C", 20.0), ("Outro", 3.0)))
    assert [(c.title, c.end_s) for c in plan.chapters] == [("A", 15.0), ("B", 30.0), ("C", 53.0)]


def test_lengths_count_in_the_whole_seconds_shown() -> None:
    # 9.6 s shows as 00:00 -> 00:10 (10 s, kept); 9.4 s as 00:00 -> 00:09 (merged)
    kept = plan_chapters(_sections(("A", 9.6), ("B", 10.0), ("C", 10.0)))
    assert len(kept.chapters) == 3
    merged = plan_chapters(_sections(("A", 9.4), ("B", 10.2), ("C", 10.0), ("D", 10.0)))
    assert [c.title for c in merged.chapters] == ["B", "C", "D"]
    _check_youtube_rules(merged, 39.6)


def test_fewer_than_three_chapters_make_none_and_say_why() -> None:
    plan = plan_chapters(_sections(("A", 30.0), ("B", 5.0), ("C", 40.0)))
    assert plan.chapters == () and youtube_description(plan) == "" and ffmetadata(plan)
    assert plan.why_none is not None and plan.why_none.startswith("3 section(s) make 2 chapter(s)")
    assert plan_chapters([]).chapters == ()


def test_one_section_split_by_nothing_is_one_chapter() -> None:
    # consecutive sentences of one section arrive as one entry each
    many = [("Intro", float(i), float(i + 1)) for i in range(20)]
    plan = plan_chapters([*many, ("Next", 20.0, 35.0), ("Last", 35.0, 50.0)])
    assert [c.title for c in plan.chapters] == ["Intro", "Next", "Last"]


def test_untitled_sections_get_a_name() -> None:
    plan = plan_chapters(_sections(("", 12.0), ("  ", 12.0), ("End", 12.0)))
    assert [c.title for c in plan.chapters] == ["Part 1", "Part 2", "End"]


@pytest.mark.parametrize(
    ("seconds", "hours", "shown"),
    [(0, False, "00:00"), (75, False, "01:15"), (3599, False, "59:59"), (3725, True, "1:02:05")],
)
def test_timestamps(seconds: int, hours: bool, shown: str) -> None:
    assert timestamp(seconds, hours=hours) == shown


def test_an_hour_long_video_shows_hours_on_every_line() -> None:
    plan = plan_chapters(_sections(("A", 1800.0), ("B", 1800.0), ("C", 600.0)))
    assert youtube_description(plan) == "0:00:00 A\n0:30:00 B\n1:00:00 C\n"


def test_ffmetadata_marks_and_escapes_titles() -> None:
    plan = plan_chapters(_sections(("A=B; #1 \\ end", 12.345), ("B", 20.0), ("C", 15.0)))
    text = ffmetadata(plan)
    assert text.startswith(";FFMETADATA1\n")
    assert "title=A\\=B\\; \\#1 \\\\ end\n" in text
    assert "START=0\nEND=12345\n" in text and "START=12345\nEND=32345\n" in text

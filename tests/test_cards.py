"""Contract of `CardKeyframes`: a 1920x1080 PNG per style preset showing the shot's key phrase;
long text wraps and shrinks and never leaves the image; emoji/CJK/RTL text renders without
errors; it works with no system fonts (Pillow's bundled font); characters appear as a circular
cut-out of their reference image or as a name card; same inputs give identical PNG bytes;
`thumbnail_markdown` embeds a small PNG as a data URI; characters no font draws (emoji, CJK
without such fonts) give one warning naming the sentence and the fonts to install."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videogen_domain.models import Shot
from videogen_domain.styles import list_styles, load_style
from videogen_resources.base import CharacterRef, KeyframeJob
from videogen_resources.embedded import cards
from videogen_resources.embedded.cards import CardKeyframes, FontStack, fit_text, thumbnail_markdown

LONG = (
    "Deep beneath the surface, pressure and heat melt rock into magma, which gathers in "
    "chambers, rises through cracks and fissures, and finally bursts out as lava, ash and gas "
    "in eruptions that can reshape whole landscapes, bury cities, cool the climate for years, "
    "and build new islands out of the sea, as they have done again and again for millions of "
    "years across every continent, from Iceland's rifts to the Pacific's ring of fire, where "
    "most of the world's active volcanoes stand watch over the people who live beside them, "
    "patient and restless at once, waiting for the next time the ground begins to shake."
)[:600]


def shot(**kw: object) -> Shot:
    return Shot(image_prompt="p", video_prompt="v", **kw)  # type: ignore[arg-type]


def render(maker: CardKeyframes, out: Path, **kw: object) -> Image.Image:
    args: dict[str, object] = {
        "shot": shot(key_phrase="Volcanoes shape the land"),
        "sentence_text": "Volcanoes shape the land we live on.",
        "section_title": "Fire below",
        "style": "documentary",
        "characters": [],
        "out_path": out,
    }
    args.update(kw)
    res = maker.make_keyframe(KeyframeJob(**args))  # type: ignore[arg-type]
    assert res.path == out and (res.width, res.height) == (1920, 1080)
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (1920, 1080)
    return img.convert("RGB")


@pytest.mark.slow
@pytest.mark.parametrize("style", sorted(list_styles()))
def test_every_style_renders_a_card(tmp_path: Path, style: str) -> None:
    img = render(CardKeyframes(), tmp_path / f"{style}.png", style=style)
    arr = np.asarray(img)
    text = np.array(load_style(style).palette.rgb("text"))
    # Some pixels are (close to) the text colour: the phrase was drawn.
    assert np.any(np.all(np.abs(arr.astype(int) - text) < 12, axis=-1))
    assert arr.std() > 5


@pytest.mark.slow
def test_long_sentence_fits(tmp_path: Path) -> None:
    assert len(LONG) == 600
    for style in ("documentary", "anime", "cinematic", "watercolor"):
        render(
            CardKeyframes(), tmp_path / f"{style}.png", shot=shot(), sentence_text=LONG, style=style
        )
    # The text block itself: never wider or taller than its box.
    main = cards.resolve_family("sans", "bold")
    block = fit_text(LONG, main, cards.fallback_choices(), (1200, 300), max_size=100, min_size=28)
    assert block.width() <= 1200 and block.height <= 300
    tiny = fit_text(LONG, main, cards.fallback_choices(), (400, 120), max_size=60, min_size=30)
    assert tiny.width() <= 400 and tiny.height <= 120 and tiny.lines[-1].endswith("…")


@pytest.mark.slow
def test_text_is_drawn_inside_the_image(tmp_path: Path) -> None:
    # Draw the same long card twice with different text colours; the pixels that differ are
    # the text, and their bounding box lies inside the image with a margin.
    base = load_style("minimal")
    other = base.model_copy(update={"palette": base.palette.model_copy(update={"text": "#ff0000"})})
    maker = CardKeyframes()
    a = maker.render(shot=shot(), sentence_text=LONG, section_title="", style=base)
    b = maker.render(shot=shot(), sentence_text=LONG, section_title="", style=other)
    diff = np.any(np.asarray(a) != np.asarray(b), axis=-1)
    ys, xs = np.nonzero(diff)
    assert xs.size > 1000
    assert xs.min() >= 20 and ys.min() >= 20 and xs.max() <= 1900 and ys.max() <= 1060


@pytest.mark.slow
@pytest.mark.parametrize(
    "phrase",
    [
        "🌋 Emoji eruption 🔥🔥",
        "火山は地球の内部から噴き出す",
        "שלום עולם — مرحبا بالعالم",
        "Ünïcödé ½ ∑ ✓",
    ],
)
def test_any_unicode_renders(tmp_path: Path, phrase: str) -> None:
    render(CardKeyframes(), tmp_path / "u.png", shot=shot(key_phrase=phrase), style="minimal")
    render(CardKeyframes(system_fonts=False), tmp_path / "v.png", shot=shot(key_phrase=phrase))


def test_works_without_system_fonts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cards, "_font_dirs", lambda: [tmp_path / "no-fonts-here"])
    cards.system_fonts.cache_clear()
    try:
        assert cards.resolve_family("serif", "bold") == cards.FontChoice(None, False)
        img = render(
            CardKeyframes(),
            tmp_path / "plain.png",
            sentence_text=LONG,
            shot=shot(),
            style="cinematic",
            characters=[CharacterRef(name="Ada")],
        )
        assert np.asarray(img).std() > 5
    finally:
        cards.system_fonts.cache_clear()


def test_characters_no_font_draws_warn_once_naming_the_sentence(tmp_path: Path) -> None:
    said: list[str] = []
    sentence = "The volcano 火山 erupts 🌋 again 🌋."
    maker = CardKeyframes(system_fonts=False)  # Pillow's bundled font: no CJK, no emoji
    res = maker.make_keyframe(
        KeyframeJob(
            shot=shot(),
            sentence_text=sentence,
            section_title="Fire below",
            style="documentary",
            characters=[],
            out_path=tmp_path / "k.png",
            progress=said.append,
        ),
    )
    warnings = [m for m in said if m.startswith("warning:")]
    assert len(warnings) == 1, said
    assert repr(sentence) in warnings[0] and "U+706B" in warnings[0] and "U+1F30B" in warnings[0]
    assert warnings[0].count("U+1F30B") == 1 and "fonts-noto-cjk" in warnings[0]
    assert res.extra["missing_glyphs"] == "火山🌋"
    said.clear()
    plain = maker.make_keyframe(
        KeyframeJob(
            shot=shot(),
            sentence_text="Lava flows.",
            section_title="Fire below",
            style="documentary",
            characters=[],
            out_path=tmp_path / "p.png",
            progress=said.append,
        ),
    )
    assert not [m for m in said if m.startswith("warning:")] and "missing_glyphs" not in plain.extra


@pytest.mark.slow
def test_characters_cutout_and_name_card(tmp_path: Path) -> None:
    ref = tmp_path / "ada.png"
    Image.new("RGB", (300, 500), (0, 255, 0)).save(ref)  # pure green: easy to find
    people = [CharacterRef(name="Ada Lovelace", reference_image=ref), CharacterRef(name="Bob")]
    s = shot(key_phrase="Two people", characters=("Ada Lovelace", "Bob", "Carol"))
    for style in ("documentary", "minimal", "watercolor", "anime"):
        img = np.asarray(
            render(
                CardKeyframes(), tmp_path / f"{style}.png", shot=s, characters=people, style=style
            )
        )
        green = np.all(img == (0, 255, 0), axis=-1)
        ys, xs = np.nonzero(green)
        assert xs.size > 2000, style
        # A circle: the green area's corners (of its bounding box) are not green.
        assert not green[ys.min(), xs.min()] and not green[ys.max(), xs.max()]
        fill = xs.size / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
        assert 0.7 < fill < 0.85  # pi/4 for a circle
    without = np.asarray(render(CardKeyframes(), tmp_path / "none.png", shot=s, characters=[]))
    assert not np.any(np.all(without == (0, 255, 0), axis=-1))


@pytest.mark.slow
def test_deterministic_bytes(tmp_path: Path) -> None:
    kw = {
        "shot": shot(key_phrase="Same in, same out", characters=("Bob",), seed=42),
        "style": "anime",
    }
    render(CardKeyframes(), tmp_path / "a.png", **kw)
    render(CardKeyframes(), tmp_path / "b.png", **kw)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    render(CardKeyframes(), tmp_path / "c.png", **{**kw, "shot": shot(key_phrase="Other")})
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    assert CardKeyframes().version() == CardKeyframes().version()


def test_fallback_font_covers_missing_glyphs() -> None:
    main = cards.resolve_family("sans", "regular")
    stack = FontStack(main, cards.fallback_choices(), 40)
    assert stack.runs("abc") == [("abc", 0)]
    if main.path is not None:  # the bundled Pillow font lacks Greek; DejaVu has it
        bundled = FontStack(cards.FontChoice(None, False), [main], 40)
        assert [i for _, i in bundled.runs("a αβγ")] == [0, 1]


def test_thumbnail_markdown(tmp_path: Path) -> None:
    render(CardKeyframes(), tmp_path / "k.png")
    md = thumbnail_markdown(tmp_path / "k.png", width=320)
    assert md.startswith("![k.png](data:image/png;base64,") and md.endswith(")")
    data = base64.b64decode(md.split("base64,", 1)[1][:-1])
    thumb = Image.open(io.BytesIO(data))
    assert thumb.size == (320, 180)

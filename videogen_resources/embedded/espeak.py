"""eSpeak NG speech through ctypes: the library and data of the ``espeakng-loader`` wheel.

A fast, robotic, always-available fallback narrator. The library is loaded in synchronous mode;
`espeak_Synth` calls back with 16-bit samples, which are collected, loudness-normalized and
written atomically as a WAV.

eSpeak NG keeps synthesis state in globals that no call resets (the voice's flutter and
wave-generator phase), so the same sentence came out a few samples different after every other
one. Each sentence is therefore spoken by a freshly loaded library, unloaded afterwards (a few
milliseconds): the same text, voice and settings give the same samples on every call.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel

from videogen_resources.base import NarratorResource, SpeechJob, SpeechResult
from videogen_resources.errors import ServiceError

if TYPE_CHECKING:
    import numpy as np

ENGINE = "espeak-ng"

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class VoiceInfo(BaseModel):
    """An eSpeak NG voice."""

    name: str
    identifier: str
    language: str
    gender: str


class _Engine:
    """The process-wide eSpeak NG instance (its C state is global: one caller at a time)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ServiceError("espeak", "the espeakng-loader package is not installed") from exc
        self.library_path = espeakng_loader.get_library_path()
        self.data_path = espeakng_loader.get_data_path().encode()
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        # Keep a reference to the callback for as long as a library may call it.
        self._callback = _SYNTH_CALLBACK(self._on_samples)
        with self.lock:
            lib, self.sample_rate = self._open()
            self._close(lib)

    def _open(self) -> tuple[ctypes.CDLL, int]:
        """Load and initialize a fresh copy of the library's state (hold ``lock``)."""
        try:
            lib = ctypes.CDLL(self.library_path, mode=os.RTLD_LOCAL)
        except OSError as exc:
            raise ServiceError("espeak", f"cannot load libespeak-ng: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path, _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            self._close(lib, terminate=False)
            raise ServiceError("espeak", f"espeak_Initialize failed ({rate})")
        lib.espeak_SetSynthCallback(self._callback)
        return lib, int(rate)

    @staticmethod
    def _close(lib: ctypes.CDLL, *, terminate: bool = True) -> None:
        """Terminate and unload the library, so the next `_open` starts from clean globals."""
        import _ctypes

        if terminate:
            lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    def _on_samples(self, wav: ctypes.Array[ctypes.c_short], count: int, _events: int) -> int:
        import numpy as np  # (loaded by `synth` already: this callback runs inside it)

        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.int16))
        return 0  # 0 = continue

    def synth(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        # lazy: numpy loads with the first narration, not with each command building resources
        import numpy as np

        with self.lock:
            lib, _rate = self._open()
            try:
                if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    raise ServiceError(
                        "espeak", f"unknown eSpeak NG voice {voice!r} (see list_voices())"
                    )
                lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
                lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
                lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
                self._chunks = []
                buf = text.encode("utf-8") + b"\0"
                status = lib.espeak_Synth(
                    buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
                )
                lib.espeak_Synchronize()
                chunks, self._chunks = self._chunks, []
            finally:
                self._close(lib)
        if status != _EE_OK:
            raise ServiceError("espeak", f"espeak_Synth failed with status {status}")
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0).astype(np.float32)

    def has_voice(self, voice: str) -> bool:
        """Whether eSpeak NG accepts ``voice`` (a name such as ``en-us``, or with a ``+f3``
        variant)."""
        with self.lock:
            lib, _rate = self._open()
            try:
                return bool(lib.espeak_SetVoiceByName(voice.encode("utf-8")) == _EE_OK)
            finally:
                self._close(lib)

    def voices(self) -> list[VoiceInfo]:
        out: list[VoiceInfo] = []
        with self.lock:
            lib, _rate = self._open()
            array = lib.espeak_ListVoices(None)
            i = 0
            while array and array[i]:
                v = array[i].contents
                languages = ctypes.string_at(v.languages + 1) if v.languages else b""
                out.append(
                    VoiceInfo(
                        name=(v.name or b"").decode("utf-8", "replace"),
                        identifier=(v.identifier or b"").decode("utf-8", "replace"),
                        language=languages.decode("utf-8", "replace"),
                        gender={1: "male", 2: "female"}.get(v.gender, "unknown"),
                    )
                )
                i += 1
            self._close(lib)
        return out


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> _Engine:
    """The process-wide eSpeak NG engine (initialized on first use)."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = _Engine()
    return _ENGINE


def list_voices() -> list[VoiceInfo]:
    """All voices eSpeak NG knows (names such as ``en-us``; add ``+f3``-style variants)."""
    return engine().voices()


class EspeakNarrator(NarratorResource):
    """Embedded narrator with eSpeak NG: instant and robotic; any language eSpeak speaks."""

    voice: str = "en-us"  # an eSpeak voice name, optionally with a variant: "en-us+f3"
    rate_wpm: int = 165
    pitch: int = 50  # 0..99
    loudness_target_lufs: float = -16.0
    true_peak_db: float = -1.0

    def version(self) -> str:
        """Engine, voice and settings, hashed to a short string."""
        key = f"{self.voice}|{self.rate_wpm}|{self.pitch}|{self.loudness_target_lufs}"
        key += f"|{self.true_peak_db}"
        return f"espeak-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def speak(self, job: SpeechJob) -> SpeechResult:
        """Speak the job's text into its ``out_path`` (16-bit WAV, loudness-normalized,
        atomic)."""
        text, out_path, progress = job.text, job.out_path, job.progress
        name = job.voice or self.voice
        if not text.strip():
            raise ServiceError("espeak", "cannot speak an empty text")
        started = time.perf_counter()
        eng = engine()
        raw = eng.synth(text, name, self.rate_wpm, self.pitch)
        if raw.size == 0:
            raise ServiceError("espeak", f"no speech could be made from the text {text[:60]!r}")
        rate = eng.sample_rate
        # lazy: numpy loads with the first narration, not with each command building resources
        from videogen_resources.embedded.speech import finish_speech

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

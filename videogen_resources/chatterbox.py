"""Narration from a Chatterbox TTS server over HTTP.

Two server flavours are in use and both are spoken here, chosen by ``api``:

- ``"openai"``: travisvn/chatterbox-tts-api (port 4123). ``POST /v1/audio/speech`` with
  ``{input, voice, exaggeration, cfg_weight, temperature}`` (``input`` at most 3000 characters)
  answers a WAV; ``GET /health``; the voice library at ``GET /voices``.
- ``"devnen"``: devnen/Chatterbox-TTS-Server (port 8004). Its OpenAI-style endpoint ignores the
  expressive parameters, so the native ``POST /tts`` is used with ``{text, voice_mode,
  predefined_voice_id | reference_audio_filename, exaggeration, cfg_weight, temperature, seed,
  speed_factor, output_format, split_text, chunk_size}``; voices at ``GET /get_predefined_voices``;
  model state at ``GET /api/model-info``.

Long text is split at sentence, then clause, then word boundaries so that every request stays
under the server's limit; the WAVs that come back are decoded and joined by the studio's one
audio module (`videogen_resources.audio`: pieces at another rate are resampled with its
polyphase filter) and go through the audio path every narrator shares
(`videogen_resources.embedded.speech.finish_speech`): loudness-normalized with a -1 dBTP
true-peak limiter, written atomically as 16-bit mono PCM at the server's sample rate, and
measured (loudness, true peak) as written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from videogen_resources import audio
from videogen_resources.base import NarratorResource, SpeechJob, SpeechResult
from videogen_resources.embedded.speech import finish_speech
from videogen_resources.errors import ServiceError
from videogen_resources.http import RETRY_STATUSES, HttpPolicy, HttpService, server_message

log = logging.getLogger(__name__)

SERVICE = "chatterbox"
OPENAI_MAX_INPUT_CHARS = 3000  # travisvn/chatterbox-tts-api rejects longer ``input``
RETRY_STATUSES_TTS = RETRY_STATUSES | {500}  # a TTS server's 500 is mostly a passing CUDA error
_CLONE_PREFIX = "clone:"


class ChatterboxVoice(BaseModel):
    """One voice a Chatterbox server offers."""

    id: str  # what goes into the ``voice`` setting
    name: str
    language: str | None = None


class ChatterboxHealth(BaseModel):
    """What a Chatterbox server says about itself."""

    ok: bool
    status: str
    model_loaded: bool | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Text splitting
# --------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+|\s+(?=[—–]\s)")


def split_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` characters.

    Sentences are kept whole where they fit; a sentence that is too long is cut at clause marks
    (``, ; : —``), then between words, and only a single word longer than the limit is cut
    inside. Neighbouring short sentences are packed together so that few requests are made.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    text = " ".join(text.split())
    if not text:
        return []
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if sentence:
            pieces.extend(_split_long(sentence.strip(), max_chars))
    return _pack(pieces, max_chars)


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    clauses = [c.strip() for c in _CLAUSE_END.split(sentence) if c.strip()]
    if len(clauses) > 1:
        out: list[str] = []
        for clause in clauses:
            out.extend(_split_long(clause, max_chars))
        return _pack(out, max_chars)
    words = sentence.split(" ")
    if len(words) > 1:
        out = []
        for word in words:
            out.extend(_split_long(word, max_chars) if len(word) > max_chars else [word])
        return _pack(out, max_chars)
    return [sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars)]


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= max_chars:
            packed[-1] = f"{packed[-1]} {piece}"
        else:
            packed.append(piece)
    return packed


# --------------------------------------------------------------------------------------------
# WAV in and out
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The resource
# --------------------------------------------------------------------------------------------


def _advice(status: int) -> str | None:
    return {
        400: "the server rejected the request",
        404: "not found (is the voice one of list_voices()? is `api` right?)",
        422: "the server rejected the parameters",
    }.get(status)


class ChatterboxNarrator(NarratorResource):
    """Speaks narration through a Chatterbox TTS server (travisvn API or devnen server)."""

    base_url: str = Field(
        default="http://127.0.0.1:4123",
        description="Chatterbox server root: http://127.0.0.1:4123 (travisvn), :8004 (devnen).",
    )
    api: Literal["openai", "devnen"] = Field(
        default="openai",
        description="'openai' for travisvn/chatterbox-tts-api (POST /v1/audio/speech); "
        "'devnen' for devnen/Chatterbox-TTS-Server (POST /tts).",
    )
    voice: str | None = Field(
        default=None,
        description="Default voice: a voice-library name (openai) or a predefined voice file "
        "such as 'Emily.wav' (devnen; prefix 'clone:' for a reference audio file). "
        "None = the server's default voice (openai only).",
    )
    voice_mode: Literal["predefined", "clone"] = Field(
        default="predefined",
        description="devnen only: how `voice` is read, a predefined voice or a cloning reference.",
    )
    exaggeration: float = Field(default=0.5, description="Emotion intensity (0.5 is neutral).")
    cfg_weight: float = Field(default=0.5, description="Classifier-free guidance / pacing weight.")
    temperature: float = Field(default=0.8, description="Sampling temperature.")
    seed: int = Field(default=0, description="devnen only: generation seed (0 = random).")
    speed_factor: float = Field(default=1.0, description="devnen only: post-generation speed.")
    devnen_chunk_size: int = Field(
        default=120, description="devnen only: the server's own chunk size for split_text (50-500)."
    )
    max_chars_per_request: int = Field(
        default=OPENAI_MAX_INPUT_CHARS,
        description="Longer text is split at sentence/clause boundaries into requests this long.",
    )
    chunk_gap_ms: int = Field(default=120, description="Silence put between joined pieces.")
    timeout_s: float = Field(default=30.0, description="Read timeout of one synthesis request.")
    connect_timeout_s: float = Field(default=5.0, description="Connect timeout.")
    max_retries: int = Field(
        default=3, description="Retries after 429/5xx answers, timeouts and failed connections."
    )
    backoff_s: float = Field(default=1.0, description="First retry delay; doubles each retry.")
    max_backoff_s: float = Field(default=15.0, description="Longest single retry delay.")
    loudness_target_lufs: float | None = Field(
        default=-16.0,
        description="Integrated loudness the narration is normalized to; None = the server's.",
    )
    true_peak_db: float = Field(
        default=-1.0, description="True-peak ceiling (dBTP) of the written narration."
    )

    _http: HttpService | None = PrivateAttr(default=None)

    # -- lifecycle -----------------------------------------------------------------------------

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (it is made again on the next call)."""
        if self._http is not None:
            self._http.close()

    @property
    def http(self) -> HttpService:
        """The server's HTTP client, kept for the resource's lifetime."""
        if self._http is None:
            self._http = HttpService(
                SERVICE,
                base_url=self.base_url,
                policy=HttpPolicy(
                    connect_s=self.connect_timeout_s,
                    read_s=self.timeout_s,
                    max_retries=self.max_retries,
                    backoff_s=self.backoff_s,
                    max_backoff_s=self.max_backoff_s,
                    retry_statuses=RETRY_STATUSES_TTS,
                ),
                headers={"User-Agent": "videogen-studio"},
                advice=_advice,
            )
        return self._http

    # -- settings ------------------------------------------------------------------------------

    def version(self) -> str:
        settings: dict[str, Any] = {
            "engine": "chatterbox",
            "api": self.api,
            "voice": self.voice,
            "exaggeration": self.exaggeration,
            "cfg_weight": self.cfg_weight,
            "temperature": self.temperature,
            "max_chars": self._max_chars(),
            "gap_ms": self.chunk_gap_ms,
            "loudness": self.loudness_target_lufs,
            "true_peak_db": self.true_peak_db,
            "audio_path": 2,  # the shared normalize-write-measure path (true-peak limiter)
        }
        if self.api == "devnen":
            settings.update(
                voice_mode=self.voice_mode,
                seed=self.seed,
                speed_factor=self.speed_factor,
                chunk_size=self.devnen_chunk_size,
            )
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        return f"chatterbox-{digest[:12]}"

    def _max_chars(self) -> int:
        limit = max(1, self.max_chars_per_request)
        return min(limit, OPENAI_MAX_INPUT_CHARS) if self.api == "openai" else limit

    # -- remote operations ---------------------------------------------------------------------

    def health(self) -> ChatterboxHealth:
        """Ask the server whether it is up and its model loaded (no retries)."""
        path = "/health" if self.api == "openai" else "/api/model-info"
        try:
            response = self.http.request("GET", path, retries=0, check=False)
        except ServiceError as exc:
            cause = exc.__cause__ or exc
            return ChatterboxHealth(ok=False, status=f"unreachable: {type(cause).__name__}")
        if response.status_code != 200:
            return ChatterboxHealth(
                ok=False, status=f"HTTP {response.status_code}: {server_message(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            return ChatterboxHealth(ok=False, status="health answer is not JSON")
        body = body if isinstance(body, dict) else {"body": body}
        if self.api == "openai":
            loaded = body.get("model_loaded")
            status = str(body.get("status", "ok"))
            ok = status.lower() in {"ready", "healthy", "ok", "initializing"}
        else:
            loaded = body.get("loaded")
            status = "ready" if loaded else "model not loaded"
            ok = bool(loaded)
        return ChatterboxHealth(
            ok=ok,
            status=status,
            model_loaded=loaded if isinstance(loaded, bool) else None,
            detail=body,
        )

    def voices(self) -> list[ChatterboxVoice]:
        """The voices the server offers (voice library, or devnen's predefined voices)."""
        path = "/voices" if self.api == "openai" else "/get_predefined_voices"
        response = self.http.request("GET", path)
        try:
            body = response.json()
        except ValueError as exc:
            raise ServiceError(
                SERVICE, f"GET {path} did not answer JSON", status=response.status_code
            ) from exc
        items = body.get("voices", []) if isinstance(body, dict) else body
        out: list[ChatterboxVoice] = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                out.append(ChatterboxVoice(id=item, name=item))
            elif isinstance(item, dict):
                if self.api == "openai":
                    name = str(item.get("name") or item.get("filename") or "")
                    out.append(ChatterboxVoice(id=name, name=name, language=item.get("language")))
                else:
                    filename = str(item.get("filename") or "")
                    out.append(
                        ChatterboxVoice(id=filename, name=str(item.get("display_name") or filename))
                    )
        return [v for v in out if v.id]

    def list_voices(self) -> list[str]:
        """The ids usable as ``voice``."""
        return [v.id for v in self.voices()]

    def synthesize_chunk(self, *, text: str, voice: str | None = None) -> bytes:
        """Synthesize one piece of text (within the server's limit) and return the WAV bytes."""
        voice = voice if voice is not None else self.voice
        if self.api == "openai":
            if len(text) > OPENAI_MAX_INPUT_CHARS:
                raise ValueError(
                    f"input is {len(text)} chars; the limit is {OPENAI_MAX_INPUT_CHARS}"
                )
            path = "/v1/audio/speech"
            payload: dict[str, Any] = {"input": text}
            if voice:
                payload["voice"] = voice
            payload.update(
                exaggeration=self.exaggeration,
                cfg_weight=self.cfg_weight,
                temperature=self.temperature,
            )
        else:
            path = "/tts"
            payload = self._devnen_payload(text, voice)
        response = self.http.request("POST", path, safe=True, json=payload)
        data = response.content
        if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
            content_type = response.headers.get("content-type", "no content-type")
            start = data[:60].decode("utf-8", errors="replace")
            raise ServiceError(
                SERVICE,
                f"POST {path} answered {content_type} ({len(data)} bytes) instead of a WAV: "
                f"{start!r}",
                status=response.status_code,
            )
        return data

    def _devnen_payload(self, text: str, voice: str | None) -> dict[str, Any]:
        mode = self.voice_mode
        if voice and voice.startswith(_CLONE_PREFIX):
            mode, voice = "clone", voice[len(_CLONE_PREFIX) :]
        if not voice:
            raise ServiceError(
                SERVICE,
                "the devnen Chatterbox server needs a voice: set `voice` to one of its predefined "
                "voices (see list_voices()), or 'clone:<reference file>'",
            )
        payload: dict[str, Any] = {"text": text, "voice_mode": mode}
        if mode == "predefined":
            payload["predefined_voice_id"] = voice
        else:
            payload["reference_audio_filename"] = voice
        payload.update(
            exaggeration=self.exaggeration,
            cfg_weight=self.cfg_weight,
            temperature=self.temperature,
            seed=self.seed,
            speed_factor=self.speed_factor,
            output_format="wav",
            split_text=True,
            chunk_size=self.devnen_chunk_size,
        )
        return payload

    # -- the narrator contract -----------------------------------------------------------------

    def speak(self, job: SpeechJob) -> SpeechResult:
        out_path, progress = job.out_path, job.progress
        pieces = split_text(job.text, self._max_chars())
        if not pieces:
            raise ValueError("nothing to say: the text is empty")
        voice = job.voice if job.voice is not None else self.voice
        started = time.perf_counter()
        parts: list[np.ndarray] = []
        rate: int | None = None
        for i, piece in enumerate(pieces, 1):
            if progress is not None and len(pieces) > 1:
                progress(f"chatterbox: piece {i}/{len(pieces)} ({len(piece)} chars)")
            data = self.synthesize_chunk(text=piece, voice=voice)
            try:
                samples, piece_rate = audio.decode_wav(data)
            except ValueError as exc:
                raise ServiceError(SERVICE, f"the server's WAV could not be read: {exc}") from exc
            if rate is None:
                rate = piece_rate
            if parts and self.chunk_gap_ms > 0:
                parts.append(np.zeros(int(rate * self.chunk_gap_ms / 1000), dtype=np.float32))
            parts.append(audio.resample(samples, piece_rate, rate))
        assert rate is not None
        joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        result = finish_speech(
            joined,
            rate,
            Path(out_path),
            target_lufs=self.loudness_target_lufs,
            true_peak_db=self.true_peak_db,
            voice=voice or "default",
            engine=f"chatterbox-{self.api}",
            version=self.version(),
            started=started,
            progress=None,
            extra={
                "requests": len(pieces),
                "server": self.base_url,
                "exaggeration": self.exaggeration,
                "cfg_weight": self.cfg_weight,
                "temperature": self.temperature,
            },
        )
        if progress is not None:
            progress(
                f"chatterbox: {result.duration_ms} ms of narration in {len(pieces)} request(s)"
            )
        return result

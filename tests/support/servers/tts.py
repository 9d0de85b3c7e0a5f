"""A Chatterbox TTS server for tests: both HTTP flavours, real WAV audio, fault knobs.

``ChatterboxServer(flavour="openai")`` speaks travisvn/chatterbox-tts-api:
``POST /v1/audio/speech`` (also ``/audio/speech``) with ``{input, voice, exaggeration, cfg_weight,
temperature, ...}``, ``input`` 1..3000 characters, answering ``audio/wav``; ``GET /health``;
``GET /voices`` (``{"voices": [...], "count": n}``). Errors look like FastAPI's:
``{"detail": {"error": {"message", "type"}}}`` for 400/500 and
``{"detail": [{"type", "loc", "msg", "input"}]}`` for 422 request validation.

``ChatterboxServer(flavour="devnen")`` speaks devnen/Chatterbox-TTS-Server: ``POST /tts`` with
``{text, voice_mode, predefined_voice_id | reference_audio_filename, exaggeration, cfg_weight,
temperature, seed, speed_factor, output_format, split_text, chunk_size}``;
``GET /get_predefined_voices``; ``GET /api/model-info``; errors ``{"detail": "..."}``. Its
``POST /v1/audio/speech`` exists too (and, like the real one, ignores expressive parameters).

Audio is 24 kHz mono 16-bit PCM, a voiced tone plus noise whose length is proportional to the
text. Every request is recorded; fault knobs: queued one-shot faults, a random 5xx rate, a fixed
delay, and refusing connections for a while. Audio knobs: ``sample_rates`` (the rates of the next
answers, one per answer, like a server whose model changed between requests) and ``peaky``
(short bursts whose true peak lies between the samples, 3 dB over the sample peak).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import threading
import types
import wave
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
from aiohttp import web

SAMPLE_RATE = 24_000
SECONDS_PER_CHAR = 0.06
OPENAI_MAX_INPUT = 3000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Speech = tuple[str, float]
"""What a speech request asks for: the text to say, and the speed."""
SpeechRules = Callable[[dict[str, Any], str], web.StreamResponse | Speech]
"""An API's own rules for a speech request's JSON body and text: its refusal (or an answer
other than a WAV), or the speech to make."""


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Fault:
    """A one-shot misbehaviour applied to the next matching request."""

    kind: str  # an HTTP status ("500"), or a named behaviour of the server
    path: str | None = None  # only requests to this path; None = any request
    delay_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class ServerThread:
    """An aiohttp application on 127.0.0.1 (a free port) run in a background thread."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self.error_rate = 0.0  # fraction of requests answered with 500
        self.delay_s = 0.0  # added before every answer
        self.rng = random.Random(1234)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- to be provided by the concrete server --
    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def fault_response(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """The answer for ``fault``; None means answer normally (after any delay)."""
        raise NotImplementedError

    # -- lifecycle --
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    async def _start(self) -> None:
        app = self.build_app()
        app.middlewares.append(self._middleware)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    def _call(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs --
    def queue(self, *faults: str | Fault) -> None:
        """Misbehave on the next requests, one fault per request, in order."""
        for fault in faults:
            self.faults.append(fault if isinstance(fault, Fault) else Fault(kind=fault))

    def refuse_connections(self, seconds: float) -> None:
        """Stop listening now (connections are refused) and listen again after ``seconds``."""
        assert self._loop is not None and self._site is not None
        self._call(self._site.stop())
        self._loop.call_soon_threadsafe(
            lambda: self._loop.call_later(seconds, self._relisten)  # type: ignore[union-attr]
        )

    def _relisten(self) -> None:
        assert self._loop is not None
        self._loop.create_task(self._listen())

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- plumbing --
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        fault = None
        if self.faults and self.faults[0].path in (None, request.path):
            fault = self.faults.popleft()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if fault is not None:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            answer = await self.fault_response(fault, request)
            if answer is not None:
                return answer
        elif self.error_rate and self.rng.random() < self.error_rate:
            return await self.random_error(request)
        return await handler(request)

    async def random_error(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"detail": "Internal Server Error"}, status=500)


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def speech_like_wav(
    text: str, *, speed: float = 1.0, sample_rate: int = SAMPLE_RATE, peaky: bool = False
) -> bytes:
    """A deterministic voiced tone plus noise, as long as ``text`` would take to say.

    ``peaky`` adds a 10 ms burst every half second of a tone at a quarter of the sample rate,
    sampled 45 degrees off its crests: its true peak is 3 dB above its highest sample.
    """
    seconds = max(0.3, SECONDS_PER_CHAR * len(text)) / max(0.25, speed)
    n = int(seconds * sample_rate)
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    pitch = 140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    signal = 0.2 * voiced * syllables + 0.02 * rng.standard_normal(n)
    if peaky:
        burst = int(0.01 * sample_rate)
        for start in range(0, n - burst, sample_rate // 2):
            k = np.arange(burst)
            signal[start : start + burst] = 0.6 * np.sin(np.pi / 2 * k + np.pi / 4)
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buf.getvalue()


def _wav_response(data: bytes) -> web.Response:
    return web.Response(
        body=data,
        content_type="audio/wav",
        headers={"Content-Disposition": 'attachment; filename="speech.wav"'},
    )


def _validation_error(loc: list[str | int], msg: str, kind: str, value: Any) -> web.Response:
    item = {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}
    return web.json_response({"detail": [item]}, status=422)


def _out_of_range(
    name: str, value: Any, lo: float, hi: float, kinds: type | types.UnionType
) -> web.Response | None:
    """FastAPI's 422 for a number field outside ``lo..hi`` (None: absent or in range)."""
    if value is None or (isinstance(value, kinds) and lo <= value <= hi):
        return None
    return _validation_error(
        [name], f"Input should be between {lo} and {hi}", "less_than_equal", value
    )


def _not_one_of(name: str, value: Any, allowed: tuple[str, ...]) -> web.Response | None:
    """FastAPI's 422 for a literal field that is none of ``allowed`` (None: it is one)."""
    if value in allowed:
        return None
    quoted = [f"'{a}'" for a in allowed]
    message = f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"
    return _validation_error([name], message, "literal_error", value)


# --------------------------------------------------------------------------------------------
# The Chatterbox server
# --------------------------------------------------------------------------------------------


class ChatterboxServer(ServerThread):
    """Fake Chatterbox TTS server speaking the travisvn ('openai') or devnen protocol."""

    def __init__(
        self,
        flavour: Literal["openai", "devnen"] = "openai",
        *,
        voices: tuple[str, ...] | None = None,
        reference_files: tuple[str, ...] = ("my_voice.wav",),
    ) -> None:
        super().__init__()
        self.flavour = flavour
        if voices is None:
            voices = ("narrator", "ada") if flavour == "openai" else ("Emily.wav", "Gabriel.wav")
        self.voices = voices
        self.reference_files = reference_files
        self.model_loaded = True
        self.sample_rates: deque[int] = deque()  # rates of the next answers (else SAMPLE_RATE)
        self.peaky = False  # answers carry inter-sample peaks

    def _speech(self, text: str, speed: float = 1.0) -> web.Response:
        rate = self.sample_rates.popleft() if self.sample_rates else SAMPLE_RATE
        return _wav_response(speech_like_wav(text, speed=speed, sample_rate=rate, peaky=self.peaky))

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        if self.flavour == "openai":
            for path in ("/v1/audio/speech", "/audio/speech"):
                app.router.add_post(path, self._openai_speech)
            for path in ("/health", "/v1/health"):
                app.router.add_get(path, self._openai_health)
            for path in ("/voices", "/v1/voices"):
                app.router.add_get(path, self._openai_voices)
        else:
            app.router.add_post("/tts", self._devnen_tts)
            app.router.add_post("/v1/audio/speech", self._devnen_openai_speech)
            app.router.add_get("/get_predefined_voices", self._devnen_voices)
            app.router.add_get("/api/model-info", self._devnen_model_info)
        return app

    # -- faults --
    def _error(self, status: int, message: str) -> web.Response:
        if self.flavour == "openai":
            kind = "invalid_request_error" if status < 500 else "generation_error"
            body: dict[str, Any] = {"detail": {"error": {"message": message, "type": kind}}}
        else:
            body = {"detail": message}
        return web.json_response(body, status=status)

    async def fault_response(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "slow":
            return None
        if kind == "non_audio":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
            )
        if kind == "truncated_wav":
            return web.Response(body=b"RIFF\x00\x00", content_type="audio/wav")
        if kind == "422":
            return _validation_error(["input"], "Field required", "missing", {})
        if kind.isdigit():
            status = int(kind)
            message = fault.extra.get("message") or {
                400: "Input text too long. Maximum 3000 characters allowed.",
                404: "Voice not found.",
                500: "CUDA out of memory while generating audio",
                502: "Bad gateway",
                503: "TTS engine model is not currently loaded or available.",
            }.get(status, f"error {status}")
            return self._error(status, str(message))
        raise ValueError(f"unknown fault {kind!r}")

    async def random_error(self, request: web.Request) -> web.StreamResponse:
        return self._error(500, "random test failure")

    # -- both speech APIs --
    async def _speak(
        self, request: web.Request, text_field: str, rules: SpeechRules
    ) -> web.StreamResponse:
        """The core of both APIs' speech requests: a JSON object with its text in
        ``text_field`` (else FastAPI's 422), then the API's own ``rules``: its refusal (or an
        answer other than a WAV), or the text to say and the speed."""
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _validation_error([], "JSON decode error", "json_invalid", None)
        if not isinstance(body, dict):
            return _validation_error([], "Input should be a valid dictionary", "dict_type", body)
        text = body.get(text_field)
        if not isinstance(text, str):
            return _validation_error([text_field], "Field required", "missing", body)
        ruled = rules(body, text)
        if isinstance(ruled, web.StreamResponse):
            return ruled
        return self._speech(*ruled)

    # -- travisvn/chatterbox-tts-api --
    async def _openai_speech(self, request: web.Request) -> web.StreamResponse:
        return await self._speak(request, "input", self._openai_rules)

    def _openai_rules(self, body: dict[str, Any], text: str) -> web.StreamResponse | Speech:
        if len(text) > OPENAI_MAX_INPUT:
            return _validation_error(
                ["input"], "String should have at most 3000 characters", "string_too_long", text
            )
        if not text.strip():
            return _validation_error(
                ["input"], "Value error, Input text cannot be empty", "value_error", text
            )
        for name, lo, hi in (
            ("exaggeration", 0.25, 2.0),
            ("cfg_weight", 0.0, 1.0),
            ("temperature", 0.05, 5.0),
        ):
            refused = _out_of_range(name, body.get(name), lo, hi, int | float)
            if refused is not None:
                return refused
        return text.strip(), 1.0

    async def _openai_health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "status": "ready",
                "model_loaded": self.model_loaded,
                "device": "cpu",
                "config": {"max_chunk_length": 280, "max_total_length": OPENAI_MAX_INPUT},
            }
        )

    async def _openai_voices(self, request: web.Request) -> web.StreamResponse:
        voices = [
            {"name": v, "filename": f"{v}.wav", "language": "en", "aliases": [], "exists": True}
            for v in self.voices
        ]
        return web.json_response({"voices": voices, "count": len(voices)})

    # -- devnen/Chatterbox-TTS-Server --
    async def _devnen_tts(self, request: web.Request) -> web.StreamResponse:
        return await self._speak(request, "text", self._devnen_rules)

    def _devnen_rules(self, body: dict[str, Any], text: str) -> web.StreamResponse | Speech:
        if len(text) < 1:
            return _validation_error(
                ["text"], "String should have at least 1 character", "string_too_short", text
            )
        mode = body.get("voice_mode", "predefined")
        fmt = body.get("output_format", "wav")
        refused = (
            _not_one_of("voice_mode", mode, ("predefined", "clone"))
            or _not_one_of("output_format", fmt, ("wav", "opus", "mp3"))
            or _out_of_range("chunk_size", body.get("chunk_size", 120), 50, 500, int)
        )
        if refused is not None:
            return refused
        if mode == "predefined":
            voice = body.get("predefined_voice_id")
            if not voice:
                message = "Missing 'predefined_voice_id' for 'predefined' voice mode."
                return self._error(400, message)
            if voice not in self.voices:
                return self._error(404, f"Predefined voice file '{voice}' not found.")
        else:
            ref = body.get("reference_audio_filename")
            if not ref:
                message = "Missing 'reference_audio_filename' for 'clone' voice mode."
                return self._error(400, message)
            if ref not in self.reference_files:
                return self._error(404, f"Reference audio file '{ref}' not found.")
        if fmt != "wav":
            return web.Response(body=b"OggS\x00fake-opus", content_type=f"audio/{fmt}")
        return text, float(body.get("speed_factor") or 1.0)

    async def _devnen_openai_speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        voice = body.get("voice")
        if voice not in self.voices:
            return self._error(404, f"Voice file '{voice}' not found.")
        return self._speech(str(body.get("input", "")))

    async def _devnen_voices(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            [{"display_name": v.rsplit(".", 1)[0].title(), "filename": v} for v in self.voices]
        )

    async def _devnen_model_info(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "loaded": self.model_loaded,
                "type": "original",
                "class_name": "ChatterboxTTS",
                "device": "cpu",
                "sample_rate": SAMPLE_RATE,
            }
        )

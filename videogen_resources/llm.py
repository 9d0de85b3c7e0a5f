"""Scripts and shot prompts from an OpenAI-compatible chat-completions server.

DeepSeek by default (``https://api.deepseek.com``); any OpenAI-compatible base URL works, so a
local Ollama (``http://127.0.0.1:11434/v1``), llama.cpp or vLLM server can be used without a key.
The model id is configuration: DeepSeek's current ids are ``deepseek-flash`` and
``deepseek-v4-pro`` (``deepseek-chat``/``deepseek-reasoner`` were retired in July 2026).

Replies are requested in JSON mode (``response_format={"type": "json_object"}``) and validated
with pydantic. JSON mode needs the word "json" and an example in the prompt, and may return a
blank reply: that is retried, and so (once) is a reply that is not the promised JSON.
The API key is never logged, never put into metadata and is removed from every error message.
"""

from __future__ import annotations

import email.utils
import html.parser
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import dagster as dg
import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from videogen_domain.errors import InputError
from videogen_domain.models import CAMERA_MOVEMENTS, CameraMovement, Shot
from videogen_resources.errors import ServiceError

log = logging.getLogger(__name__)

SERVICE = "llm"
DEEPSEEK_BASE_URL = "https://api.deepseek.com"
WORDS_PER_MINUTE = 150  # spoken narration pace the word budget is computed from
SERVER_TOOLS = ("deepseek_web_search", "deepseek_read_url")
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_MASKED_KEY = re.compile(r"\*{3,}[A-Za-z0-9_-]{1,12}")

T = TypeVar("T", bound=BaseModel)


# --------------------------------------------------------------------------------------------
# Values in and out
# --------------------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class LLMUsage(BaseModel):
    """Token counts of one or more requests (for materialization metadata)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    requests: int = 0

    def plus(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
        )


class Source(BaseModel):
    """A text the creator gave for grounding: a local file or a web page."""

    ref: str  # the path or URL as given
    kind: Literal["file", "url"]
    title: str = ""
    text: str = ""
    chars: int = 0  # length of the full text before truncation
    truncated: bool = False


class CastMember(BaseModel):
    """A character the script may put on screen."""

    name: str
    description: str = ""


def _normalize_camera(value: Any) -> Any:
    if not isinstance(value, str):
        return "static" if value is None else value
    key = re.sub(r"[\s_]+", "-", value.strip().lower())
    aliases = {
        "none": "static",
        "still": "static",
        "zoom": "zoom-in",
        "pan": "pan-right",
        "tilt": "tilt-up",
        "dolly-in": "dolly",
        "dolly-out": "dolly",
        "push-in": "zoom-in",
    }
    key = aliases.get(key, key)
    return key if key in CAMERA_MOVEMENTS else "static"


def _clamp_motion(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.5
    if number != number:  # NaN
        return 0.5
    return min(1.0, max(0.0, number))


class _Visuals(BaseModel):
    """The visual fields a sentence and a shot share, leniently read from model output."""

    image_prompt: str = ""
    video_prompt: str = ""
    camera: CameraMovement = "static"
    motion: float = Field(default=0.5, ge=0.0, le=1.0)
    characters: list[str] = Field(default_factory=list)

    @field_validator("camera", mode="before")
    @classmethod
    def _camera(cls, value: Any) -> Any:
        return _normalize_camera(value)

    @field_validator("motion", mode="before")
    @classmethod
    def _motion(cls, value: Any) -> float:
        return _clamp_motion(value)

    @field_validator("characters", mode="before")
    @classmethod
    def _characters(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class SentenceDraft(_Visuals):
    """One narrated sentence with its visuals."""

    text: str = Field(min_length=1)


class SectionDraft(BaseModel):
    """A titled section of the script."""

    title: str
    sentences: list[SentenceDraft] = Field(min_length=1)


class ScriptDraft(BaseModel):
    """A whole script as written by the model, plus what was used to write it."""

    title: str
    sections: list[SectionDraft] = Field(min_length=1)
    sources: list[str] = Field(default_factory=list)  # refs/URLs of the sources used
    model: str = ""
    usage: LLMUsage = Field(default_factory=LLMUsage)

    @property
    def word_count(self) -> int:
        return sum(len(s.text.split()) for sec in self.sections for s in sec.sentences)


class ScriptBrief(BaseModel):
    """What the script is to be about."""

    title: str
    topic: str
    minutes: float = Field(gt=0, le=180)
    style: str = "documentary"
    cast: list[CastMember] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    grounding: bool = False  # let the server search the web / read URLs (DeepSeek tools)

    @property
    def target_words(self) -> int:
        return max(20, round(self.minutes * WORDS_PER_MINUTE))


class ShotRequest(BaseModel):
    """A sentence whose shot is wanted."""

    id: str
    text: str
    section: str = ""


class ShotDraft(_Visuals):
    """The model's shot for one sentence."""

    key_phrase: str = ""

    def to_shot(self, *, seed: int = 0, negative_prompt: str = "") -> Shot:
        return Shot(
            image_prompt=self.image_prompt,
            video_prompt=self.video_prompt,
            negative_prompt=negative_prompt,
            camera_movement=self.camera,
            motion_strength=self.motion,
            characters=tuple(self.characters),
            key_phrase=self.key_phrase,
            seed=seed,
            source="llm",
        )


class _ShotReplyItem(ShotDraft):
    model_config = ConfigDict(extra="ignore")
    id: str


class _ShotsReply(BaseModel):
    shots: list[_ShotReplyItem]


# --------------------------------------------------------------------------------------------
# script.md
# --------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _directive_value(text: str) -> str:
    return _one_line(text).replace("|", "/")


def render_script_markdown(draft: ScriptDraft) -> str:
    """Render ``draft`` in the studio's script.md format.

    ``# Title``, then per section a ``## Section`` heading followed by one sentence per line,
    each optionally followed by ``> key: value`` directive lines; a blank line between sections.
    """
    lines = [f"# {_one_line(draft.title)}", ""]
    for i, section in enumerate(draft.sections):
        if i:
            lines.append("")
        lines.append(f"## {_one_line(section.title)}")
        for sentence in section.sentences:
            text = _one_line(sentence.text).lstrip("#> ").strip()
            if not text:
                continue
            lines.append(text)
            if sentence.image_prompt.strip():
                lines.append(f"> image: {_directive_value(sentence.image_prompt)}")
            if sentence.video_prompt.strip():
                lines.append(f"> video: {_directive_value(sentence.video_prompt)}")
            lines.append(f"> camera: {sentence.camera} | motion: {round(sentence.motion, 2):g}")
            names = [_directive_value(n).replace(",", " ") for n in sentence.characters]
            names = [n for n in names if n]
            if names:
                lines.append(f"> characters: {', '.join(names)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


class _TextExtractor(html.parser.HTMLParser):
    """Crude readable-text extraction: drops script/style, keeps the title and block breaks."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "section",
            "article",
            "header",
            "footer",
            "blockquote",
            "pre",
            "table",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def html_to_text(markup: str) -> tuple[str, str]:
    """(title, readable text) of an HTML page."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return " ".join(parser.title.split()), parser.text()


def _decode(data: bytes, content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type, re.I)
    encoding = match.group(1) if match else "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------

_SCRIPT_EXAMPLE = {
    "title": "How Volcanoes Work",
    "sections": [
        {
            "title": "Fire Beneath Our Feet",
            "sentences": [
                {
                    "text": "Deep under the crust, rock melts into glowing magma.",
                    "image_prompt": "cross-section of the earth, glowing orange magma chamber "
                    "beneath a snowy volcano, dramatic lighting",
                    "video_prompt": "magma slowly churns and rises through cracks in the rock",
                    "camera": "zoom-in",
                    "motion": 0.6,
                    "characters": [],
                }
            ],
        }
    ],
}

_SHOTS_EXAMPLE = {
    "shots": [
        {
            "id": "s0001",
            "image_prompt": "wide shot of a snow-capped volcano at dawn, plume of ash, "
            "cinematic documentary photo",
            "video_prompt": "ash plume drifts slowly to the right, clouds move",
            "camera": "pan-right",
            "motion": 0.4,
            "characters": [],
            "key_phrase": "a sleeping giant",
        }
    ]
}

_CAMERA_RULE = "camera is one of: " + ", ".join(CAMERA_MOVEMENTS) + "; motion is 0.0 to 1.0"


def _script_messages(brief: ScriptBrief, source_budget_chars: int) -> list[ChatMessage]:
    words = brief.target_words
    sections = max(1, min(8, round(brief.minutes * 1.2)))
    system = (
        "You are a scriptwriter for narrated explainer videos. You write spoken narration: "
        "short, concrete sentences of 8 to 25 words, one idea each, easy to say aloud, no lists, "
        "no stage directions, no markdown. For every sentence you also describe the picture: "
        "image_prompt is a detailed prompt for a single still keyframe in the requested visual "
        "style; video_prompt says what moves in that picture over a few seconds; "
        f"{_CAMERA_RULE}; characters lists only names from the cast who are on screen. "
        "Reply with one json object and nothing else, shaped exactly like this example:\n"
        + json.dumps(_SCRIPT_EXAMPLE, ensure_ascii=False)
    )
    request = {
        "title": brief.title,
        "topic": brief.topic,
        "minutes": brief.minutes,
        "target_words": words,
        "sections": sections,
        "style": brief.style,
        "cast": [c.model_dump() for c in brief.cast],
    }
    user = [
        f"Write the narration script for a {brief.minutes:g}-minute video as json.",
        f"Aim for about {words} spoken words in total ({WORDS_PER_MINUTE} words per minute), "
        f"in about {sections} sections.",
        "Brief (json): " + json.dumps(request, ensure_ascii=False),
    ]
    if brief.sources:
        user.append(
            "Use these sources for facts; do not state facts that contradict them. "
            "Do not mention the sources in the narration."
        )
        budget = max(1000, source_budget_chars)
        per_source = max(500, budget // len(brief.sources))
        for n, src in enumerate(brief.sources, 1):
            text = src.text[:per_source]
            user.append(f"[Source {n}] {src.title or src.ref} ({src.ref})\n{text}")
    if brief.grounding:
        user.append("Check current facts on the web where it helps accuracy.")
    return [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content="\n\n".join(user)),
    ]


def _shots_messages(
    batch: Sequence[ShotRequest], style_prompt_prefix: str, cast: Sequence[CastMember]
) -> list[ChatMessage]:
    system = (
        "You are the director of photography of a narrated video. For each narrated sentence "
        "you design one shot: image_prompt is a detailed prompt for the still keyframe (start it "
        "with the style prefix given), video_prompt says what moves over a few seconds, "
        f"{_CAMERA_RULE}, characters lists only cast names visible in the shot, key_phrase is "
        "2 to 6 words from the sentence worth showing on screen. Keep a consistent look across "
        "shots of the same section. Reply with one json object and nothing else, with one entry "
        "in shots for every id given, shaped exactly like this example:\n"
        + json.dumps(_SHOTS_EXAMPLE, ensure_ascii=False)
    )
    payload = [s.model_dump() for s in batch]
    user = "\n\n".join(
        [
            f"Design shots for these {len(batch)} sentences and reply in json.",
            "Style prefix: " + (style_prompt_prefix or "(none)"),
            "Cast (json): " + json.dumps([c.model_dump() for c in cast], ensure_ascii=False),
            "Sentences (json): " + json.dumps(payload, ensure_ascii=False),
        ]
    )
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]


# --------------------------------------------------------------------------------------------
# The resource
# --------------------------------------------------------------------------------------------


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return json.dumps(body)[:500]


class ChatReply(BaseModel):
    """One chat-completions answer."""

    content: str
    finish_reason: str | None
    usage: LLMUsage
    citations: list[str]


class LLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat-completions server that writes scripts and shot prompts."""

    base_url: str = Field(
        default=DEEPSEEK_BASE_URL,
        description="Server root: https://api.deepseek.com, or e.g. http://127.0.0.1:11434/v1 "
        "for a local Ollama; requests go to <base_url>/chat/completions.",
    )
    model: str = Field(
        default="deepseek-flash",
        description="Model id: deepseek-flash or deepseek-v4-pro (DeepSeek), llama3.1 (Ollama)...",
    )
    api_key: str | None = Field(
        default=None,
        repr=False,
        description="Bearer key; bind dagster.EnvVar('DEEPSEEK_API_KEY'). None for local servers.",
    )
    temperature: float | None = Field(default=None, description="None = the server's default.")
    max_tokens: int | None = Field(default=8192, description="Longest reply, in tokens.")
    timeout_s: float = Field(default=60.0, description="Read timeout of one request.")
    connect_timeout_s: float = Field(default=10.0, description="Connect timeout.")
    max_retries: int = Field(default=4, description="Retries after 429/5xx and failed connections.")
    backoff_s: float = Field(default=1.0, description="First retry delay; doubles each retry.")
    max_backoff_s: float = Field(default=60.0, description="Longest single wait (Retry-After too).")
    blank_reply_retries: int = Field(default=2, description="Retries of a blank JSON-mode reply.")
    shots_batch_size: int = Field(default=40, description="Sentences per shot request.")
    source_max_bytes: int = Field(default=2_000_000, description="Most bytes read per source.")
    source_max_chars: int = Field(default=20_000, description="Most characters kept per source.")
    source_budget_chars: int = Field(
        default=24_000, description="Most source characters put into one script prompt."
    )

    _client: httpx.Client | None = PrivateAttr(default=None)
    _usage: LLMUsage = PrivateAttr(default_factory=LLMUsage)

    # -- lifecycle -----------------------------------------------------------------------------

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = self._make_client()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (it is made again on the next call)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _make_client(self) -> httpx.Client:
        headers = {"Accept": "application/json", "User-Agent": "videogen-studio"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.Client(
            base_url=self.base_url.rstrip("/"),
            timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            headers=headers,
        )

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _key(self) -> str | None:
        key: str | None = self.api_key
        if isinstance(key, dg.EnvVar):
            key = key.get_value()
        return key or None

    @property
    def is_configured(self) -> bool:
        """True when requests can succeed: a key is set, or the server is not DeepSeek's."""
        is_deepseek = "api.deepseek.com" in self.base_url
        return self._key() is not None or not is_deepseek

    @property
    def usage(self) -> LLMUsage:
        """Tokens used by this resource instance so far."""
        return self._usage

    def _redact(self, text: str) -> str:
        key = self._key()
        if key:
            text = text.replace(key, "***")
        return _MASKED_KEY.sub("***", text)

    # -- the remote operation ------------------------------------------------------------------

    def chat_completion(
        self,
        messages: Sequence[ChatMessage | Mapping[str, str]],
        *,
        json_mode: bool = True,
        server_tools: Iterable[str] = (),
        max_tokens: int | None = None,
    ) -> ChatReply:
        """One POST /chat/completions, retried on 429/5xx/connection errors."""
        msgs = [
            m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in messages
        ]
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in msgs],
            "stream": False,
        }
        if json_mode:
            payload["response_format"] = {"type": "json_object"}
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        tokens = max_tokens if max_tokens is not None else self.max_tokens
        if tokens is not None:
            payload["max_tokens"] = tokens
        tools = list(dict.fromkeys(server_tools))
        unknown = [t for t in tools if t not in SERVER_TOOLS]
        if unknown:
            raise ValueError(f"unknown server tools {unknown}; known: {list(SERVER_TOOLS)}")
        if tools:
            payload["tools"] = [{"type": t} for t in tools]
        body = self._post("/chat/completions", payload)
        return self._parse_reply(body)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        attempts = max(0, self.max_retries) + 1
        last: ServiceError | None = None
        wait: float | None = None
        for attempt in range(attempts):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1) if wait is None else wait
                delay = min(self.max_backoff_s, delay)
                log.warning("llm: retrying in %.2fs after: %s", delay, last)
                time.sleep(delay)
            wait = None
            try:
                response = self.client.post(path, json=payload)
            except httpx.TransportError as exc:
                last = ServiceError(
                    SERVICE,
                    self._redact(
                        f"POST {self.base_url.rstrip('/')}{path} failed: "
                        f"{type(exc).__name__}: {exc}"
                    ),
                    retryable=True,
                )
                continue
            status = response.status_code
            if status < 400:
                try:
                    data = response.json()
                except ValueError as exc:
                    raise ServiceError(
                        SERVICE,
                        "the server answered something that is not JSON: "
                        + self._redact(response.text[:200]),
                        status=status,
                    ) from exc
                if not isinstance(data, dict):
                    raise ServiceError(SERVICE, "the server's answer is not a JSON object")
                return data
            message = self._redact(_error_message(response))
            if status in _RETRYABLE_STATUS:
                wait = _retry_after_seconds(response.headers.get("retry-after"))
                what = "rate limited" if status == 429 else "server error"
                last = ServiceError(
                    SERVICE, what, status=status, server_message=message, retryable=True
                )
                continue
            raise ServiceError(SERVICE, self._advice(status), status=status, server_message=message)
        assert last is not None
        raise ServiceError(
            SERVICE,
            f"gave up after {attempts} attempts: {last.message}",
            status=last.status,
            server_message=last.server_message,
            retryable=True,
        )

    def _advice(self, status: int) -> str:
        where = self.base_url.rstrip("/")
        return {
            400: f"bad request: the server at {where} rejected the request (does model "
            f"{self.model!r} support JSON mode? is the prompt too long?)",
            401: f"authentication failed at {where}: check DEEPSEEK_API_KEY (the key bound to "
            "the LLM resource's api_key)",
            402: "insufficient balance: top up the DeepSeek account balance, or point the LLM "
            "resource at a local OpenAI-compatible server",
            403: f"forbidden at {where}: the key may not use model {self.model!r}",
            404: f"not found: check base_url ({where}) and model ({self.model!r})",
            422: f"invalid parameters: check model ({self.model!r}), max_tokens "
            f"({self.max_tokens}) and temperature ({self.temperature}) for {where}",
        }.get(status, f"request to {where} failed")

    def _parse_reply(self, body: dict[str, Any]) -> ChatReply:
        usage_raw = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        assert isinstance(usage_raw, dict)
        usage = LLMUsage(
            prompt_tokens=int(usage_raw.get("prompt_tokens") or 0),
            completion_tokens=int(usage_raw.get("completion_tokens") or 0),
            total_tokens=int(usage_raw.get("total_tokens") or 0),
            requests=1,
        )
        self._usage = self._usage.plus(usage)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ServiceError(SERVICE, "the server's answer has no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        assert isinstance(message, dict)
        content = message.get("content")
        citations: list[str] = []
        for note in message.get("annotations") or []:
            if isinstance(note, dict):
                cite = (
                    note.get("url_citation") if isinstance(note.get("url_citation"), dict) else note
                )
                if isinstance(cite, dict) and isinstance(cite.get("url"), str):
                    citations.append(cite["url"])
        for item in body.get("citations") or []:
            if isinstance(item, str):
                citations.append(item)
            elif isinstance(item, dict) and isinstance(item.get("url"), str):
                citations.append(item["url"])
        return ChatReply(
            content=content if isinstance(content, str) else "",
            finish_reason=choice.get("finish_reason"),
            usage=usage,
            citations=list(dict.fromkeys(citations)),
        )

    # -- JSON replies --------------------------------------------------------------------------

    def chat_json(
        self,
        messages: Sequence[ChatMessage | Mapping[str, str]],
        *,
        schema: type[T],
        server_tools: Iterable[str] = (),
        max_tokens: int | None = None,
    ) -> tuple[T, LLMUsage]:
        """Ask for one JSON object and validate it as ``schema``; returns it and the usage."""
        value, usage, _ = self._chat_json(
            messages, schema=schema, server_tools=server_tools, max_tokens=max_tokens
        )
        return value, usage

    def _chat_json(
        self,
        messages: Sequence[ChatMessage | Mapping[str, str]],
        *,
        schema: type[T],
        server_tools: Iterable[str] = (),
        max_tokens: int | None = None,
    ) -> tuple[T, LLMUsage, list[str]]:
        msgs = [
            m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in messages
        ]
        if not any("json" in m.content.lower() for m in msgs):
            example = json.dumps(schema.model_json_schema(), ensure_ascii=False)
            msgs.insert(
                0,
                ChatMessage(
                    role="system",
                    content=f"Reply with one json object matching this JSON schema: {example}",
                ),
            )
        tools = tuple(server_tools)
        usage = LLMUsage()
        citations: list[str] = []
        blanks = 0
        invalid = 0
        while True:
            reply = self.chat_completion(msgs, server_tools=tools, max_tokens=max_tokens)
            usage = usage.plus(reply.usage)
            citations.extend(reply.citations)
            text = reply.content.strip()
            if not text:
                if blanks < self.blank_reply_retries:
                    blanks += 1
                    log.warning(
                        "llm: blank reply (finish_reason=%s); asking again", reply.finish_reason
                    )
                    continue
                raise ServiceError(
                    SERVICE,
                    f"the model gave {blanks + 1} blank replies in JSON mode "
                    f"(finish_reason={reply.finish_reason})",
                )
            parsed = self._parse_json(text, schema, reply.finish_reason)
            if not isinstance(parsed, str):
                return parsed, usage, list(dict.fromkeys(citations))
            problem = parsed
            if invalid >= 1:
                raise ServiceError(
                    SERVICE,
                    f"the model's reply is not the promised JSON ({problem}); "
                    f"it began: {self._redact(text[:200])!r}",
                )
            invalid += 1
            log.warning("llm: reply is not the promised JSON (%s); asking once more", problem)
            msgs = [
                *msgs,
                ChatMessage(role="assistant", content=text[:4000]),
                ChatMessage(
                    role="user",
                    content=f"That reply was not valid json for the requested shape ({problem}). "
                    "Reply again with only the complete json object, shaped like the example.",
                ),
            ]

    @staticmethod
    def _parse_json(text: str, schema: type[T], finish_reason: str | None) -> T | str:
        """The validated reply, or a short description of what is wrong with it."""
        candidate = text
        fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", candidate, re.S)
        if fenced:
            candidate = fenced.group(1)
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError as exc:
            if finish_reason == "length":
                return "the reply was cut off at max_tokens; raise max_tokens"
            return f"invalid JSON: {exc.msg} at char {exc.pos}"
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{exc.error_count()} schema error(s), first at {where or 'top'}: {first['msg']}"

    # -- high level ----------------------------------------------------------------------------

    def write_script(self, brief: ScriptBrief) -> ScriptDraft:
        """Write a whole script for ``brief`` (~150 spoken words per minute)."""
        messages = _script_messages(brief, self.source_budget_chars)
        tools = SERVER_TOOLS if brief.grounding else ()
        draft, usage, citations = self._chat_json(messages, schema=ScriptDraft, server_tools=tools)
        names = {c.name.lower(): c.name for c in brief.cast}
        sections = []
        for section in draft.sections:
            sentences = [
                s.model_copy(
                    update={
                        "characters": [names[c.lower()] for c in s.characters if c.lower() in names]
                    }
                )
                for s in section.sentences
            ]
            sections.append(section.model_copy(update={"sentences": sentences}))
        used = [s.ref for s in brief.sources] + citations
        return draft.model_copy(
            update={
                "sections": sections,
                "sources": list(dict.fromkeys(used)),
                "model": self.model,
                "usage": usage,
            }
        )

    def write_shots(
        self,
        sentences: Sequence[ShotRequest | Mapping[str, str]],
        *,
        style_prompt_prefix: str = "",
        cast: Sequence[CastMember | Mapping[str, str]] = (),
    ) -> dict[str, ShotDraft]:
        """Shots for many sentences, ``shots_batch_size`` per request; keyed by sentence id.

        Ids the model leaves out are asked for once more; ids still missing are absent from the
        result (the caller falls back to rule-based shots for them).
        """
        reqs = [
            s if isinstance(s, ShotRequest) else ShotRequest.model_validate(s) for s in sentences
        ]
        members = [c if isinstance(c, CastMember) else CastMember.model_validate(c) for c in cast]
        names = {c.name.lower(): c.name for c in members}
        size = max(1, self.shots_batch_size)
        result: dict[str, ShotDraft] = {}
        for start in range(0, len(reqs), size):
            batch = reqs[start : start + size]
            for attempt in range(2):
                wanted = [r for r in batch if r.id not in result]
                if not wanted:
                    break
                reply, _ = self.chat_json(
                    _shots_messages(wanted, style_prompt_prefix, members), schema=_ShotsReply
                )
                ids = {r.id for r in wanted}
                for item in reply.shots:
                    if item.id in ids and item.id not in result:
                        chars = [names[c.lower()] for c in item.characters if c.lower() in names]
                        data = item.model_dump(exclude={"id"})
                        data["characters"] = chars
                        result[item.id] = ShotDraft.model_validate(data)
                missing = [r.id for r in wanted if r.id not in result]
                if missing and attempt == 0:
                    log.warning(
                        "llm: %d shot(s) missing from the reply; asking again", len(missing)
                    )
            missing = [r.id for r in batch if r.id not in result]
            if missing:
                log.warning("llm: no shot for %s; rule-based shots will be used", missing)
        return result

    def render_script_markdown(self, draft: ScriptDraft) -> str:
        """The studio's script.md text for ``draft``."""
        return render_script_markdown(draft)

    # -- grounding -----------------------------------------------------------------------------

    def gather_sources(
        self, sources: Sequence[str], *, base_dir: Path | None = None
    ) -> list[Source]:
        """Read local files and fetch http(s) pages given as sources, as plain text.

        The API key is never sent to these addresses. Each source is capped at
        ``source_max_bytes`` read and ``source_max_chars`` kept.
        """
        out: list[Source] = []
        web: httpx.Client | None = None
        try:
            for ref in sources:
                ref = ref.strip()
                if not ref:
                    continue
                if re.match(r"^https?://", ref, re.I):
                    if web is None:
                        web = httpx.Client(
                            timeout=httpx.Timeout(20.0, connect=self.connect_timeout_s),
                            follow_redirects=True,
                            headers={"User-Agent": "videogen-studio (source reader)"},
                        )
                    out.append(self._fetch_source(web, ref))
                else:
                    out.append(self._read_source(ref, base_dir))
        finally:
            if web is not None:
                web.close()
        return out

    def _finish_source(
        self, ref: str, kind: Literal["file", "url"], raw: str, content_type: str, truncated: bool
    ) -> Source:
        title = ""
        text = raw
        if "html" in content_type or re.match(r"\s*(<!doctype html|<html)", raw[:200], re.I):
            title, text = html_to_text(raw)
        full = len(text)
        keep = text[: self.source_max_chars]
        return Source(
            ref=ref,
            kind=kind,
            title=title,
            text=keep,
            chars=full,
            truncated=truncated or full > len(keep),
        )

    def _read_source(self, ref: str, base_dir: Path | None) -> Source:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InputError("source file not found", file=path, field="sources")
        with path.open("rb") as fh:
            data = fh.read(self.source_max_bytes + 1)
        truncated = len(data) > self.source_max_bytes
        ctype = "text/html" if path.suffix.lower() in {".html", ".htm"} else "text/plain"
        return self._finish_source(
            ref, "file", _decode(data[: self.source_max_bytes], ""), ctype, truncated
        )

    def _fetch_source(self, web: httpx.Client, url: str) -> Source:
        try:
            with web.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise ServiceError(
                        "web",
                        f"could not fetch source {url}",
                        status=response.status_code,
                        retryable=response.status_code in _RETRYABLE_STATUS,
                    )
                chunks: list[bytes] = []
                size = 0
                truncated = False
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.source_max_bytes:
                        truncated = True
                        break
                ctype = response.headers.get("content-type", "")
        except httpx.TransportError as exc:
            raise ServiceError(
                "web", f"could not fetch source {url}: {type(exc).__name__}", retryable=True
            ) from exc
        data = b"".join(chunks)[: self.source_max_bytes]
        if ctype and not re.search(r"text/|json|xml|markdown", ctype):
            raise ServiceError("web", f"source {url} is {ctype}, not text")
        return self._finish_source(url, "url", _decode(data, ctype), ctype, truncated)

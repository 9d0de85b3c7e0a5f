"""The LLM resource: an OpenAI-compatible chat-completions server on the shared HTTP base.

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

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from videogen_resources.errors import ServiceError
from videogen_resources.http import RETRY_STATUSES, HttpPolicy, HttpService, redact
from videogen_resources.llm import writing
from videogen_resources.llm.messages import ChatMessage, ChatReply, LLMUsage
from videogen_resources.llm.sources import Source, SourceReader
from videogen_resources.llm.writing import (
    SERVER_TOOLS,
    CastMember,
    ScriptBrief,
    ScriptDraft,
    ShotDraft,
    ShotRequest,
    render_script_markdown,
)

log = logging.getLogger(__name__)

SERVICE = "llm"
DEEPSEEK_BASE_URL = "https://api.deepseek.com"

T = TypeVar("T", bound=BaseModel)


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

    _http: HttpService | None = PrivateAttr(default=None)
    _usage: LLMUsage = PrivateAttr(default_factory=LLMUsage)

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
            headers = {"Accept": "application/json", "User-Agent": "videogen-studio"}
            key = self._key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._http = HttpService(
                SERVICE,
                base_url=self.base_url,
                policy=HttpPolicy(
                    connect_s=self.connect_timeout_s,
                    read_s=self.timeout_s,
                    max_retries=self.max_retries,
                    backoff_s=self.backoff_s,
                    max_backoff_s=self.max_backoff_s,
                    retry_statuses=RETRY_STATUSES | {500},
                    message_chars=500,
                ),
                headers=headers,
                secrets=lambda: [k for k in (self._key(),) if k],
                advice=self._advice,
            )
        return self._http

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
        return redact(text, [k for k in (self._key(),) if k])

    # -- the remote operation ------------------------------------------------------------------

    def chat_completion(
        self,
        messages: Sequence[ChatMessage | Mapping[str, str]],
        *,
        json_mode: bool = True,
        server_tools: Iterable[str] = (),
        max_tokens: int | None = None,
    ) -> ChatReply:
        """One POST /chat/completions (repeated after 429/5xx, timeouts, failed connections)."""
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
        response = self.http.request("POST", "/chat/completions", safe=True, json=payload)
        try:
            body = response.json()
        except ValueError as exc:
            raise ServiceError(
                SERVICE,
                "the server answered something that is not JSON: "
                + self._redact(response.text[:200]),
                status=response.status_code,
            ) from exc
        if not isinstance(body, dict):
            raise ServiceError(SERVICE, "the server's answer is not a JSON object")
        return self._parse_reply(body)

    def _advice(self, status: int) -> str | None:
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
        }.get(status)

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
        value, usage, _ = self.chat_json_cited(
            messages, schema=schema, server_tools=server_tools, max_tokens=max_tokens
        )
        return value, usage

    def chat_json_cited(
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
        return writing.write_script(self, brief)

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
        return writing.write_shots(
            self, sentences, style_prompt_prefix=style_prompt_prefix, cast=cast
        )

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
        reader = SourceReader(
            max_bytes=self.source_max_bytes,
            max_chars=self.source_max_chars,
            connect_s=self.connect_timeout_s,
        )
        return reader.gather(sources, base_dir=base_dir)

"""An OpenAI-compatible chat-completions server for tests, shaped like DeepSeek's API.

``POST /v1/chat/completions`` and ``POST /chat/completions`` answer ``chat.completion`` objects
with ``usage``. Replies follow the request deterministically:

- a user message carrying ``Brief (json): {...}`` gets a script: ``{"title", "sections": [...]}``
  with about ``target_words`` words in ``sections`` sections, cameras cycling through the
  studio's movements and cast names placed on some sentences;
- a user message carrying ``Sentences (json): [...]`` gets ``{"shots": [...]}`` with one shot for
  every id sent;
- anything else gets ``{"ok": true}``.

Like DeepSeek, a ``response_format`` of ``json_object`` without the word "json" in the messages
is a 400; an unknown model is a 400; a wrong or missing key (when ``api_key`` is set) is a 401.
Errors use DeepSeek's body shape ``{"error": {"message", "type", "param", "code"}}``.
Fault knobs (queued, one per request): ``"429"`` (with ``Retry-After``), ``"500"``, ``"503"``,
``"400"``, ``"401"``, ``"402"``, ``"422"``, ``"blank"`` (empty content, finish_reason stop),
``"non_json"``, ``"fenced"`` (JSON inside a Markdown fence), ``"bad_schema"``, ``"missing_ids"``
(the last id is left out of shots), ``"length"`` (cut-off JSON, finish_reason length),
``"echo_key"`` (a 401 whose message repeats the key it was sent), ``"slow"``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from tests.support.servers.tts import Fault, ServerThread

CAMERAS = (
    "static",
    "pan-left",
    "pan-right",
    "tilt-up",
    "tilt-down",
    "zoom-in",
    "zoom-out",
    "dolly",
    "orbit",
)
_BRIEF = re.compile(r"^Brief \(json\): (\{.*\})\s*$", re.M)
_SENTENCES = re.compile(r"^Sentences \(json\): (\[.*\])\s*$", re.M)
_STYLE = re.compile(r"^Style prefix: (.*)$", re.M)
_FILLER = (
    "and this is where the story of {topic} takes a surprising and important turn for everyone"
).split()


def _error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAICompatServer(ServerThread):
    """Fake DeepSeek/OpenAI-compatible chat-completions server."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("deepseek-flash", "deepseek-v4-pro"),
        retry_after: str = "0.05",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models
        self.retry_after = retry_after
        self.citations = ("https://example.org/volcanoes", "https://example.org/magma")

    def build_app(self) -> web.Application:
        app = web.Application()
        for path in ("/v1/chat/completions", "/chat/completions"):
            app.router.add_post(path, self._chat)
        for path in ("/v1/models", "/models"):
            app.router.add_get(path, self._models)
        return app

    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat-completions request, in order."""
        return [r.json for r in self.requests if r.path.endswith("/chat/completions")]

    # -- faults --
    async def fault_response(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "slow":
            return None
        statuses = {
            "400": ("Invalid request: messages is malformed", "invalid_request_error"),
            "401": ("Authentication Fails, Your api key is invalid", "authentication_error"),
            "402": ("Insufficient Balance", "unknown_error"),
            "422": ("Invalid Parameters: max_tokens out of range", "invalid_request_error"),
            "429": ("Rate Limit Reached", "rate_limit_error"),
            "500": ("Server Error", "server_error"),
            "503": ("Server Overloaded", "server_error"),
        }
        if kind in statuses:
            message, err = statuses[kind]
            headers = {"Retry-After": self.retry_after} if kind == "429" else None
            return web.json_response(
                _error_body(message, err, "invalid_request_error"),
                status=int(kind),
                headers=headers,
            )
        if kind == "echo_key":
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            masked = "****" + sent[-4:] if sent else ""
            message = f"Authentication Fails, Your api key: {sent} ({masked}) is invalid"
            return web.json_response(
                _error_body(message, "authentication_error", "invalid_request_error"), status=401
            )
        body = await request.json()
        if kind == "blank":
            return self._completion(body, "", finish_reason="stop")
        if kind == "non_json":
            return self._completion(body, "Sure! Here is a great script about your topic.")
        if kind == "bad_schema":
            return self._completion(body, json.dumps({"script": "a plain string"}))
        content = json.dumps(self._answer(body, drop_last=kind == "missing_ids"))
        if kind == "fenced":
            return self._completion(body, f"```json\n{content}\n```")
        if kind == "length":
            return self._completion(body, content[: len(content) // 2], finish_reason="length")
        if kind == "missing_ids":
            return self._completion(body, content)
        raise ValueError(f"unknown fault {kind!r}")

    async def random_error(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(_error_body("Server Error", "server_error"), status=500)

    # -- endpoints --
    async def _models(self, request: web.Request) -> web.StreamResponse:
        data = [{"id": m, "object": "model", "owned_by": "deepseek"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.api_key is not None:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if sent != self.api_key:
                return web.json_response(
                    _error_body(
                        f"Authentication Fails, Your api key: ****{sent[-4:]} is invalid",
                        "authentication_error",
                        "invalid_request_error",
                    ),
                    status=401,
                )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response(
                _error_body("Failed to parse the request body as JSON", "invalid_request_error"),
                status=400,
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return web.json_response(
                _error_body("messages: field required", "invalid_request_error"), status=422
            )
        if body.get("model") not in self.models:
            return web.json_response(
                _error_body("Model Not Exist", "invalid_request_error", "invalid_request_error"),
                status=400,
            )
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        if (body.get("response_format") or {}).get("type") == "json_object":
            if "json" not in text.lower():
                return web.json_response(
                    _error_body(
                        "Prompt must contain the word 'json' in some form to use "
                        "'response_format' of type 'json_object'.",
                        "invalid_request_error",
                    ),
                    status=400,
                )
        return self._completion(body, json.dumps(self._answer(body)))

    # -- deterministic answers --
    def _completion(
        self, body: dict[str, Any], content: str, *, finish_reason: str = "stop"
    ) -> web.Response:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        tools = [t.get("type") for t in body.get("tools") or [] if isinstance(t, dict)]
        if "deepseek_web_search" in tools:
            message["annotations"] = [
                {"type": "url_citation", "url_citation": {"url": url, "title": url}}
                for url in self.citations
            ]
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        prompt_tokens = prompt_chars // 4 + 1
        completion_tokens = len(content) // 4
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_test",
            }
        )

    def _answer(self, body: dict[str, Any], *, drop_last: bool = False) -> dict[str, Any]:
        users = [
            str(m.get("content", ""))
            for m in body.get("messages", [])
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        for content in reversed(users):
            brief = _BRIEF.search(content)
            if brief:
                return self._script(json.loads(brief.group(1)))
            sentences = _SENTENCES.search(content)
            if sentences:
                style = _STYLE.search(content)
                prefix = style.group(1) if style else ""
                return self._shots(json.loads(sentences.group(1)), prefix, drop_last=drop_last)
        return {"ok": True}

    @staticmethod
    def _script(brief: dict[str, Any]) -> dict[str, Any]:
        topic = str(brief.get("topic", "the topic"))
        target = int(brief.get("target_words", 150))
        n_sections = max(1, int(brief.get("sections", 1)))
        cast = [str(c.get("name")) for c in brief.get("cast", []) if isinstance(c, dict)]
        topic_words = topic.split()
        style = str(brief.get("style", ""))
        per_sentence = 12
        n_sentences = max(n_sections, round(target / per_sentence))
        sentences: list[dict[str, Any]] = []
        for i in range(n_sentences):
            words = ["Part", str(i + 1), "of", *topic_words]
            last = topic_words[-1] if topic_words else "it"
            filler = [w.replace("{topic}", last) for w in _FILLER]
            words += filler[: max(0, per_sentence - len(words))]
            sentences.append(
                {
                    "text": " ".join(words) + ".",
                    "image_prompt": f"{style} illustration of {topic}, scene {i + 1}",
                    "video_prompt": f"slow movement across scene {i + 1}",
                    "camera": CAMERAS[i % len(CAMERAS)],
                    "motion": round((i % 10) / 10, 1),
                    "characters": [cast[i % len(cast)]] if cast and i % 3 == 0 else [],
                }
            )
        sections = []
        per_section = -(-n_sentences // n_sections)
        for s in range(n_sections):
            chunk = sentences[s * per_section : (s + 1) * per_section]
            if chunk:
                sections.append({"title": f"Chapter {s + 1}", "sentences": chunk})
        return {"title": str(brief.get("title", topic)), "sections": sections}

    @staticmethod
    def _shots(sentences: list[Any], prefix: str, *, drop_last: bool) -> dict[str, Any]:
        shots = []
        for i, sentence in enumerate(sentences):
            text = str(sentence.get("text", ""))
            shots.append(
                {
                    "id": sentence.get("id"),
                    "image_prompt": f"{prefix}, {text}".strip(", "),
                    "video_prompt": f"gentle motion: {text}",
                    "camera": CAMERAS[i % len(CAMERAS)],
                    "motion": 0.5,
                    "characters": [],
                    "key_phrase": " ".join(text.split()[:4]),
                }
            )
        if drop_last and shots:
            shots.pop()
        return {"shots": shots}

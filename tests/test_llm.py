"""Contract: LLMResource speaks OpenAI-compatible chat completions (DeepSeek by default).

Pins, against a real local server shaped like DeepSeek's API: the exact request JSON and the
Bearer key header; JSON mode with the word "json" and an example in the prompt; retries of
429 (honouring Retry-After), 500/503, connection errors and blank replies; one retry of a reply
that is not the promised JSON, then a clear error quoting it; immediate failure with advice on
400/401/402/422; the key never in an error, a log record or a repr; ``write_script`` fitting
the word budget (~150 words a minute); ``write_shots`` batching 40 per request with a shot for
every id; the server-side web tools and the sources recorded; ``gather_sources`` for files and
pages; and the script.md text ``render_script_markdown`` produces.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from typing import Any

import dagster as dg
import pytest
from aiohttp import web
from pydantic import BaseModel

from tests.support.servers.llm import OpenAICompatServer
from tests.support.servers.tts import Fault, ServerThread
from videogen_domain.errors import InputError
from videogen_domain.models import CAMERA_MOVEMENTS
from videogen_resources.errors import ServiceError
from videogen_resources.llm import (
    CastMember,
    LLMResource,
    ScriptBrief,
    ScriptDraft,
    SectionDraft,
    SentenceDraft,
    ShotDraft,
    ShotRequest,
    Source,
    render_script_markdown,
)

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def server():
    with OpenAICompatServer(api_key=KEY) as srv:
        yield srv


def llm(server: OpenAICompatServer, **kw: Any) -> LLMResource:
    settings: dict[str, Any] = {
        "base_url": server.url,
        "api_key": KEY,
        "backoff_s": 0.01,
        "timeout_s": 5.0,
    }
    settings.update(kw)
    return LLMResource(**settings)


class Answer(BaseModel):
    ok: bool


JSON_PROMPT = [
    {"role": "system", "content": 'Reply in json like {"ok": true}.'},
    {"role": "user", "content": "Are you there?"},
]


def brief(**kw: Any) -> ScriptBrief:
    data: dict[str, Any] = {
        "title": "How Volcanoes Work",
        "topic": "volcanoes and magma",
        "minutes": 2,
        "style": "documentary",
        "cast": [{"name": "Ada", "description": "a volcanologist in a red jacket"}],
    }
    data.update(kw)
    return ScriptBrief.model_validate(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the request sent ----------------------------------------------------------------------------


def test_chat_json_sends_the_exact_request_with_the_bearer_key(server):
    value, usage = llm(server, model="deepseek-v4-pro").chat_json(JSON_PROMPT, schema=Answer)
    assert value == Answer(ok=True)
    (req,) = server.requests
    assert (req.method, req.path) == ("POST", "/chat/completions")
    assert req.header("Authorization") == f"Bearer {KEY}"
    assert req.json == {
        "model": "deepseek-v4-pro",
        "messages": JSON_PROMPT,
        "stream": False,
        "response_format": {"type": "json_object"},
        "max_tokens": 8192,
    }
    assert usage.requests == 1 and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_any_openai_compatible_base_url_without_a_key(server):
    server.api_key = None
    local = LLMResource(
        base_url=server.url + "/v1", model="deepseek-flash", temperature=0.3, max_tokens=None
    )
    assert local.is_configured
    local.chat_json(JSON_PROMPT, schema=Answer)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.header("Authorization") is None
    assert req.json["temperature"] == 0.3
    assert "max_tokens" not in req.json


def test_json_word_and_schema_are_added_when_the_prompt_lacks_them(server):
    value, _ = llm(server).chat_json([{"role": "user", "content": "Say ok."}], schema=Answer)
    assert value.ok
    first = server.chat_requests()[0]["messages"][0]
    assert first["role"] == "system" and "json" in first["content"]
    assert '"ok"' in first["content"]


def test_is_configured():
    assert not LLMResource().is_configured  # DeepSeek without a key
    assert LLMResource(api_key="sk-x").is_configured
    assert LLMResource(base_url="http://127.0.0.1:11434/v1").is_configured


# -- retries -------------------------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_delay(server):
    server.retry_after = "0.4"
    server.queue("429")
    started = time.monotonic()
    value, usage = llm(server).chat_json(JSON_PROMPT, schema=Answer)
    assert value.ok
    assert time.monotonic() - started >= 0.4
    assert len(server.requests) == 2
    assert usage.requests == 1  # only the successful request reports usage


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_errors_are_retried(server, status):
    server.queue(status, status)
    value, _ = llm(server).chat_json(JSON_PROMPT, schema=Answer)
    assert value.ok
    assert len(server.requests) == 3


def test_retries_are_bounded(server):
    server.queue("503", "503", "503")
    with pytest.raises(ServiceError) as info:
        llm(server, max_retries=2).chat_json(JSON_PROMPT, schema=Answer)
    err = info.value
    assert (err.service, err.status, err.retryable) == ("llm", 503, True)
    assert err.server_message == "Server Overloaded"
    assert len(server.requests) == 3


def test_connection_errors_are_retried_then_reported():
    dead = LLMResource(
        base_url=f"http://127.0.0.1:{free_port()}", api_key=KEY, backoff_s=0.01, max_retries=2
    )
    with pytest.raises(ServiceError) as info:
        dead.chat_json(JSON_PROMPT, schema=Answer)
    assert info.value.retryable and "ConnectError" in str(info.value)


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("400", "bad request"),
        ("401", "check DEEPSEEK_API_KEY"),
        ("402", "top up"),
        ("422", "invalid parameters"),
    ],
)
def test_client_errors_fail_at_once_with_advice(server, status, advice):
    server.queue(status)
    with pytest.raises(ServiceError) as info:
        llm(server).chat_json(JSON_PROMPT, schema=Answer)
    assert info.value.status == int(status)
    assert not info.value.retryable
    assert advice in str(info.value)
    assert info.value.server_message
    assert len(server.requests) == 1


def test_a_wrong_key_is_a_401_naming_the_env_var(server):
    with pytest.raises(ServiceError, match="DEEPSEEK_API_KEY") as info:
        llm(server, api_key="sk-wrong-key-99999").chat_json(JSON_PROMPT, schema=Answer)
    assert info.value.status == 401
    assert "sk-wrong-key-99999" not in str(info.value)
    assert "9999" not in str(info.value)  # the server's masked echo is redacted too


def test_an_unknown_model_is_a_400(server):
    with pytest.raises(ServiceError, match="deepseek-chat") as info:
        llm(server, model="deepseek-chat").chat_json(JSON_PROMPT, schema=Answer)
    assert info.value.status == 400
    assert info.value.server_message == "Model Not Exist"


# -- replies that are not the promised JSON ------------------------------------------------------


def test_a_blank_reply_is_retried(server):
    server.queue("blank")
    value, usage = llm(server).chat_json(JSON_PROMPT, schema=Answer)
    assert value.ok
    assert usage.requests == 2
    assert server.chat_requests()[0] == server.chat_requests()[1]


def test_blank_replies_give_up(server):
    server.queue("blank", "blank", "blank")
    with pytest.raises(ServiceError, match="blank"):
        llm(server, blank_reply_retries=2).chat_json(JSON_PROMPT, schema=Answer)
    assert len(server.requests) == 3


def test_non_json_is_retried_once_with_a_correction(server):
    server.queue("non_json")
    value, _ = llm(server).chat_json(JSON_PROMPT, schema=Answer)
    assert value.ok
    second = server.chat_requests()[1]["messages"]
    assert second[: len(JSON_PROMPT)] == JSON_PROMPT
    assert second[-2] == {
        "role": "assistant",
        "content": "Sure! Here is a great script about your topic.",
    }
    assert second[-1]["role"] == "user" and "json" in second[-1]["content"]


def test_non_json_twice_fails_quoting_the_reply(server):
    server.queue("non_json", "non_json")
    with pytest.raises(ServiceError) as info:
        llm(server).chat_json(JSON_PROMPT, schema=Answer)
    assert "Sure! Here is a great script" in str(info.value)
    assert "not the promised JSON" in str(info.value)
    assert len(server.requests) == 2


def test_wrong_shape_twice_fails_naming_the_schema_error(server):
    server.queue("bad_schema", "bad_schema")
    with pytest.raises(ServiceError, match="schema error"):
        llm(server).chat_json(JSON_PROMPT, schema=Answer)


def test_a_cut_off_reply_says_to_raise_max_tokens(server):
    server.queue("length", "length")
    with pytest.raises(ServiceError, match="max_tokens"):
        llm(server).write_script(brief())


def test_a_fenced_json_reply_is_accepted(server):
    server.queue("fenced")
    draft = llm(server).write_script(brief())
    assert draft.sections
    assert len(server.requests) == 1


# -- the key never leaks -------------------------------------------------------------------------


def test_the_key_never_appears_in_errors_logs_or_repr(server, caplog):
    caplog.set_level(logging.DEBUG)
    resource = llm(server, max_retries=1)
    errors: list[str] = []
    for faults in (["429", "echo_key"], ["500", "500"], ["non_json", "non_json"]):
        server.queue(*faults)
        with pytest.raises(ServiceError) as info:
            resource.chat_json(JSON_PROMPT, schema=Answer)
        errors.append(str(info.value))
        errors.append(repr(info.value.server_message))
    dead = LLMResource(
        base_url=f"http://127.0.0.1:{free_port()}", api_key=KEY, backoff_s=0.01, max_retries=1
    )
    with pytest.raises(ServiceError) as info:
        dead.chat_json(JSON_PROMPT, schema=Answer)
    errors.append(str(info.value))

    assert server.requests[1].header("Authorization") == f"Bearer {KEY}"  # the echo was real
    assert "***" in errors[0]
    texts = [*errors, repr(resource), str(resource.model_dump(exclude={"api_key"}))]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records  # retries were logged
    for text in texts:
        assert KEY not in text
        assert KEY[-4:] not in text


# -- write_script --------------------------------------------------------------------------------


def test_write_script_fits_the_word_budget_and_the_contract(server):
    b = brief(minutes=2, sources=[Source(ref="notes.md", kind="file", text="Magma is molten.")])
    resource = llm(server)
    draft = resource.write_script(b)

    (req,) = server.chat_requests()
    assert req["response_format"] == {"type": "json_object"}
    assert "tools" not in req
    system, user = req["messages"]
    assert system["role"] == "system" and "json" in system["content"]
    assert '"sections"' in system["content"]  # the example
    sent = json.loads(re.search(r"^Brief \(json\): (.*)$", user["content"], re.M).group(1))
    assert sent["target_words"] == 300
    assert sent["minutes"] == 2
    assert sent["cast"] == [{"name": "Ada", "description": "a volcanologist in a red jacket"}]
    assert "Magma is molten." in user["content"]

    assert draft.title == "How Volcanoes Work"
    assert 0.85 * 300 <= draft.word_count <= 1.15 * 300
    sentences = [s for sec in draft.sections for s in sec.sentences]
    assert all(s.camera in CAMERA_MOVEMENTS and 0 <= s.motion <= 1 for s in sentences)
    assert {c for s in sentences for c in s.characters} == {"Ada"}
    assert draft.sources == ["notes.md"]
    assert draft.model == "deepseek-flash"
    assert draft.usage.total_tokens > 0
    assert resource.usage.requests == 1


def test_grounding_enables_deepseek_web_tools_and_records_sources(server):
    draft = llm(server).write_script(brief(grounding=True))
    req = server.chat_requests()[0]
    assert req["tools"] == [{"type": "deepseek_web_search"}, {"type": "deepseek_read_url"}]
    assert draft.sources == ["https://example.org/volcanoes", "https://example.org/magma"]


def test_characters_not_in_the_cast_are_dropped(server):
    draft = llm(server).write_script(brief(cast=[]))
    assert all(not s.characters for sec in draft.sections for s in sec.sentences)


def test_model_output_is_read_leniently():
    s = SentenceDraft.model_validate(
        {"text": "Hi.", "camera": "Zoom In", "motion": 1.7, "characters": "Ada, Bob"}
    )
    assert (s.camera, s.motion, s.characters) == ("zoom-in", 1.0, ["Ada", "Bob"])
    odd = ShotDraft.model_validate({"camera": "spin wildly", "motion": "n/a"})
    assert (odd.camera, odd.motion) == ("static", 0.5)
    shot = ShotDraft(
        image_prompt="a", video_prompt="b", camera="orbit", motion=0.2, characters=["Ada"]
    ).to_shot(seed=7)
    assert (
        shot.camera_movement,
        shot.motion_strength,
        shot.characters,
        shot.source,
        shot.seed,
    ) == ("orbit", 0.2, ("Ada",), "llm", 7)


# -- write_shots ---------------------------------------------------------------------------------


def test_write_shots_batches_forty_per_request_and_covers_every_id(server):
    sentences = [
        {"id": f"p.s{i:04d}", "text": f"Sentence {i} about lava.", "section": "Intro"}
        for i in range(95)
    ]
    shots = llm(server).write_shots(
        sentences,
        style_prompt_prefix="cinematic documentary photo",
        cast=[CastMember(name="Ada", description="volcanologist")],
    )
    assert set(shots) == {s["id"] for s in sentences}
    assert all(isinstance(v, ShotDraft) for v in shots.values())
    assert shots["p.s0001"].image_prompt.startswith("cinematic documentary photo")
    batches = []
    for req in server.chat_requests():
        user = req["messages"][-1]["content"]
        sent = json.loads(re.search(r"^Sentences \(json\): (.*)$", user, re.M).group(1))
        batches.append([s["id"] for s in sent])
        assert "Style prefix: cinematic documentary photo" in user
    assert [len(b) for b in batches] == [40, 40, 15]
    assert batches[0][0] == "p.s0000" and batches[2][-1] == "p.s0094"
    assert sent[0] == {"id": "p.s0080", "text": "Sentence 80 about lava.", "section": "Intro"}


def test_missing_shots_are_asked_for_again(server):
    server.queue(Fault("missing_ids"))
    reqs = [ShotRequest(id=f"s{i}", text=f"Line {i}.") for i in range(5)]
    shots = llm(server).write_shots(reqs)
    assert set(shots) == {f"s{i}" for i in range(5)}
    second = server.chat_requests()[1]["messages"][-1]["content"]
    assert '"id": "s4"' in second and '"id": "s0"' not in second


# -- script.md -----------------------------------------------------------------------------------


def test_render_script_markdown_exact_format():
    draft = ScriptDraft(
        title="Volcanoes",
        sections=[
            SectionDraft(
                title="Beneath",
                sentences=[
                    SentenceDraft(
                        text="Magma rises.",
                        image_prompt="glowing | magma",
                        video_prompt="magma churns",
                        camera="zoom-in",
                        motion=0.6,
                        characters=["Ada", "Bob"],
                    ),
                    SentenceDraft(text="It cools\ninto rock.", camera="static", motion=0.0),
                ],
            ),
            SectionDraft(title="Eruption", sentences=[SentenceDraft(text="Boom.", motion=1.0)]),
        ],
    )
    assert render_script_markdown(draft) == (
        "# Volcanoes\n"
        "\n"
        "## Beneath\n"
        "Magma rises.\n"
        "> image: glowing / magma\n"
        "> video: magma churns\n"
        "> camera: zoom-in | motion: 0.6\n"
        "> characters: Ada, Bob\n"
        "It cools into rock.\n"
        "> camera: static | motion: 0\n"
        "\n"
        "## Eruption\n"
        "Boom.\n"
        "> camera: static | motion: 1\n"
    )
    assert LLMResource().render_script_markdown(draft) == render_script_markdown(draft)


def test_rendered_script_reads_back_with_the_studio_parser(server):
    script = pytest.importorskip("videogen_domain.script")
    draft = llm(server).write_script(brief(minutes=1))
    parsed = script.parse_script(render_script_markdown(draft))
    sentences = [s for sec in draft.sections for s in sec.sentences]
    assert [p.text for p in parsed.sentences] == [s.text for s in sentences]
    for p, s in zip(parsed.sentences, sentences, strict=True):
        assert p.directives.camera == s.camera
        assert p.directives.motion == pytest.approx(s.motion)
        assert p.directives.image_prompt == s.image_prompt
        assert list(p.directives.characters) == s.characters


# -- sources -------------------------------------------------------------------------------------


class PageServer(ServerThread):
    def build_app(self) -> web.Application:
        app = web.Application()

        async def page(request: web.Request) -> web.Response:
            return web.Response(
                text="<html><head><title>Volcano facts</title><style>p{}</style></head><body>"
                "<script>var secret = 1;</script><h1>Magma</h1><p>Magma is molten rock.</p>"
                "<p>Lava is magma &amp; it flows.</p></body></html>",
                content_type="text/html",
            )

        async def big(request: web.Request) -> web.Response:
            return web.Response(text="lava " * 100_000, content_type="text/plain")

        async def image(request: web.Request) -> web.Response:
            return web.Response(body=b"\x89PNG....", content_type="image/png")

        app.router.add_get("/page", page)
        app.router.add_get("/big", big)
        app.router.add_get("/image", image)
        return app

    async def fault_response(self, fault: Fault, request: web.Request) -> None:
        return None


def test_gather_sources_reads_files_and_pages_without_sending_the_key(tmp_path):
    (tmp_path / "notes.md").write_text("# Notes\nPlinian eruptions are violent.", "utf-8")
    (tmp_path / "saved.html").write_text("<p>Saved <b>page</b></p>", "utf-8")
    resource = LLMResource(api_key=KEY, source_max_bytes=50_000, source_max_chars=1000)
    with PageServer() as pages:
        sources = resource.gather_sources(
            ["notes.md", str(tmp_path / "saved.html"), f"{pages.url}/page", f"{pages.url}/big"],
            base_dir=tmp_path,
        )
        assert all(r.header("Authorization") is None for r in pages.requests)
        with pytest.raises(ServiceError, match="image/png"):
            resource.gather_sources([f"{pages.url}/image"])
        with pytest.raises(ServiceError) as info:
            resource.gather_sources([f"{pages.url}/missing"])
        assert info.value.status == 404
    notes, saved, page, big = sources
    assert (notes.kind, notes.text) == ("file", "# Notes\nPlinian eruptions are violent.")
    assert saved.text == "Saved page"
    assert page.kind == "url" and page.title == "Volcano facts"
    assert page.text == "Magma\nMagma is molten rock.\nLava is magma & it flows."
    assert big.truncated and len(big.text) == 1000
    with pytest.raises(InputError, match=r"nowhere\.md"):
        resource.gather_sources(["nowhere.md"], base_dir=tmp_path)


# -- inside Dagster ------------------------------------------------------------------------------


def test_works_as_a_dagster_resource_with_the_key_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)

    @dg.asset
    def script(llm: LLMResource) -> dg.MaterializeResult:
        draft = llm.write_script(brief(minutes=1))
        return dg.MaterializeResult(
            metadata={"words": draft.word_count, **draft.usage.model_dump()}
        )

    resource = LLMResource(base_url=server.url, api_key=dg.EnvVar("DEEPSEEK_API_KEY"))
    result = dg.materialize([script], resources={"llm": resource})
    assert result.success
    assert server.requests[0].header("Authorization") == f"Bearer {KEY}"
    (mat,) = result.asset_materializations_for_node("script")
    assert KEY not in str(mat.metadata)
    assert mat.metadata["total_tokens"].value > 0

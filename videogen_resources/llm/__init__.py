"""Scripts and shot prompts from an OpenAI-compatible chat-completions server.

``client`` holds the resource and its one remote operation (on the shared HTTP base),
``writing`` the script and shot drafts, prompts and script.md rendering, ``sources`` the
reading of local files and web pages for grounding, ``scriptwriter`` the writing of a
project's script file, ``messages`` the chat values they share.
"""

from videogen_resources.llm.client import DEEPSEEK_BASE_URL, LLMResource
from videogen_resources.llm.messages import ChatMessage, ChatReply, LLMUsage
from videogen_resources.llm.sources import Source, SourceReader, html_to_text
from videogen_resources.llm.writing import (
    SERVER_TOOLS,
    WORDS_PER_MINUTE,
    CastMember,
    ScriptBrief,
    ScriptDraft,
    SectionDraft,
    SentenceDraft,
    ShotDraft,
    ShotRequest,
    render_script_markdown,
)

__all__ = [
    "DEEPSEEK_BASE_URL",
    "SERVER_TOOLS",
    "WORDS_PER_MINUTE",
    "CastMember",
    "ChatMessage",
    "ChatReply",
    "LLMResource",
    "LLMUsage",
    "ScriptBrief",
    "ScriptDraft",
    "SectionDraft",
    "SentenceDraft",
    "ShotDraft",
    "ShotRequest",
    "Source",
    "SourceReader",
    "html_to_text",
    "render_script_markdown",
]

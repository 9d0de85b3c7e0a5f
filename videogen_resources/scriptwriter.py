"""Writing a project's script with the LLM, without ever overwriting the creator's script.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from videogen_domain import paths
from videogen_domain.atomic import atomic_write_text
from videogen_domain.errors import InputError
from videogen_domain.project import ProjectBrief
from videogen_domain.script import parse_script
from videogen_resources.llm import CastMember, LLMResource, ScriptBrief

DRAFT_FILE = "script.draft.md"


@dataclass
class ScriptWriteResult:
    """Where the LLM's script went and what it cost."""

    path: Path
    is_draft: bool  # True: written beside an existing script.md, which was left untouched
    words: int
    sentences: int
    sections: int
    model: str
    sources: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def write_script(
    llm: LLMResource,
    brief: ProjectBrief,
    project_dir: Path,
    *,
    cast: dict[str, str] | None = None,
    replace: bool = False,
) -> ScriptWriteResult:
    """Ask the LLM for a script of the brief's length and style.

    It lands as ``script.md`` when the project has none. When ``script.md`` exists it is the
    creator's and is never overwritten: the new text goes to ``script.draft.md`` beside it,
    unless ``replace`` (an explicit act) — then the old script is kept as ``script.md.bak``.
    """
    if not llm.is_configured:
        raise InputError(
            "no LLM is configured: set DEEPSEEK_API_KEY (or LLM_BASE_URL for a local server), "
            "or write script.md yourself",
            field="llm",
        )
    sources = llm.gather_sources(brief.sources, base_dir=project_dir) if brief.sources else []
    request = ScriptBrief(
        title=brief.title,
        topic=brief.topic or brief.title,
        minutes=brief.minutes,
        style=brief.style,
        cast=[CastMember(name=n, description=d) for n, d in (cast or {}).items()],
        sources=sources,
        grounding=brief.grounding,
    )
    draft = llm.write_script(request)
    text = llm.render_script_markdown(draft)
    parsed = parse_script(text, file="(LLM reply)")  # refuse a reply the studio cannot read
    script_path = project_dir / paths.SCRIPT_FILE
    if script_path.exists() and not replace:
        target, is_draft = project_dir / DRAFT_FILE, True
    else:
        if script_path.exists():
            atomic_write_text(project_dir / "script.md.bak", script_path.read_text("utf-8"))
        target, is_draft = script_path, False
    atomic_write_text(target, text)
    usage = getattr(draft, "usage", None)
    return ScriptWriteResult(
        path=target,
        is_draft=is_draft,
        words=sum(len(s.text.split()) for s in parsed.sentences),
        sentences=len(parsed.sentences),
        sections=len(parsed.sections),
        model=getattr(draft, "model", None) or llm.model,
        sources=list(getattr(draft, "sources", []) or []),
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )

"""Which backends serve the studio, chosen by configuration (environment variables).

Nothing here is read at import time: `videogen_assets.definitions` calls `BackendSettings.from_env`
when it builds the Definitions, and tests pass settings explicitly.

- ``VIDEOGEN_TTS``: ``piper`` (default), ``espeak`` or ``chatterbox``.
- ``CHATTERBOX_URL``, ``CHATTERBOX_API`` (``openai`` or ``devnen``), ``VIDEOGEN_VOICE``.
- ``COMFYUI_URL``: one or more ComfyUI servers, comma separated (keyframes and clips).
- ``VIDEOGEN_KEYFRAMES`` (``comfyui`` or ``cards``), ``VIDEOGEN_CLIPS`` (``comfyui`` or
  ``kenburns``): the engine of that kind for every project, over each project's
  ``keyframes:`` / ``clips:`` (see `videogen_resources.engines`).
- ``DEEPSEEK_API_KEY`` (or ``LLM_API_KEY``): enables the LLM; the key is never logged.
- ``LLM_BASE_URL`` / ``LLM_MODEL``: any OpenAI-compatible server (e.g. Ollama) and model id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel, Field

from videogen.errors import InputError

KEYFRAME_ENGINES = ("comfyui", "cards")
CLIP_ENGINES = ("comfyui", "kenburns")


def _engine_env(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    if value not in allowed:
        raise InputError(
            f"unknown engine {value!r}; use {' or '.join(allowed)} (or leave it unset)",
            field=name,
        )
    return value


class BackendSettings(BaseModel):
    """The backend choice for one studio."""

    tts: Literal["piper", "espeak", "chatterbox"] = "piper"
    voice: str | None = None
    chatterbox_url: str | None = None
    chatterbox_api: Literal["openai", "devnen"] = "openai"
    comfyui_urls: list[str] = Field(default_factory=list)
    keyframes: Literal["comfyui", "cards"] | None = None  # the run's choice, over project.yaml
    clips: Literal["comfyui", "kenburns"] | None = None
    llm_base_url: str | None = None
    llm_model: str = "deepseek-flash"
    llm_key_env: str | None = None  # the NAME of the env var holding the key, never the key
    media_base_url: str | None = None
    clip_preset: str = "veryfast"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackendSettings:
        """Read the settings from environment variables (see the module docstring)."""
        env = os.environ if env is None else env
        tts = env.get("VIDEOGEN_TTS", "").strip().lower()
        if not tts:
            tts = "chatterbox" if env.get("CHATTERBOX_URL") else "piper"
        urls = [u.strip() for u in env.get("COMFYUI_URL", "").split(",") if u.strip()]
        key_env = None
        for name in ("DEEPSEEK_API_KEY", "LLM_API_KEY"):
            if env.get(name):
                key_env = name
                break
        return cls(
            tts=tts,  # type: ignore[arg-type]
            voice=env.get("VIDEOGEN_VOICE") or None,
            chatterbox_url=env.get("CHATTERBOX_URL") or None,
            chatterbox_api=(env.get("CHATTERBOX_API") or "openai"),  # type: ignore[arg-type]
            comfyui_urls=urls,
            keyframes=_engine_env(env, "VIDEOGEN_KEYFRAMES", KEYFRAME_ENGINES),  # type: ignore[arg-type]
            clips=_engine_env(env, "VIDEOGEN_CLIPS", CLIP_ENGINES),  # type: ignore[arg-type]
            llm_base_url=env.get("LLM_BASE_URL") or None,
            llm_model=env.get("LLM_MODEL") or "deepseek-flash",
            llm_key_env=key_env,
            media_base_url=env.get("VIDEOGEN_MEDIA_URL") or None,
            clip_preset=env.get("VIDEOGEN_CLIP_PRESET") or "veryfast",
        )

    @property
    def uses_gpu_server(self) -> bool:
        """True when ComfyUI servers are configured (by default keyframes and clips use them)."""
        return bool(self.comfyui_urls)

    def keyframe_engine(self, project_choice: str | None = None) -> str:
        """The keyframe engine of a project: the run's choice, the project's, the default."""
        default = "comfyui" if self.comfyui_urls else "cards"
        return self.keyframes or project_choice or default

    def clip_engine(self, project_choice: str | None = None) -> str:
        """The clip engine of a project: the run's choice, the project's, the default."""
        default = "comfyui" if self.comfyui_urls else "kenburns"
        return self.clips or project_choice or default


def build_resources(
    settings: BackendSettings, root: Path, briefs: Sequence[Any] = ()
) -> dict[str, Any]:
    """The resources of a studio: embedded defaults unless a service is configured.

    ``briefs`` (the projects' `ProjectBrief`s) give each project's keyframe and clip engine.
    """
    from videogen_resources.database import StudioDatabase
    from videogen_resources.llm import LLMResource
    from videogen_resources.studio import StudioResource

    narrator: Any
    if settings.tts == "chatterbox":
        from videogen_resources.chatterbox import ChatterboxNarrator

        if not settings.chatterbox_url:
            raise ValueError("VIDEOGEN_TTS=chatterbox needs CHATTERBOX_URL")
        narrator = ChatterboxNarrator(
            base_url=settings.chatterbox_url, api=settings.chatterbox_api, voice=settings.voice
        )
    elif settings.tts == "espeak":
        from videogen_resources.embedded.espeak import EspeakNarrator

        narrator = EspeakNarrator()
    else:
        from videogen_resources.embedded.piper import PiperNarrator

        narrator = PiperNarrator()

    from videogen_resources.comfyui import ComfyUIResource
    from videogen_resources.comfyui_makers import ComfyUIClips, ComfyUIKeyframes
    from videogen_resources.embedded.cards import CardKeyframes
    from videogen_resources.embedded.kenburns import KenBurnsClips
    from videogen_resources.engines import ClipEngines, KeyframeEngines

    # Every engine is there; each project's choice is resolved here, once, so the code
    # versions the Definitions give its assets and the maker its runs use always agree.
    from videogen_resources.workflows import studio_workflows

    comfy = ComfyUIResource(urls=settings.comfyui_urls)
    overlay = str(studio_workflows(root))  # the studio's own workflows, over the shipped ones
    keyframes = KeyframeEngines(
        cards=CardKeyframes(),
        comfyui=ComfyUIKeyframes(comfyui=comfy, workflows_dir=overlay),
        default=settings.keyframe_engine(),  # type: ignore[arg-type]
        projects={b.name: settings.keyframe_engine(b.keyframes) for b in briefs},
    )
    clips = ClipEngines(
        kenburns=KenBurnsClips(preset=settings.clip_preset),
        comfyui=ComfyUIClips(comfyui=comfy, workflows_dir=overlay),
        default=settings.clip_engine(),  # type: ignore[arg-type]
        projects={b.name: settings.clip_engine(b.clips) for b in briefs},
    )

    llm_kwargs: dict[str, Any] = {"model": settings.llm_model}
    if settings.llm_base_url:
        llm_kwargs["base_url"] = settings.llm_base_url
    if settings.llm_key_env:
        llm_kwargs["api_key"] = dg.EnvVar(settings.llm_key_env)
    return {
        "studio": StudioResource(root=str(root), media_base_url=settings.media_base_url),
        "db": StudioDatabase.for_studio(root),
        "narrator": narrator,
        "keyframes": keyframes,
        "clips": clips,
        "llm": LLMResource(**llm_kwargs),
    }

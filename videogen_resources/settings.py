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

from videogen_domain.errors import InputError
from videogen_resources.errors import ServiceError
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase

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
        """Read the settings from environment variables (see the module docstring).

        Raises:
            InputError: naming the variable, for a value that cannot work (an unknown engine,
                a URL that is not an http(s) URL, an impossible voice name).
        """
        env = os.environ if env is None else env
        tts = env.get("VIDEOGEN_TTS", "").strip().lower()
        if not tts:
            tts = "chatterbox" if env.get("CHATTERBOX_URL") else "piper"
        if tts not in TTS_ENGINES:
            raise InputError(
                f"unknown TTS engine {env.get('VIDEOGEN_TTS', '')!r}; use one of "
                f"{', '.join(TTS_ENGINES)}",
                field="VIDEOGEN_TTS",
            )
        api = (env.get("CHATTERBOX_API") or "openai").strip().lower()
        if api not in ("openai", "devnen"):
            raise InputError(
                f"unknown Chatterbox API {env.get('CHATTERBOX_API', '')!r}; use openai "
                "(chatterbox-tts-api) or devnen (Chatterbox-TTS-Server)",
                field="CHATTERBOX_API",
            )
        for var in ("CHATTERBOX_URL", "LLM_BASE_URL"):
            if env.get(var, "").strip():
                check_url(env[var].strip(), var)
        if tts == "chatterbox" and not env.get("CHATTERBOX_URL", "").strip():
            raise InputError(
                "VIDEOGEN_TTS=chatterbox needs the server's URL; set CHATTERBOX_URL "
                "(e.g. http://127.0.0.1:4123)",
                field="CHATTERBOX_URL",
            )
        if env.get("VIDEOGEN_VOICE"):
            check_voice_name(env["VIDEOGEN_VOICE"], field="VIDEOGEN_VOICE")
        urls = [u.strip() for u in env.get("COMFYUI_URL", "").split(",") if u.strip()]
        for url in urls:
            check_url(url, "COMFYUI_URL")
        key_env = None
        for name in ("DEEPSEEK_API_KEY", "LLM_API_KEY"):
            if env.get(name):
                key_env = name
                break
        return cls(
            tts=tts,  # type: ignore[arg-type]
            voice=(env.get("VIDEOGEN_VOICE") or "").strip() or None,
            chatterbox_url=(env.get("CHATTERBOX_URL") or "").strip() or None,
            chatterbox_api=api,  # type: ignore[arg-type]
            comfyui_urls=urls,
            keyframes=_engine_env(env, "VIDEOGEN_KEYFRAMES", KEYFRAME_ENGINES),  # type: ignore[arg-type]
            clips=_engine_env(env, "VIDEOGEN_CLIPS", CLIP_ENGINES),  # type: ignore[arg-type]
            llm_base_url=(env.get("LLM_BASE_URL") or "").strip() or None,
            llm_model=env.get("LLM_MODEL") or "deepseek-flash",
            llm_key_env=key_env,
            media_base_url=env.get("VIDEOGEN_MEDIA_URL") or None,
            clip_preset=env.get("VIDEOGEN_CLIP_PRESET") or "veryfast",
        )

    def keyframe_engine(self, project_choice: str | None = None) -> str:
        """The keyframe engine of a project: the run's choice, the project's, the default."""
        default = "comfyui" if self.comfyui_urls else "cards"
        return self.keyframes or project_choice or default

    def clip_engine(self, project_choice: str | None = None) -> str:
        """The clip engine of a project: the run's choice, the project's, the default."""
        default = "comfyui" if self.comfyui_urls else "kenburns"
        return self.clips or project_choice or default


TTS_ENGINES = ("piper", "espeak", "chatterbox")
VOICE_MAX = 120
"""The longest voice name: engines' names are short ("en-us+f3", "joe", "Emily.wav")."""


def check_url(url: str, field: str) -> str:
    """``url`` if it is an http(s) URL with a host (and a port in range), else InputError."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(
            f"{url!r} is not a valid URL ({exc}); write it like http://127.0.0.1:8188",
            field=field,
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"{url!r} is not an http(s) URL; write it like http://127.0.0.1:8188", field=field
        )
    if port == 0:
        raise InputError(f"{url!r} has port 0; give the server's port", field=field)
    return url


def check_voice_name(voice: str, *, field: str = "voice") -> str:
    """``voice`` stripped, refusing what no engine names a voice (too long, control chars)."""
    clean = voice.strip()
    if len(clean) > VOICE_MAX or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in clean):
        shown = clean if len(clean) <= 40 else clean[:40] + "..."
        raise InputError(
            f"invalid voice {shown!r} ({len(clean)} characters): a voice name has at most "
            f"{VOICE_MAX} characters and no control characters; see `videogen voices`",
            field=field,
        )
    return clean


def _reachable(url: str, timeout_s: float) -> str | None:
    """None if a TCP connection to ``url``'s host and port opens, else the reason."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def check_reachable(settings: BackendSettings, *, timeout_s: float = 3.0) -> None:
    """Refuse to start a render whose configured servers do not answer (one line, naming the
    variable): better now than after the first sentences were made."""
    targets = [("COMFYUI_URL", u) for u in settings.comfyui_urls]
    if settings.tts == "chatterbox" and settings.chatterbox_url:
        targets.append(("CHATTERBOX_URL", settings.chatterbox_url))
    if settings.llm_key_env and settings.llm_base_url:
        targets.append(("LLM_BASE_URL", settings.llm_base_url))
    for var, url in targets:
        why = _reachable(url, timeout_s)
        if why is not None:
            raise InputError(
                f"cannot reach {url} ({why}); start the server or fix {var}", field=var
            )


def list_voices(settings: BackendSettings) -> list[tuple[str, str]]:
    """The voices of the configured TTS engine: ``(name to use, description)``.

    Raises ServiceError when a TTS server cannot be asked.
    """
    if settings.tts == "chatterbox":
        # lazy: start-up time (every command reads the settings; the engines load only here)
        from videogen_resources.chatterbox import ChatterboxNarrator

        assert settings.chatterbox_url is not None
        tts = ChatterboxNarrator(
            base_url=settings.chatterbox_url, api=settings.chatterbox_api, max_retries=0
        )
        return [(v.id, v.name if v.name != v.id else "") for v in tts.voices()]
    # lazy: start-up time (every command reads the settings; the engines load only here)
    from videogen_resources.embedded.espeak import list_voices as espeak_voices

    out: list[tuple[str, str]] = []
    if settings.tts == "piper":
        # lazy: start-up time (every command reads the settings; the engines load only here)
        from videogen_resources.embedded.piper import PIPER_VOICE

        out.append((PIPER_VOICE, "Piper neural voice (bundled, the default)"))
    for v in espeak_voices():
        ident = v.identifier.rsplit("/", 1)[-1]
        out.append((ident, f"eSpeak NG: {v.name}"))
    return out


def voice_known(settings: BackendSettings, voice: str) -> bool | None:
    """Whether the configured engine has ``voice`` (None: the engine could not be asked).

    eSpeak NG accepts variants (``en-us+f3``): those are asked of the engine itself.
    """
    try:
        names = {name.casefold() for name, _ in list_voices(settings)}
    except ServiceError:
        return None
    if voice.casefold() in names:
        return True
    if settings.tts == "chatterbox":
        return voice.startswith("clone:")
    # lazy: start-up time (every command reads the settings; the engines load only here)
    from videogen_resources.embedded.espeak import engine

    return engine().has_voice(voice)


def check_voice(settings: BackendSettings, voice: str | None, *, field: str = "voice") -> None:
    """Refuse a voice the configured engine does not have (a server that cannot be asked
    is not a reason to refuse: its voices are checked when it narrates)."""
    if not voice:
        return
    clean = check_voice_name(voice, field=field)
    if voice_known(settings, clean) is False:
        raise InputError(
            f"unknown voice {clean!r} for the {settings.tts} engine; see `videogen voices` "
            "for the voices you can use",
            field=field,
        )


def build_resources(
    settings: BackendSettings,
    root: Path,
    briefs: Sequence[Any] = (),
    *,
    studio_type: type[StudioResource] = StudioResource,
) -> dict[str, Any]:
    """The resources of a studio: embedded defaults unless a service is configured.

    ``briefs`` (the projects' `ProjectBrief`s) give each project's keyframe and clip engine;
    ``studio_type`` is the class of the ``studio`` resource (the graph's adds a step guard).
    """
    # lazy: start-up time (every command reads the settings; the engines load only here)
    from videogen_resources.comfyui import ComfyUIResource
    from videogen_resources.comfyui_makers import ComfyUIClips, ComfyUIKeyframes
    from videogen_resources.embedded.cards import CardKeyframes
    from videogen_resources.embedded.kenburns import KenBurnsClips
    from videogen_resources.engines import ClipEngines, KeyframeEngines
    from videogen_resources.llm import LLMResource
    from videogen_resources.workflows import studio_workflows

    narrator: Any
    if settings.tts == "chatterbox":
        # lazy: only the configured narrator loads (each pulls its own engine)
        from videogen_resources.chatterbox import ChatterboxNarrator

        if not settings.chatterbox_url:
            raise InputError(
                "VIDEOGEN_TTS=chatterbox needs the server's URL; set CHATTERBOX_URL",
                field="CHATTERBOX_URL",
            )
        narrator = ChatterboxNarrator(
            base_url=settings.chatterbox_url, api=settings.chatterbox_api, voice=settings.voice
        )
    elif settings.tts == "espeak":
        # lazy: only the configured narrator loads (each pulls its own engine)
        from videogen_resources.embedded.espeak import EspeakNarrator

        narrator = EspeakNarrator()
    else:
        # lazy: only the configured narrator loads (each pulls its own engine)
        from videogen_resources.embedded.piper import PiperNarrator

        narrator = PiperNarrator()

    # Every engine is there; each project's choice is resolved here, once, so the code
    # versions the Definitions give its assets and the maker its runs use always agree.
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
        "studio": studio_type(root=str(root), media_base_url=settings.media_base_url),
        "db": StudioDatabase.for_studio(root),
        "narrator": narrator,
        "keyframes": keyframes,
        "clips": clips,
        "llm": LLMResource(**llm_kwargs),
    }

"""Read a whole project (sentences, files, shots) into the ProjectView the outputs are made from."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from videogen_assets.context import CLIP, KEYFRAME, NARRATION, SHOT, read_shot, sentence_order
from videogen_assets.sentence_assets import SENTENCE_SPECS
from videogen_domain import paths
from videogen_domain.models import AssetStatus, ProjectItem, ProjectView, Shot
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase


def wav_frames(path: Path, fps: int) -> tuple[int, int]:
    """(narration milliseconds, clip frames) from a WAV header: frames = ceil(seconds * fps)."""
    from videogen_resources import audio  # numpy: kept out of the definitions' start-up

    n, sr = audio.wav_num_samples(path)
    return round(n * 1000 / sr), math.ceil(n * fps / sr - 1e-9)


def _mtime(path: Path) -> str | None:
    if not path.exists():
        return None
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat()


def project_view(
    studio: StudioResource,
    db: StudioDatabase,
    project: str,
    *,
    versions: dict[str, str] | None = None,
    statuses: dict[str, dict[str, AssetStatus]] | None = None,
) -> ProjectView:
    """The project's sentences in order with the media made so far."""
    brief = studio.brief(project)
    items: list[ProjectItem] = []
    for n, s in enumerate(sentence_order(db, project), start=1):
        folder = studio.sentence_dir(project, s.id)
        files = {spec.name: folder / spec.output for spec in SENTENCE_SPECS}
        narration, keyframe, clip, shot_file = (files[k] for k in (NARRATION, KEYFRAME, CLIP, SHOT))
        narration_ms = clip_frames = None
        if narration.exists():
            narration_ms, clip_frames = wav_frames(narration, brief.fps)
        shot: Shot | None = read_shot(shot_file) if shot_file.exists() else None
        status: dict[str, AssetStatus] = {
            kind: "done" if f.exists() else "missing" for kind, f in files.items()
        }
        if statuses and s.id in statuses:
            status.update(statuses[s.id])
        items.append(
            ProjectItem(
                index=n,
                sentence_id=s.id,
                section=s.section,
                section_slug=paths.slugify(s.section, sep="-", max_len=30) or "section",
                text=s.text,
                narration=str(narration) if narration.exists() else None,
                keyframe=str(keyframe) if keyframe.exists() else None,
                clip=str(clip) if clip.exists() else None,
                narration_ms=narration_ms,
                clip_frames=clip_frames,
                shot=shot,
                workflow_versions=dict(versions or {}),
                updated_at=_mtime(clip) or _mtime(keyframe) or _mtime(narration),
                status=status,
            )
        )
    return ProjectView(
        name=brief.name,
        title=brief.title,
        topic=brief.topic,
        style=brief.style,
        fps=brief.fps,
        start_timecode=brief.start_timecode,
        items=items,
    )

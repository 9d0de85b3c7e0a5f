"""The per-project outputs: rough cut, subtitles, storyboard and the NLE export."""

import time
from collections.abc import Sequence

import dagster as dg

from videogen_assets.context import (
    CLIP,
    EXPORT,
    KEYFRAME,
    NARRATION,
    ROUGH_CUT,
    SCRIPT,
    SHOT,
    STORYBOARD,
    SUBTITLES,
    cast_of,
    file_digest,
    key,
    sentence_order,
)
from videogen_assets.dagster_internals import asset_graph_from_assets
from videogen_assets.export import (
    ExportError,
    narration_loudness,
    refuse_during_runs,
    write_export,
)
from videogen_assets.previews import (
    MediaLinks,
    image_preview,
    preview_path,
    safe_preview,
    short_text,
    video_preview,
)
from videogen_assets.status import sentence_statuses
from videogen_assets.storyboard import contact_sheet, write_storyboard
from videogen_assets.views import project_view
from videogen_domain.atomic import atomic_write_text
from videogen_domain.chapters import CHAPTERS_FILE, plan_chapters, youtube_description
from videogen_domain.models import ProjectItem
from videogen_resources.llm import LLMResource
from videogen_resources.llm.scriptwriter import write_script
from videogen_resources.media import build_rough_cut, write_srt, write_vtt
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase


def _require_complete(view, what: str) -> None:  # type: ignore[no-untyped-def]
    missing = [i.sentence_id for i in view.items if getattr(i, what) is None]
    if missing:
        raise dg.Failure(
            f"{len(missing)} sentence(s) have no {what} yet: {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )
    if not view.items:
        raise dg.Failure("the project has no sentences yet")


def _project_links(studio: StudioResource, project: str) -> dict[str, dg.MetadataValue]:
    """``watch`` (the rough cut, when made) and ``storyboard`` links through the media server."""
    links = MediaLinks(studio.media_base_url, studio.root_path)
    folder = studio.project_dir(project)
    cut = folder / "rough_cut.mp4"
    out = {"watch": links.link(cut)} if cut.is_file() else {}
    out["storyboard"] = links.storyboard(folder)
    return out


def _sections(items: Sequence[ProjectItem], fps: int) -> list[tuple[str, float, float]]:
    """Each sentence's section with where its clip starts and ends in the rough cut."""
    out: list[tuple[str, float, float]] = []
    frames = 0
    for item in items:
        assert item.clip_frames is not None
        start = frames / fps
        frames += item.clip_frames
        out.append((item.section, start, frames / fps))
    return out


def _cues_markdown(cues: list[tuple[float, float, str]], limit: int = 3) -> str:
    """The first cues as a short markdown list (shown inline by the Dagster UI)."""
    lines = [f"- `{start:7.2f}s` {short_text(text, 60)}" for start, _, text in cues[:limit]]
    if len(cues) > limit:
        lines.append(f"- … {len(cues) - limit} more")
    return "\n".join(lines) or "-"


def build_project_assets(
    project: str,
    *,
    versions: dict[str, str],
    automation: dg.AutomationCondition | None,
    graph_assets: list[dg.AssetsDefinition | dg.SourceAsset] | None = None,
) -> list[dg.AssetsDefinition]:
    """The project-level assets of one project (each depends on all of ITS sentences only).

    ``graph_assets``: the project's whole asset list (filled in by the caller), from which the
    storyboard asks Dagster's staleness resolver for each sentence's status.
    """

    def _project_graph():  # type: ignore[no-untyped-def]
        return asset_graph_from_assets(graph_assets or [])

    k_narr, k_shot, k_key, k_clip = (key(project, n) for n in (NARRATION, SHOT, KEYFRAME, CLIP))
    k_rough, k_subs, k_board, k_export = (
        key(project, n) for n in (ROUGH_CUT, SUBTITLES, STORYBOARD, EXPORT)
    )

    @dg.asset(
        key=k_rough,
        deps=[k_clip, k_narr],
        group_name=project,
        kinds={"video", "ffmpeg"},
        automation_condition=automation,
        check_specs=[dg.AssetCheckSpec("audio_video_in_sync", asset=k_rough)],
    )
    def rough_cut(
        context: dg.AssetExecutionContext, studio: StudioResource, db: StudioDatabase
    ) -> dg.MaterializeResult:
        """The rough cut: every clip in script order with one continuous narration track."""
        view = project_view(studio, db, project)
        _require_complete(view, "clip")
        brief = studio.brief(project)
        out = studio.project_dir(project) / "rough_cut.mp4"
        chapters = plan_chapters(_sections(view.items, brief.fps))
        t0 = time.perf_counter()
        info = build_rough_cut(
            [i.clip for i in view.items],  # type: ignore[misc]
            [i.narration for i in view.items],  # type: ignore[misc]
            out,
            fps=brief.fps,
            loudness_target=brief.loudness_target,
            chapters=chapters,
        )
        chapters_txt = out.parent / CHAPTERS_FILE
        if chapters.chapters:
            atomic_write_text(chapters_txt, youtube_description(chapters))
        else:
            chapters_txt.unlink(missing_ok=True)  # (its own file: a script that lost sections)
        elapsed = time.perf_counter() - t0
        frame_s = 1.0 / brief.fps
        drift = abs(info.drift_s)
        links = MediaLinks(studio.media_base_url, studio.root_path)
        poster = safe_preview(
            context.log.warning,
            video_preview,
            out,
            preview_path(out.parent, "rough_cut.jpg"),
            at=0.1,
        )
        return dg.MaterializeResult(
            data_version=dg.DataVersion(file_digest(out)),
            metadata={
                **links.preview(poster, out, "rough cut"),
                "watch": links.link(out),
                "storyboard": links.storyboard(out.parent),
                "duration_s": round(info.video_duration_s, 3),
                "clips": len(view.items),
                "audio_s": round(info.audio_duration_s, 3),
                "video_copied": info.video_copied,
                "loudness_lufs": dg.FloatMetadataValue(info.loudness_lufs),
                "chapters": dg.MetadataValue.md(
                    "```\n" + youtube_description(chapters) + "```"
                    if chapters.chapters
                    else f"none: {chapters.why_none}"
                ),
                "build_s": round(elapsed, 2),
                "path": dg.MetadataValue.path(str(out)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="audio_video_in_sync",
                    passed=drift <= frame_s + 1e-6,
                    metadata={"drift_s": round(drift, 4), "one_frame_s": round(frame_s, 4)},
                    description="decoded audio and video lengths differ by at most one frame",
                )
            ],
        )

    @dg.asset(
        key=k_subs,
        deps=[k_narr],
        group_name=project,
        kinds={"text"},
        automation_condition=automation,
    )
    def subtitles(studio: StudioResource, db: StudioDatabase) -> dg.MaterializeResult:
        """Subtitles (SRT and WebVTT) timed by the narrations, one cue per sentence."""
        view = project_view(studio, db, project)
        _require_complete(view, "narration")
        brief = studio.brief(project)
        cues, t = [], 0.0
        for item in view.items:
            assert item.clip_frames is not None and item.narration_ms is not None
            start = t
            t += item.clip_frames / brief.fps
            cues.append((start, start + item.narration_ms / 1000.0, item.text))
        folder = studio.project_dir(project)
        write_srt(cues, folder / "subtitles.srt")
        write_vtt(cues, folder / "subtitles.vtt")
        return dg.MaterializeResult(
            data_version=dg.DataVersion(file_digest(folder / "subtitles.vtt")),
            metadata={
                "preview": dg.MetadataValue.md(_cues_markdown(cues)),
                **_project_links(studio, project),
                "cues": len(cues),
                "duration_s": round(t, 3),
                "srt": dg.MetadataValue.path(str(folder / "subtitles.srt")),
                "vtt": dg.MetadataValue.path(str(folder / "subtitles.vtt")),
            },
        )

    @dg.asset(
        key=k_board,
        deps=[k_key, k_clip, k_narr, k_shot],
        group_name=project,
        kinds={"html"},
        automation_condition=automation,
    )
    def storyboard(
        context: dg.AssetExecutionContext, studio: StudioResource, db: StudioDatabase
    ) -> dg.MaterializeResult:
        """The storyboard: every shot by section with its keyframe, narration, clip and prompts."""
        ids = [s.id for s in sentence_order(db, project)]
        # Dagster's own view of each sentence (missing / stale / done), not only the files
        statuses = sentence_statuses(context.instance, _project_graph(), project, ids)
        view = project_view(studio, db, project, statuses=statuses)
        folder = studio.project_dir(project)
        report = write_storyboard(view, folder)
        sheet = contact_sheet(view, folder / "storyboard_contact.png")
        links = MediaLinks(studio.media_base_url, studio.root_path)
        small = safe_preview(
            context.log.warning, image_preview, sheet, preview_path(folder, "storyboard.jpg")
        )
        cut = folder / "rough_cut.mp4"
        return dg.MaterializeResult(
            data_version=dg.DataVersion(file_digest(report.path)),
            metadata={
                **links.preview(small, report.path, "storyboard"),
                "open": links.link(report.path),
                **({"watch": links.link(cut)} if cut.is_file() else {}),
                "shots": len(view.items),
                "contact_sheet": links.link(sheet),
                "html": dg.MetadataValue.path(str(report.path)),
            },
        )

    @dg.asset(
        key=k_export,
        deps=[k_clip, k_key, k_narr, k_subs, k_rough],
        group_name=project,
        kinds={"fcpxml", "otio"},
        automation_condition=automation,
    )
    def export(
        context: dg.AssetExecutionContext, studio: StudioResource, db: StudioDatabase
    ) -> dg.MaterializeResult:
        """The NLE package: numbered media, metadata.json, subtitles and ready timelines."""
        view = project_view(studio, db, project, versions=versions)
        _require_complete(view, "clip")
        try:  # another run making this project's media: refuse rather than mix old and new
            refuse_during_runs(context.instance, project, exclude=[context.run_id])
        except ExportError as exc:
            raise dg.Failure(str(exc)) from exc
        folder = studio.project_dir(project)
        t0 = time.perf_counter()
        report = write_export(
            view,
            studio.export_dir(project),
            subtitles={"srt": folder / "subtitles.srt", "vtt": folder / "subtitles.vtt"},
            rough_cut=folder / "rough_cut.mp4",
            chapters=folder / CHAPTERS_FILE if (folder / CHAPTERS_FILE).is_file() else None,
            loudness_lufs=narration_loudness(
                context.instance, project, [i.sentence_id for i in view.items]
            ),
            before_swap=lambda: refuse_during_runs(
                context.instance, project, exclude=[context.run_id]
            ),
        )
        return dg.MaterializeResult(
            metadata={
                **_project_links(studio, project),
                "path": dg.MetadataValue.path(str(studio.export_dir(project))),
                "items": len(view.items),
                "files_written": len(report.written),
                "files_reused": len(report.reused),
                "export_s": round(time.perf_counter() - t0, 2),
            },
        )

    @dg.asset(key=key(project, SCRIPT), group_name=project, kinds={"markdown", "llm"})
    def script(
        studio: StudioResource, db: StudioDatabase, llm: LLMResource
    ) -> dg.MaterializeResult:
        """The script written by the LLM from the brief (never over a script you edited)."""
        brief = studio.brief(project)
        cast = {n: c.description for n, c in cast_of(db, studio, project).items()}
        res = write_script(llm, brief, studio.project_dir(project), cast=cast)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(file_digest(res.path)),
            metadata={
                "path": dg.MetadataValue.path(str(res.path)),
                "draft_beside_your_script": res.is_draft,
                "words": res.words,
                "target_words": round(brief.minutes * 150),
                "sentences": res.sentences,
                "sections": res.sections,
                "model": res.model,
                "sources": ", ".join(res.sources) or "-",
                "prompt_tokens": res.prompt_tokens,
                "completion_tokens": res.completion_tokens,
            },
        )

    return [script, rough_cut, subtitles, storyboard, export]

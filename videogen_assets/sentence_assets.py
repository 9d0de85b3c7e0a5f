"""The per-sentence chain: narration, shot, keyframe, clip (one partition per sentence)."""

import contextlib
import inspect
import itertools
import math
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from videogen_assets.batching import PartitionResults
from videogen_assets.cancel import run_cancel_check, stops_on_cancel
from videogen_assets.context import (
    CLIP,
    DIRECTION,
    KEYFRAME,
    NARRATION,
    SENTENCE,
    SHOT,
    cast_of,
    file_digest,
    key,
    load_sentence,
    read_shot,
)
from videogen_assets.partitions import sentence_partitions
from videogen_assets.previews import (
    MediaLinks,
    image_preview,
    preview_path,
    run_sentence_tags,
    safe_preview,
    sentence_facts,
    sentence_links,
    tag_single_sentence_run,
    video_preview,
    waveform_preview,
)
from videogen_domain.atomic import atomic_write_text
from videogen_domain.shots import rule_based_shot
from videogen_domain.styles import load_style
from videogen_resources.base import (
    CharacterRef,
    ClipJob,
    ClipMakerResource,
    ClipResult,
    ImageResult,
    KeyframeJob,
    KeyframeMakerResource,
    NarratorResource,
    maker_for,
)
from videogen_resources.comfyui_makers import generated_size, upscale_factor
from videogen_resources.errors import ServiceError
from videogen_resources.llm import LLMResource
from videogen_resources.media import audio_levels, probe, read_wav, wav_num_samples
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase

SHOT_RULES_VERSION = "rules-1"

_RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


def _links(studio: StudioResource) -> MediaLinks:
    return MediaLinks(studio.media_base_url, studio.root_path)


def _name_run(context: dg.AssetExecutionContext, db: StudioDatabase) -> None:
    """Tag a run over one sentence with that sentence's words and section (the Runs page)."""
    if len(context.partition_keys) == 1:
        with contextlib.suppress(dg.Failure):  # deleted meanwhile: the step says so itself
            s = load_sentence(db, context.partition_keys[0])
            tag_single_sentence_run(context, run_sentence_tags(s.id, s.text, s.section))


def _facts(db: StudioDatabase, sentence_id: str) -> dict[str, object]:
    """The sentence's metadata entries (none when it was deleted while its media was made)."""
    try:
        s = load_sentence(db, sentence_id)
    except dg.Failure:
        return {}
    return sentence_facts(s.id, s.text, s.section)


def _cancel_kwargs(method: Callable[..., Any], cancelled: Callable[[], bool]) -> dict[str, Any]:
    """``cancel_check=`` for makers that accept one (the remote ones); the abstract interface
    does not require it, so embedded makers are called without it."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return {}
    return {"cancel_check": cancelled} if "cancel_check" in params else {}


@contextlib.contextmanager
def _service_call(cancelled: Callable[[], bool] | None = None) -> Iterator[None]:
    """Turn a service failure that a retry cannot fix (a refused workflow, a timeout, a cancelled
    run) into a Dagster failure that is not retried; retryable ones propagate to the retry
    policy."""
    try:
        yield
    except ServiceError as exc:
        if cancelled is not None and cancelled():
            raise dg.Failure(description=f"run cancelled: {exc}", allow_retries=False) from exc
        if not exc.retryable:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        raise


_Job = TypeVar("_Job", KeyframeJob, ClipJob)
_Made = TypeVar("_Made", ImageResult, ClipResult)


def _made_one_by_one(
    jobs: Iterable[_Job],
    batch: Callable[[Iterable[_Job]], Iterator[_Made]] | None,
    one: Callable[[_Job], _Made],
    cancelled: Callable[[], bool],
) -> Generator[tuple[_Job, _Made, float], None, None]:
    """Each job with the maker's result and the seconds waited for it, in order, as each
    result arrives.

    ``batch`` (a maker's ``make_keyframes`` / ``make_clips``, when it has one) gets all jobs at
    once and keeps its service busy between them; otherwise ``one`` is called per job. Either
    way a service failure goes through `_service_call`, and jobs are built lazily, so a job that
    cannot be built fails after the ones before it were recorded.
    """
    if batch is None:
        for job in jobs:
            t0 = time.perf_counter()
            with _service_call(cancelled):
                res = one(job)
            yield job, res, time.perf_counter() - t0
        return
    built: list[_Job] = []

    def building() -> Iterator[_Job]:
        for job in jobs:
            built.append(job)
            yield job

    made = batch(building())
    try:
        for i in itertools.count():
            t0 = time.perf_counter()
            with _service_call(cancelled):
                got = next(made, None)
            if got is None:
                if i != len(built):
                    raise RuntimeError(f"the maker returned {i} results for {len(built)} jobs")
                return
            yield built[i], got, time.perf_counter() - t0
    finally:
        close = getattr(made, "close", None)
        if callable(close):
            close()  # a failure or an early stop takes any job still queued off the service


def service_metadata(engine: str, extra: Mapping[str, Any]) -> dict[str, str]:
    """A maker's ``extra`` facts as metadata named after its engine (``comfyui_prompt_id``,
    ``comfyui_server``, ``comfyui_seed``, ``comfyui_workflow_version``...)."""
    out: dict[str, str] = {}
    for k, v in extra.items():
        name = k if k.startswith(f"{engine}_") else f"{engine}_{k}"
        out[name] = str(v)
    return out


def build_sentence_assets(
    project: str,
    *,
    versions: dict[str, str],
    automation: dg.AutomationCondition | None,
    pools: dict[str, str],
    kinds: dict[str, set[str]],
) -> list[dg.AssetsDefinition]:
    """The four per-sentence assets of one project."""
    parts = sentence_partitions(project)
    k_sentence, k_direction = key(project, SENTENCE), key(project, DIRECTION)
    k_narr, k_shot, k_key, k_clip = (key(project, n) for n in (NARRATION, SHOT, KEYFRAME, CLIP))
    batch = dg.BackfillPolicy.single_run()

    def per_sentence(kind: str) -> dict[str, Any]:
        """What every per-sentence asset of this project declares alike."""
        return {
            "key": key(project, kind),
            "partitions_def": parts,
            "group_name": project,
            "kinds": kinds[kind],
            "code_version": versions[kind],
            "automation_condition": automation,
            "backfill_policy": batch,
            "retry_policy": _RETRY,
            "output_required": False,  # a batch logs each sentence's materialization itself
        }

    @dg.asset(
        **per_sentence(NARRATION),
        deps=[k_sentence],
        pool=pools[NARRATION],
        check_specs=[dg.AssetCheckSpec("audible", asset=k_narr)],
    )
    @stops_on_cancel
    def narration(
        context: dg.AssetExecutionContext,
        studio: StudioResource,
        db: StudioDatabase,
        narrator: NarratorResource,
    ):  # -> MaterializeResult for one partition, None for a batch
        """The narration of one sentence: a WAV spoken by the project's voice."""
        results = PartitionResults(context, parents=[(k_sentence, True)])
        _name_run(context, db)
        links = _links(studio)
        brief = studio.brief(project)
        cast = cast_of(db, studio, project)
        for pk in context.partition_keys:
            s = load_sentence(db, pk)
            speaker = cast.get(s.directives.speaker or "")
            voice = speaker.voice if speaker and speaker.voice else brief.voice
            out = studio.sentence_dir(project, pk) / "narration.wav"
            t0 = time.perf_counter()
            with _service_call():
                res = narrator.speak(
                    text=s.text, out_path=out, voice=voice, progress=context.log.info
                )
            elapsed = time.perf_counter() - t0
            samples, rate = read_wav(out)
            facts = audio_levels(samples, rate)
            wave = safe_preview(
                context.log.warning,
                waveform_preview,
                samples,
                preview_path(studio.project_dir(project), "narration.png", pk),
            )
            db.record_output(pk, audio_file=str(out), audio_duration=res.duration_ms)
            audible = not facts.silent and facts.clipped_fraction < 0.001
            results.add(
                pk,
                data_version=file_digest(out),
                metadata={
                    **sentence_facts(s.id, s.text, s.section),
                    **links.preview(wave, out, f"narration of {s.id}"),
                    **sentence_links(links, out.parent, studio.project_dir(project), pk),
                    "text": s.text,
                    "duration_ms": res.duration_ms,
                    "voice": res.voice,
                    "engine": res.engine,
                    "sample_rate": res.sample_rate,
                    "loudness_lufs": dg.FloatMetadataValue(res.loudness_lufs),
                    "true_peak_dbtp": dg.FloatMetadataValue(res.extra.get("true_peak_dbtp")),
                    "path": dg.MetadataValue.path(str(out)),
                    "synthesis_s": round(elapsed, 3),
                },
                check_results=[
                    dg.AssetCheckResult(
                        check_name="audible",
                        passed=bool(audible),
                        metadata={
                            "peak": float(facts.peak),
                            "rms_dbfs": float(facts.rms_dbfs or -120.0),
                            "clipped_fraction": float(facts.clipped_fraction),
                        },
                        description="narration is neither silent nor clipping",
                    )
                ],
            )
        yield from results.outputs()

    @dg.asset(
        **per_sentence(SHOT),
        deps=[k_sentence, k_direction],
    )
    @stops_on_cancel
    def shot(
        context: dg.AssetExecutionContext,
        studio: StudioResource,
        db: StudioDatabase,
        llm: LLMResource,
    ):  # -> MaterializeResult for one partition, None for a batch
        """The shot of one sentence: image and video prompts, camera movement, motion strength."""
        results = PartitionResults(context, parents=[(k_sentence, True), (k_direction, True)])
        _name_run(context, db)
        links = _links(studio)
        brief = studio.brief(project)
        style = load_style(brief.style)
        refs = cast_of(db, studio, project)
        cast = {name: c.description for name, c in refs.items()}
        sentences = [load_sentence(db, pk) for pk in context.partition_keys]
        drafts = {}
        if llm.is_configured:
            with _service_call():
                drafts = _llm_shots(llm, sentences, style.prompt_prefix, cast, context)
        for s in sentences:
            shot_ = rule_based_shot(
                sentence_id=s.id,
                text=s.text,
                section=s.section,
                index=s.order,
                prompt_prefix=style.prompt_prefix,
                prompt_suffix=style.prompt_suffix,
                negative_prompt=style.negative_prompt,
                default_camera=list(style.default_camera),
                default_motion=style.motion_strength,
                directives=s.directives,
                cast=cast,
            )
            draft = drafts.get(s.id)
            if draft is not None:
                shot_ = _merge_llm(shot_, draft, s.directives)
            in_frame = [refs[n] for n in shot_.characters if n in refs]
            if in_frame:
                shot_ = shot_.model_copy(update={"cast_fingerprint": _cast_fingerprint(in_frame)})
            out = studio.sentence_dir(project, s.id) / "shot.json"
            body = shot_.model_dump_json(indent=2)
            atomic_write_text(out, body)
            results.add(
                s.id,
                data_version=file_digest(out),
                metadata={
                    **sentence_facts(s.id, s.text, s.section),
                    **sentence_links(links, out.parent, studio.project_dir(project), s.id),
                    "image_prompt": shot_.image_prompt,
                    "video_prompt": shot_.video_prompt,
                    "camera_movement": shot_.camera_movement,
                    "motion_strength": shot_.motion_strength,
                    "characters": ", ".join(shot_.characters) or "-",
                    "seed": shot_.seed,
                    "source": shot_.source,
                },
            )
        yield from results.outputs()

    @dg.asset(
        **per_sentence(KEYFRAME),
        deps=[k_shot],
        pool=pools[KEYFRAME],
        check_specs=[
            dg.AssetCheckSpec("is_1920x1080", asset=k_key),
            dg.AssetCheckSpec(
                UPSCALE_CHECK, asset=k_key, description="generated at least half the final size"
            ),
        ],
    )
    @stops_on_cancel
    def keyframe(
        context: dg.AssetExecutionContext,
        studio: StudioResource,
        db: StudioDatabase,
        keyframes: KeyframeMakerResource,
    ):  # -> MaterializeResult for one partition, None for a batch
        """The keyframe of one sentence: a 1920x1080 PNG of its shot."""
        keyframes = maker_for(keyframes, project)  # the project's engine (mixed backends)
        results = PartitionResults(context, parents=[(k_shot, False)])
        _name_run(context, db)
        links = _links(studio)
        brief = studio.brief(project)
        cast = cast_of(db, studio, project)
        cancelled = run_cancel_check(context)
        partition_of: dict[Path, str] = {}

        def jobs() -> Iterator[KeyframeJob]:
            for pk in context.partition_keys:
                if cancelled():  # nothing more is queued once the run is being cancelled
                    raise dg.Failure(description="run cancelled", allow_retries=False)
                folder = studio.sentence_dir(project, pk)
                out = folder / "keyframe.png"
                if results.unchanged(pk, out):
                    results.keep(pk, [_keyframe_size_check(out)[0], _keyframe_upscale_check(out)])
                    continue
                s = load_sentence(db, pk)
                shot_ = read_shot(folder / "shot.json")
                partition_of[out] = pk
                yield KeyframeJob(
                    shot=shot_,
                    sentence_text=s.text,
                    section_title=s.section,
                    style=brief.style,
                    characters=[cast[n] for n in shot_.characters if n in cast],
                    out_path=out,
                    progress=_sentence_log(context, pk),
                    workflow=brief.image_workflow,
                    cancel_check=cancelled,
                )

        def one(job: KeyframeJob) -> ImageResult:
            return keyframes.make_keyframe(
                shot=job.shot,
                sentence_text=job.sentence_text,
                section_title=job.section_title,
                style=job.style,
                characters=job.characters,
                out_path=job.out_path,
                progress=job.progress,
                workflow=job.workflow,
                **_cancel_kwargs(keyframes.make_keyframe, cancelled),
            )

        batch = getattr(keyframes, "make_keyframes", None)
        with contextlib.closing(_made_one_by_one(jobs(), batch, one, cancelled)) as made:
            for job, res, _ in made:
                pk, shot_, out = partition_of[job.out_path], job.shot, job.out_path
                db.record_output(pk, image_file=str(out))
                size_check, size = _keyframe_size_check(out)
                small = safe_preview(
                    context.log.warning,
                    image_preview,
                    out,
                    preview_path(studio.project_dir(project), "keyframe.jpg", pk),
                )
                results.add(
                    pk,
                    data_version=file_digest(out),
                    metadata={
                        **sentence_facts(pk, job.sentence_text, job.section_title),
                        **links.preview(small, out, f"keyframe of {pk}"),
                        **sentence_links(links, out.parent, studio.project_dir(project), pk),
                        "image_prompt": shot_.image_prompt,
                        "seed": res.seed,
                        "engine": res.engine,
                        "workflow_version": res.workflow_version or "-",
                        "size": f"{size[0]}x{size[1]}",
                        "path": dg.MetadataValue.path(str(out)),
                        **service_metadata(res.engine, res.extra),
                    },
                    check_results=[size_check, _keyframe_upscale_check(out)],
                )
        yield from results.outputs()

    @dg.asset(
        **per_sentence(CLIP),
        deps=[k_key, k_narr, k_shot],
        pool=pools[CLIP],
        check_specs=[dg.AssetCheckSpec("matches_narration", asset=k_clip)],
    )
    @stops_on_cancel
    def clip(
        context: dg.AssetExecutionContext,
        studio: StudioResource,
        db: StudioDatabase,
        clips: ClipMakerResource,
    ):  # -> MaterializeResult for one partition, None for a batch
        """The clip of one sentence: an MP4 exactly as long as its narration, narration muxed."""
        clips = maker_for(clips, project)  # the project's engine (mixed backends)
        results = PartitionResults(
            context, parents=[(k_key, False), (k_narr, False), (k_shot, False)]
        )
        _name_run(context, db)
        links = _links(studio)
        brief = studio.brief(project)
        cancelled = run_cancel_check(context)
        partition_of: dict[Path, str] = {}

        def jobs() -> Iterator[ClipJob]:
            for pk in context.partition_keys:
                if cancelled():  # nothing more is queued once the run is being cancelled
                    raise dg.Failure(description="run cancelled", allow_retries=False)
                folder = studio.sentence_dir(project, pk)
                out = folder / "clip.mp4"
                if results.unchanged(pk, out):
                    results.keep(pk, [_clip_length_check(out, brief.fps)[0]])
                    continue
                partition_of[out] = pk
                yield ClipJob(
                    shot=read_shot(folder / "shot.json"),
                    keyframe=folder / "keyframe.png",
                    narration=folder / "narration.wav",
                    out_path=out,
                    progress=_sentence_log(context, pk),
                    workflow=brief.video_workflow,
                    cancel_check=cancelled,
                )

        def one(job: ClipJob) -> ClipResult:
            return clips.make_clip(
                shot=job.shot,
                keyframe=job.keyframe,
                narration=job.narration,
                out_path=job.out_path,
                progress=job.progress,
                workflow=job.workflow,
                **_cancel_kwargs(clips.make_clip, cancelled),
            )

        batch = getattr(clips, "make_clips", None)
        with contextlib.closing(_made_one_by_one(jobs(), batch, one, cancelled)) as made:
            for job, res, elapsed in made:
                pk, shot_, out = partition_of[job.out_path], job.shot, job.out_path
                db.record_output(pk, video_file=str(out), status="done")
                length_check, (frames, fps, narr_s) = _clip_length_check(out, brief.fps)
                poster = safe_preview(
                    context.log.warning,
                    video_preview,
                    out,
                    preview_path(studio.project_dir(project), "clip.jpg", pk),
                )
                results.add(
                    pk,
                    data_version=file_digest(out),
                    metadata={
                        **_facts(db, pk),
                        **links.preview(poster, out, f"clip of {pk}"),
                        **sentence_links(links, out.parent, studio.project_dir(project), pk),
                        "duration_s": round(frames / fps, 3) if fps else 0.0,
                        "frames": frames,
                        "fps": fps,
                        "narration_s": round(narr_s, 3),
                        "camera_movement": shot_.camera_movement,
                        "motion_strength": shot_.motion_strength,
                        "engine": res.engine,
                        "workflow_version": res.workflow_version or "-",
                        "encode_s": round(elapsed, 3),
                        "path": dg.MetadataValue.path(str(out)),
                        **service_metadata(res.engine, res.extra),
                    },
                    check_results=[length_check],
                )
        yield from results.outputs()

    return [narration, shot, keyframe, clip]


def _sentence_log(context: dg.AssetExecutionContext, partition: str) -> Callable[[str], None]:
    """A service's progress lines into the run's log, naming the sentence (`videogen.progress`
    and the Dagster UI show which sentence a ``step 4/6`` belongs to)."""

    def log(message: str) -> None:
        context.log.info(f"{message} [{partition}]")

    return log


def _keyframe_size_check(image: Path) -> tuple[dg.AssetCheckResult, tuple[int, int]]:
    """The keyframe's quality gate: 1920x1080 pixels."""
    from PIL import Image

    with Image.open(image) as im:
        size = im.size
    check = dg.AssetCheckResult(
        check_name="is_1920x1080",
        passed=size == (1920, 1080),
        metadata={"width": size[0], "height": size[1]},
    )
    return check, size


UPSCALE_CHECK = "upscaled_at_most_2x"
MAX_UPSCALE = 2.0


def _keyframe_upscale_check(image: Path) -> dg.AssetCheckResult:
    """A warning when the keyframe was generated much smaller than it is (a 64x64 model output
    stretched to 1920x1080 passes the size check but looks it): more than 2x enlarged."""
    from PIL import Image

    with Image.open(image) as im:
        final = im.size
    made = generated_size(image) or final
    factor = upscale_factor(made, final)
    return dg.AssetCheckResult(
        check_name=UPSCALE_CHECK,
        passed=factor <= MAX_UPSCALE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "generated_size": f"{made[0]}x{made[1]}",
            "final_size": f"{final[0]}x{final[1]}",
            "upscale": round(factor, 2),
        },
        description=f"generated at {made[0]}x{made[1]}, enlarged {factor:.1f}x "
        f"(warns above {MAX_UPSCALE:g}x: ask the workflow for a larger size)",
    )


def _clip_length_check(
    clip: Path, default_fps: int
) -> tuple[dg.AssetCheckResult, tuple[int, int, float]]:
    """The clip's quality gate: as many frames as its narration (beside it) lasts, within one;
    with the clip's frames, frame rate and the narration's seconds."""
    info = probe(clip, count="packets")  # H.264 in MP4: one packet per frame
    n_samples, rate = wav_num_samples(clip.parent / "narration.wav")
    fps = round(info.video.fps) if info.video else default_fps
    frames = info.video.frames if info.video else 0
    narr_s = n_samples / rate
    expected = math.ceil(narr_s * fps - 1e-6)
    check = dg.AssetCheckResult(
        check_name="matches_narration",
        passed=abs(frames - expected) <= 1,
        metadata={"frames": frames, "expected_frames": expected},
        description="clip length equals narration length within one frame",
    )
    return check, (frames, fps, narr_s)


def _cast_fingerprint(refs: Sequence[CharacterRef]) -> str:
    """A hash of the LoRAs and reference images of the characters in a shot."""
    import hashlib

    parts = []
    for r in refs:
        image = (
            file_digest(r.reference_image)
            if r.reference_image and r.reference_image.exists()
            else ""
        )
        parts.append(f"{r.name}|{r.lora}|{r.lora_strength}|{image}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _llm_shots(llm, sentences: Sequence, prefix: str, cast: dict[str, str], context) -> dict:  # type: ignore[no-untyped-def]
    payload = [{"id": s.id, "text": s.text, "section": s.section} for s in sentences]
    members = [{"name": name, "description": text} for name, text in cast.items()]
    drafts = llm.write_shots(sentences=payload, style_prompt_prefix=prefix, cast=members)
    context.log.info(f"LLM wrote {len(drafts)} shots")
    return drafts


def _merge_llm(shot_, draft, directives):  # type: ignore[no-untyped-def]
    update = {"source": "llm"}
    if not directives.image_prompt and getattr(draft, "image_prompt", None):
        update["image_prompt"] = draft.image_prompt
    if not directives.video_prompt and getattr(draft, "video_prompt", None):
        update["video_prompt"] = draft.video_prompt
    if not directives.camera and getattr(draft, "camera", None):
        update["camera_movement"] = draft.camera
    if directives.motion is None and getattr(draft, "motion", None) is not None:
        update["motion_strength"] = draft.motion
    return shot_.model_copy(update=update)


__all__ = ["build_sentence_assets"]

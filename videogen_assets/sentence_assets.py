"""The per-sentence chain: sentence/direction -> narration, shot -> keyframe -> clip.

Each per-sentence asset is one `SentenceAssetSpec` in `SENTENCE_SPECS` and one make function
here; `videogen_assets.specs.build_sentence_assets` turns the specs into Dagster assets. The
keyframe and the clip are one algorithm (`made_by_maker`): jobs for the project's maker, results
recorded as they arrive, parameterised by a `MakerRecipe`.
"""

import contextlib
import hashlib
import itertools
import math
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from videogen_assets.cancel import run_cancel_check
from videogen_assets.context import (
    CLIP,
    DIRECTION,
    KEYFRAME,
    NARRATION,
    SENTENCE,
    SHOT,
    SentenceInfo,
    file_digest,
    load_sentence,
    read_shot,
)
from videogen_assets.previews import (
    image_preview,
    preview_path,
    safe_preview,
    sentence_facts,
    sentence_links,
    video_preview,
    waveform_preview,
)
from videogen_assets.specs import (
    Check,
    Parent,
    ProjectSetup,
    SentenceAssetSpec,
    SentenceStep,
    render_order,
)
from videogen_domain.atomic import atomic_write_text
from videogen_domain.models import Directives, Shot
from videogen_domain.shots import rule_based_shot
from videogen_domain.styles import STYLES_DIR, StylePreset, load_style
from videogen_resources.base import (
    CharacterRef,
    ClipJob,
    ClipMakerResource,
    ClipResult,
    ImageResult,
    KeyframeJob,
    KeyframeMakerResource,
    SpeechJob,
)
from videogen_resources.comfyui_makers import generated_size, upscale_factor
from videogen_resources.errors import ServiceError
from videogen_resources.llm import LLMResource, ShotDraft
from videogen_store.database import StudioDatabase

SHOT_RULES_VERSION = "rules-1"


def style_version(style: str) -> str:
    """A short hash of a style preset's file ("none" for an unknown style)."""
    path = STYLES_DIR / f"{style}.yaml"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.exists() else "none"


def _facts(db: StudioDatabase, sentence_id: str) -> dict[str, object]:
    """The sentence's metadata entries (none when it was deleted while its media was made)."""
    try:
        s = load_sentence(db, sentence_id)
    except dg.Failure:
        return {}
    return sentence_facts(s.id, s.text, s.section)


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


def _made_in_turn(
    jobs: Iterable[Any],
    batch: Callable[[Iterable[Any]], Generator[Any, None, None]],
    cancelled: Callable[[], bool],
) -> Generator[tuple[Any, Any, float], None, None]:
    """Each job with the maker's result and the seconds waited for it, in order, as each
    result arrives.

    ``batch`` (a maker's ``make_keyframes`` / ``make_clips``) gets all jobs at once; a maker
    with a queue keeps its service busy between them. A service failure goes through
    `_service_call`, and jobs are built lazily, so a job that cannot be built fails after the
    ones before it were recorded.
    """
    built: list[Any] = []

    def building() -> Iterator[Any]:
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
        made.close()  # a failure or an early stop takes any job still queued off the service


def service_metadata(engine: str, extra: Mapping[str, Any]) -> dict[str, str]:
    """A maker's ``extra`` facts as metadata named after its engine (``comfyui_prompt_id``,
    ``comfyui_server``, ``comfyui_seed``, ``comfyui_workflow_version``...)."""
    out: dict[str, str] = {}
    for k, v in extra.items():
        name = k if k.startswith(f"{engine}_") else f"{engine}_{k}"
        out[name] = str(v)
    return out


# -- narration -------------------------------------------------------------------------------


def make_narration(step: SentenceStep) -> None:
    """The narration of each sentence: a WAV spoken by the project's voice (or the speaker's)."""
    from videogen_resources.audio import audio_levels, read_wav

    context, studio, db, results = step.context, step.studio, step.db, step.results
    project = step.project
    cast = step.cast
    for pk in step.partitions:
        s = load_sentence(db, pk)
        speaker = cast.get(s.directives.speaker or "")
        voice = speaker.voice if speaker and speaker.voice else step.brief.voice
        out = step.out(pk)
        t0 = time.perf_counter()
        with _service_call():
            res = step.maker.speak(
                SpeechJob(text=s.text, out_path=out, voice=voice, progress=context.log.info)
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
                **step.links.preview(wave, out, f"narration of {s.id}"),
                **sentence_links(step.links, out.parent, studio.project_dir(project), pk),
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


# -- shot ------------------------------------------------------------------------------------


def make_shot(step: SentenceStep) -> None:
    """The shot of each sentence: image and video prompts, camera movement, motion strength."""
    context, studio, db, llm = step.context, step.studio, step.db, step.maker
    project = step.project
    style = load_style(step.brief.style)
    refs = step.cast
    cast = {name: c.description for name, c in refs.items()}
    sentences = [load_sentence(db, pk) for pk in step.partitions]
    drafts: dict[str, ShotDraft] = {}
    if llm.is_configured:
        with _service_call():
            drafts = _llm_shots(llm, sentences, style.prompt_prefix, cast, context)
    for s in sentences:
        shot_ = shot_by_rules(s, style, cast)
        draft = drafts.get(s.id)
        if draft is not None:
            shot_ = _merge_llm(shot_, draft, s.directives)
        in_frame = [refs[n] for n in shot_.characters if n in refs]
        if in_frame:
            shot_ = shot_.model_copy(update={"cast_fingerprint": _cast_fingerprint(in_frame)})
        out = step.out(s.id)
        body = shot_.model_dump_json(indent=2)
        atomic_write_text(out, body)
        step.results.add(
            s.id,
            data_version=file_digest(out),
            metadata={
                **sentence_facts(s.id, s.text, s.section),
                **sentence_links(step.links, out.parent, studio.project_dir(project), s.id),
                "image_prompt": shot_.image_prompt,
                "video_prompt": shot_.video_prompt,
                "camera_movement": shot_.camera_movement,
                "motion_strength": shot_.motion_strength,
                "characters": ", ".join(shot_.characters) or "-",
                "seed": shot_.seed,
                "source": shot_.source,
            },
        )


def shot_by_rules(sentence: SentenceInfo, style: StylePreset, cast: Mapping[str, str]) -> Shot:
    """The shot of ``sentence`` written by the rules from ``style``, with its directives
    applied; ``cast``: the descriptions of the characters who may be in frame, by name."""
    return rule_based_shot(
        sentence_id=sentence.id,
        text=sentence.text,
        section=sentence.section,
        index=sentence.order,
        prompt_prefix=style.prompt_prefix,
        prompt_suffix=style.prompt_suffix,
        negative_prompt=style.negative_prompt,
        default_camera=list(style.default_camera),
        default_motion=style.motion_strength,
        directives=sentence.directives,
        cast=cast,
    )


# -- keyframe and clip: one algorithm, two recipes ----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MakerRecipe:
    """How a per-sentence asset made by a maker resource (keyframe, clip) drives its maker and
    what it records of each file made.

    ``job``: the maker's job for one sentence (given the run's cancel check); ``run``: the
    maker's batch method; ``stored``: the sentence's database fields for a made file;
    ``preview``: the preview maker (source, preview file) of the file; ``checks``: the check
    results of a file, made or kept as it was, with what they measured; ``facts``: the asset's
    own metadata entries of a made file (from its job, the maker's result, the seconds waited
    and what the checks measured).
    """

    job: Callable[[SentenceStep, str, Callable[[], bool]], Any]
    run: Callable[[Any], Callable[[Iterable[Any]], Generator[Any, None, None]]]
    stored: Callable[[Path], dict[str, str]]
    preview: Callable[[Path, Path], Path]
    checks: Callable[[SentenceStep, Path], tuple[list[dg.AssetCheckResult], Any]]
    facts: Callable[[Any, Any, float, Any], dict[str, Any]]


def made_by_maker(recipe: MakerRecipe) -> Callable[[SentenceStep], None]:
    """The make function of an asset made by the project's maker, one job per sentence.

    A sentence whose inputs came out unchanged in this run keeps its file (its checks run
    again); the others go to the maker as one batch, and each result is recorded as it
    arrives. Once the run is being cancelled, no more jobs are queued.
    """

    def make(step: SentenceStep) -> None:
        maker = step.maker.for_project(step.project)  # the project's engine (mixed backends)
        cancelled = run_cancel_check(step.context)
        partition_of: dict[int, str] = {}

        def jobs() -> Iterator[Any]:
            for pk in step.partitions:
                if cancelled():  # nothing more is queued once the run is being cancelled
                    raise dg.Failure(description="run cancelled", allow_retries=False)
                out = step.out(pk)
                if step.results.unchanged(pk, out):
                    step.results.keep(pk, recipe.checks(step, out)[0])
                    continue
                job = recipe.job(step, pk, cancelled)
                partition_of[id(job)] = pk
                yield job

        with contextlib.closing(_made_in_turn(jobs(), recipe.run(maker), cancelled)) as made:
            for job, res, elapsed in made:
                pk = partition_of[id(job)]
                metadata, checks = _made_record(recipe, step, pk, job, res, elapsed)
                step.results.add(
                    pk,
                    data_version=file_digest(job.out_path),
                    metadata=metadata,
                    check_results=checks,
                )

    return make


def _made_record(
    recipe: MakerRecipe, step: SentenceStep, pk: str, job: Any, res: Any, elapsed: float
) -> tuple[dict[str, Any], list[dg.AssetCheckResult]]:
    """Record a file the maker made (database, preview) and return its metadata and checks."""
    out, project_dir = job.out_path, step.studio.project_dir(step.project)
    step.db.record_output(pk, **recipe.stored(out))
    checks, measured = recipe.checks(step, out)
    name = step.spec.name
    preview = safe_preview(
        step.context.log.warning,
        recipe.preview,
        out,
        preview_path(project_dir, f"{name}.jpg", pk),
    )
    metadata = {
        **_facts(step.db, pk),
        **step.links.preview(preview, out, f"{name} of {pk}"),
        **sentence_links(step.links, out.parent, project_dir, pk),
        **recipe.facts(job, res, elapsed, measured),
        "path": dg.MetadataValue.path(str(out)),
        **service_metadata(res.engine, res.extra),
    }
    return metadata, checks


def _made_with(res: ImageResult | ClipResult) -> dict[str, str]:
    """The engine and workflow a maker made a file with."""
    return {"engine": res.engine, "workflow_version": res.workflow_version or "-"}


def _keyframe_job(step: SentenceStep, pk: str, cancelled: Callable[[], bool]) -> KeyframeJob:
    s = load_sentence(step.db, pk)
    shot_ = read_shot(step.file_of(pk, SHOT))
    cast = step.cast
    return KeyframeJob(
        shot=shot_,
        sentence_text=s.text,
        section_title=s.section,
        style=step.brief.style,
        characters=[cast[n] for n in shot_.characters if n in cast],
        out_path=step.out(pk),
        progress=_sentence_log(step.context, pk),
        workflow=step.brief.image_workflow,
        cancel_check=cancelled,
    )


def _keyframe_checks(
    step: SentenceStep, image: Path
) -> tuple[list[dg.AssetCheckResult], tuple[int, int]]:
    size_check, size = _keyframe_size_check(image)
    return [size_check, _keyframe_upscale_check(image)], size


def _keyframe_facts(
    job: KeyframeJob, res: ImageResult, elapsed: float, size: tuple[int, int]
) -> dict[str, Any]:
    return {
        "image_prompt": job.shot.image_prompt,
        "seed": res.seed,
        **_made_with(res),
        "size": f"{size[0]}x{size[1]}",
    }


def _make_keyframes(maker: KeyframeMakerResource) -> Callable[..., Generator[Any, None, None]]:
    return maker.make_keyframes


def _clip_job(step: SentenceStep, pk: str, cancelled: Callable[[], bool]) -> ClipJob:
    return ClipJob(
        shot=read_shot(step.file_of(pk, SHOT)),
        keyframe=step.parent_file(pk, 0),  # the clip's picture: its first parent's file
        narration=step.file_of(pk, NARRATION),
        out_path=step.out(pk),
        progress=_sentence_log(step.context, pk),
        workflow=step.brief.video_workflow,
        cancel_check=cancelled,
    )


def _clip_checks(
    step: SentenceStep, clip: Path
) -> tuple[list[dg.AssetCheckResult], tuple[int, int, float]]:
    length_check, measured = _clip_length_check(clip, step.brief.fps)
    return [length_check], measured


def _clip_facts(
    job: ClipJob, res: ClipResult, elapsed: float, measured: tuple[int, int, float]
) -> dict[str, Any]:
    frames, fps, narr_s = measured
    return {
        "duration_s": round(frames / fps, 3) if fps else 0.0,
        "frames": frames,
        "fps": fps,
        "narration_s": round(narr_s, 3),
        "camera_movement": job.shot.camera_movement,
        "motion_strength": job.shot.motion_strength,
        **_made_with(res),
        "encode_s": round(elapsed, 3),
    }


def _make_clips(maker: ClipMakerResource) -> Callable[..., Generator[Any, None, None]]:
    return maker.make_clips


KEYFRAMES = MakerRecipe(
    job=_keyframe_job,
    run=_make_keyframes,
    stored=lambda out: {"image_file": str(out)},
    preview=image_preview,
    checks=_keyframe_checks,
    facts=_keyframe_facts,
)
CLIPS = MakerRecipe(
    job=_clip_job,
    run=_make_clips,
    stored=lambda out: {"video_file": str(out), "status": "done"},
    preview=video_preview,
    checks=_clip_checks,
    facts=_clip_facts,
)


# -- what each project's assets declare (from its engines) ----------------------------------


def _narration_kinds(setup: ProjectSetup) -> set[str]:
    engine = {"piper": "piper", "espeak": "espeak", "chatterbox": "chatterbox"}
    return {"wav", engine[setup.settings.tts]}


def _shot_version(setup: ProjectSetup) -> str:
    llm = setup.resources["llm"]
    llm_v = llm.model if llm.is_configured else "none"
    return f"{SHOT_RULES_VERSION}-{style_version(setup.brief.style)}-{llm_v}"


def _engine(setup: ProjectSetup, resource: str) -> str:
    return str(setup.resources[resource].engine_for(setup.brief.name))


def _gpu_or_render(resource: str) -> Callable[[ProjectSetup], str | None]:
    def pool(setup: ProjectSetup) -> str | None:
        return "gpu" if _engine(setup, resource) == "comfyui" else "render"

    return pool


def _keyframe_version(setup: ProjectSetup) -> str:
    maker = setup.resources["keyframes"].maker(_engine(setup, "keyframes"))
    return f"{maker.version(setup.brief.image_workflow)}-{style_version(setup.brief.style)}"


def _clip_version(setup: ProjectSetup) -> str:
    maker = setup.resources["clips"].maker(_engine(setup, "clips"))
    return str(maker.version(setup.brief.video_workflow))


UPSCALE_CHECK = "upscaled_at_most_2x"
MAX_UPSCALE = 2.0

SENTENCE_SPECS: tuple[SentenceAssetSpec, ...] = (
    SentenceAssetSpec(
        name=NARRATION,
        description="The narration of one sentence: a WAV spoken by the project's voice.",
        parents=(Parent(SENTENCE, observed=True),),
        output="narration.wav",
        resource="narrator",
        make=make_narration,
        pool=lambda _: "tts",
        kinds=_narration_kinds,
        code_version=lambda setup: str(setup.resources["narrator"].version()),
        checks=(Check("audible"),),
        export="audio",
    ),
    SentenceAssetSpec(
        name=SHOT,
        description=(
            "The shot of one sentence: image and video prompts, camera movement, motion strength."
        ),
        parents=(Parent(SENTENCE, observed=True), Parent(DIRECTION, observed=True)),
        output="shot.json",
        resource="llm",
        make=make_shot,
        kinds=lambda setup: {"json", "llm" if setup.resources["llm"].is_configured else "python"},
        code_version=_shot_version,
    ),
    SentenceAssetSpec(
        name=KEYFRAME,
        description="The keyframe of one sentence: a 1920x1080 PNG of its shot.",
        parents=(Parent(SHOT),),
        output="keyframe.png",
        resource="keyframes",
        make=made_by_maker(KEYFRAMES),
        pool=_gpu_or_render("keyframes"),
        kinds=lambda s: {"png", "comfyui" if _engine(s, "keyframes") == "comfyui" else "pillow"},
        code_version=_keyframe_version,
        checks=(
            Check("is_1920x1080"),
            Check(UPSCALE_CHECK, "generated at least half the final size"),
        ),
        export="images",
    ),
    SentenceAssetSpec(
        name=CLIP,
        description=(
            "The clip of one sentence: an MP4 exactly as long as its narration, narration muxed."
        ),
        parents=(Parent(KEYFRAME), Parent(NARRATION), Parent(SHOT)),
        output="clip.mp4",
        resource="clips",
        make=made_by_maker(CLIPS),
        pool=_gpu_or_render("clips"),
        kinds=lambda s: {"mp4", "comfyui" if _engine(s, "clips") == "comfyui" else "ffmpeg"},
        code_version=_clip_version,
        checks=(Check("matches_narration"),),
        export="videos",
    ),
)
"""The per-sentence assets of every project (`specs.build_sentence_assets` builds them)."""

PER_SENTENCE: tuple[str, ...] = tuple(s.name for s in render_order(SENTENCE_SPECS))
"""The per-sentence asset names in render order (parents first)."""


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
    from videogen_resources.audio import wav_num_samples
    from videogen_resources.media import probe

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
    parts = []
    for r in refs:
        image = (
            file_digest(r.reference_image)
            if r.reference_image and r.reference_image.exists()
            else ""
        )
        parts.append(f"{r.name}|{r.lora}|{r.lora_strength}|{image}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _llm_shots(
    llm: LLMResource,
    sentences: Sequence[SentenceInfo],
    prefix: str,
    cast: dict[str, str],
    context: dg.AssetExecutionContext,
) -> dict[str, ShotDraft]:
    payload = [{"id": s.id, "text": s.text, "section": s.section} for s in sentences]
    members = [{"name": name, "description": text} for name, text in cast.items()]
    drafts = llm.write_shots(sentences=payload, style_prompt_prefix=prefix, cast=members)
    context.log.info(f"LLM wrote {len(drafts)} shots")
    return drafts


def _merge_llm(shot_: Shot, draft: ShotDraft, directives: Directives) -> Shot:
    update: dict[str, Any] = {"source": "llm"}
    if not directives.image_prompt and draft.image_prompt:
        update["image_prompt"] = draft.image_prompt
    if not directives.video_prompt and draft.video_prompt:
        update["video_prompt"] = draft.video_prompt
    if not directives.camera and draft.camera:
        update["camera_movement"] = draft.camera
    if directives.motion is None:
        update["motion_strength"] = draft.motion
    return shot_.model_copy(update=update)


__all__ = [
    "PER_SENTENCE",
    "SENTENCE_SPECS",
    "SHOT_RULES_VERSION",
    "shot_by_rules",
    "style_version",
]

"""Keyframes and clips made by ComfyUI workflows (the remote makers).

Each maker holds a ``ComfyUIResource`` and a workflow name from the workflow
registry (``videogen_resources.workflows``).
It binds the shot's prompt, negative prompt, seed, size, characters' LoRAs and reference image
(uploaded to the chosen server) into the workflow, checks that the server has every node the
workflow uses, runs it, and turns the output into the studio's file: a 1920x1080 PNG keyframe,
or a frame-exact clip conformed to the narration.

``make_keyframes`` / ``make_clips`` take a batch and keep the server's queue fed: job k+1 is
queued before job k is waited for, downloaded and converted, so the GPU never waits on this
process between two jobs (ComfyUI runs its queue one prompt at a time).
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field

from videogen_domain.atomic import atomic_path
from videogen_resources.base import (
    CharacterRef,
    ClipJob,
    ClipMakerResource,
    ClipResult,
    ImageResult,
    KeyframeJob,
    KeyframeMakerResource,
    ProgressFn,
)
from videogen_resources.comfyui import ComfyUIResource, QueuedJob, RunResult, parse_version
from videogen_resources.errors import ServiceError
from videogen_resources.workflows import Workflow, load_workflow, missing_nodes

ENGINE = "comfyui"

GENERATED_SIZE_KEY = "videogen:generated-size"
"""PNG text chunk of a keyframe that was generated at another size: ``<width>x<height>`` as the
model made it, before it was fitted to the keyframe's size (the file carries its own provenance,
so the upscale check holds for a keyframe kept from an earlier run too)."""


def generated_size(png: Path) -> tuple[int, int] | None:
    """The size a keyframe was generated at (its PNG text chunk), or None when it was made at
    its own size."""
    from PIL import Image

    with Image.open(png) as im:
        raw = getattr(im, "text", {}).get(GENERATED_SIZE_KEY) if im.format == "PNG" else None
    if not isinstance(raw, str):
        return None
    w, _, h = raw.partition("x")
    return (int(w), int(h)) if w.isdigit() and h.isdigit() and int(w) and int(h) else None


def upscale_factor(generated: tuple[int, int], final: tuple[int, int]) -> float:
    """How much a picture of size ``generated`` is enlarged to cover ``final`` (centre crop)."""
    return max(final[0] / generated[0], final[1] / generated[1])


def check_server_nodes(comfyui: ComfyUIResource, server: str, wf: Workflow) -> None:
    """Raise a clear error when ``server`` lacks nodes ``wf`` uses (object_info is cached)."""
    info = comfyui.object_info(server, cached=True)
    missing = missing_nodes(wf, info)
    if not missing:
        return
    try:
        version = comfyui.system_stats(server).comfyui_version
    except ServiceError:
        version = None
    have = f"it runs ComfyUI {version}" if version else "its version is unknown"
    older = bool(version) and parse_version(version) < parse_version(wf.min_comfyui_version)
    raise ServiceError(
        "comfyui",
        f"server {server} lacks node(s) {', '.join(missing)} used by workflow {wf.name!r}; "
        f"the workflow needs ComfyUI >= {wf.min_comfyui_version} ({have}"
        + ("; update ComfyUI" if older else "; install the nodes or update ComfyUI")
        + ")",
        retryable=False,
    )


def _lora_values(wf: Workflow, characters: Sequence[CharacterRef]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    n = 1
    for ch in characters:
        if not ch.lora:
            continue
        if not wf.has_slot(f"lora_{n}_name"):
            break
        values[f"lora_{n}_name"] = ch.lora
        if wf.has_slot(f"lora_{n}_strength"):
            values[f"lora_{n}_strength"] = ch.lora_strength
        n += 1
    return values


def _only_slots(wf: Workflow, values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if wf.has_slot(k) and v is not None}


def _extra(run: RunResult, wf: Workflow, seed: int) -> dict[str, Any]:
    return {
        "prompt_id": run.prompt_id,
        "server": run.server,
        "seed": seed,
        "workflow": wf.name,
        "workflow_version": wf.version,
        "progress": run.summary(),
        "comfyui_files": [o.filename for o in run.outputs],
    }


def _pick_output(run: RunResult, wf: Workflow) -> Path:
    for out, path in zip(run.outputs, run.files, strict=False):
        if out.node_id == wf.output_node:
            return path
    if run.files:
        return run.files[0]
    raise ServiceError(
        "comfyui",
        f"workflow {wf.name!r} produced no output file (prompt {run.prompt_id} on {run.server})",
    )


def _wav_seconds(path: Path) -> float:
    # lazy: numpy and PyAV load with the first clip, not with every command that builds the
    # resources (`videogen status` only reads their versions)
    from videogen_resources import audio

    num_samples, rate = audio.wav_num_samples(path)
    return num_samples / float(rate)


def server_folder(comfyui: ComfyUIResource, out_path: Path) -> str:
    """The project's folder on the server (below input/ and output/): ``videogen/<project>``.

    The project is read from the sentence folder the file goes to (``<project>.s0001``)."""
    sentence = out_path.parent.name
    match = re.fullmatch(r"(.+)\.s\d{4,}", sentence)
    project = re.sub(r"[^\w.-]", "_", match.group(1) if match else sentence).strip(".") or "_"
    return f"{comfyui.server_folder.strip('/')}/{project}"


def upload_name(path: Path) -> str:
    """The name an image is uploaded as: its stem and a hash of its bytes. Uploaded again with
    ``overwrite``, the same picture is stored once (ComfyUI would otherwise add ``name (1).png``,
    ``name (2).png``... for every render)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    stem = re.sub(r"[^\w-]", "_", path.stem)[:40] or "image"
    return f"{stem}-{digest}{path.suffix.lower()}"


def _make_prompt_builder(
    comfyui: ComfyUIResource,
    wf: Workflow,
    values: dict[str, Any],
    uploads: dict[str, Path],
    folder: str,
    sent: list[str] | None = None,
) -> Callable[[str], dict[str, Any]]:
    """A function of the chosen server: check its nodes, upload images there (their names on
    the server appended to ``sent``), bind values."""

    def build(server: str) -> dict[str, Any]:
        check_server_nodes(comfyui, server, wf)
        bound = dict(values)
        for slot, path in uploads.items():
            bound[slot] = comfyui.upload_image(
                path, server, overwrite=True, subfolder=folder, name=upload_name(path)
            )
            if sent is not None:
                sent.append(bound[slot])
        return wf.apply(bound)

    return build


R = TypeVar("R")
J = TypeVar("J", KeyframeJob, ClipJob)


@dataclass(eq=False)
class _Pending(Generic[R]):
    """A job queued on a server, the temporary folder its outputs go to, and what turns the
    downloaded run into the studio's file."""

    queued: QueuedJob
    tmp: tempfile.TemporaryDirectory[str]
    complete: Callable[[RunResult], R]


def _submit(
    comfyui: ComfyUIResource,
    wf: Workflow,
    builder: Callable[[str], dict[str, Any]],
    out_path: Path,
    *,
    progress: ProgressFn | None,
    cancel_check: Callable[[], bool] | None,
    complete: Callable[[RunResult], R],
) -> _Pending[R]:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix=".comfyui-", dir=out_path.parent)
    try:
        queued = comfyui.submit(
            builder,
            outputs_dir=tmp.name,
            progress=progress,
            cancel_check=cancel_check,
            output_nodes=[wf.output_node],
        )
    except BaseException:
        tmp.cleanup()
        raise
    return _Pending(queued, tmp, complete)


def _finish(
    comfyui: ComfyUIResource, pending: _Pending[R], on_finished: Callable[[], None] | None = None
) -> R:
    try:
        return pending.complete(comfyui.finish(pending.queued, on_finished=on_finished))
    finally:
        pending.tmp.cleanup()


def _drop(comfyui: ComfyUIResource, pending: _Pending[R] | None) -> None:
    if pending is not None:
        try:
            comfyui.cancel(pending.queued)
        finally:
            pending.tmp.cleanup()


def _pipelined(
    comfyui: ComfyUIResource,
    jobs: Iterable[J],
    submit: Callable[[J], _Pending[R]],
) -> Generator[R, None, None]:
    """Results of ``jobs`` in order, keeping a job queued on the server behind the running one.

    With several servers, three jobs per server are kept in flight (the least busy server gets
    each one), so one step keeps every GPU busy although results are taken in order. With one
    server: jobs k and k+1 are queued before job k is waited on; when job k finishes on the
    server (and k+1 starts there), job k+2 is queued before job k is downloaded, converted and
    yielded. So the server always has the next job waiting, however long the caller spends on a
    result.

    When job k fails or is cancelled (its prompt is interrupted), the jobs queued behind it are
    deleted from the server's queue (or interrupted, had one started) and job k's error raised.
    When preparing or queueing a job fails, the jobs queued before it are still finished and
    yielded, then that error is raised, as a one-at-a-time loop would. Once a job's
    ``cancel_check`` turns True nothing more is queued. A generator closed early cancels
    whatever it still has queued.
    """
    source = iter(jobs)
    queued: deque[_Pending[R]] = deque()
    held: list[J] = []  # a job not queued because the run is being cancelled
    deferred: list[Exception] = []  # preparing or queueing a job failed: raised in its turn
    exhausted = False

    def queue_next() -> None:
        nonlocal exhausted
        if exhausted or held or deferred:
            return
        try:
            spec = next(source, None)
            if spec is None:
                exhausted = True
            elif spec.cancel_check is not None and spec.cancel_check():
                held.append(spec)
            else:
                queued.append(submit(spec))
        except Exception as exc:
            deferred.append(exc)

    try:
        # with one server: one job running, one waiting; with several, three in flight per
        # server, since results come back in order and a slow head job must not starve the others
        servers = max(1, len(comfyui.urls))
        for _ in range(2 if servers == 1 else 3 * servers):
            queue_next()
        while queued or held:
            if not queued:  # its own follow notices the cancellation and interrupts it
                queued.append(submit(held.pop()))
            current = queued.popleft()
            yield _finish(comfyui, current, on_finished=queue_next)
        if deferred:
            raise deferred[0]
    finally:
        while queued:
            _drop(comfyui, queued.popleft())


class ComfyUIKeyframes(KeyframeMakerResource):
    """Generates keyframes with a ComfyUI image workflow and normalizes them to 1920x1080 PNG."""

    comfyui: ComfyUIResource
    workflow: str = Field(
        default="flux-1-dev-v1",
        description="Workflow name in the registry (kind image).",
    )
    workflows_dir: str | None = Field(
        default=None, description="A studio's own workflows folder, over the shipped registry."
    )
    width: int = Field(default=1920, description="Width of the keyframe PNG written.")
    height: int = Field(default=1080, description="Height of the keyframe PNG written.")
    gen_width: int | None = Field(
        default=None,
        description="Width asked of the model "
        "(default: the keyframe width, rounded per the workflow).",
    )
    gen_height: int | None = Field(default=None, description="Height asked of the model.")

    kind: ClassVar[str] = "image"

    def _wf(self, workflow: str | None = None) -> Workflow:
        wf = load_workflow(workflow or self.workflow, self.workflows_dir)
        if wf.kind != self.kind:
            raise ServiceError(
                "comfyui", f"workflow {wf.name!r} makes {wf.kind}s, not {self.kind}s"
            )
        return wf

    def version(self, workflow: str | None = None) -> str:
        """The content hash of the workflow (``workflow`` overrides the configured one)."""
        return self._wf(workflow).version

    def make_keyframe(self, job: KeyframeJob) -> ImageResult:
        """Generate the keyframe; ``job.cancel_check`` returning True (the run is being
        cancelled) interrupts the prompt on the server (POST /interrupt) and raises
        ``ServiceError``."""
        return _finish(self.comfyui, self._submit_keyframe(job))

    def make_keyframes(self, jobs: Iterable[KeyframeJob]) -> Generator[ImageResult, None, None]:
        """`make_keyframe` for each job, results in order, the next job always queued on the
        server before the current one is waited for, downloaded and normalized. A failed or
        cancelled job raises the error `make_keyframe` would, after taking the job queued
        behind it off the server."""
        return _pipelined(self.comfyui, jobs, self._submit_keyframe)

    def _submit_keyframe(self, job: KeyframeJob) -> _Pending[ImageResult]:
        wf = self._wf(job.workflow)
        shot = job.shot
        prompt = shot.image_prompt.strip() or job.sentence_text
        if job.style and job.style.lower() not in prompt.lower():
            prompt = f"{prompt}, {job.style}"
        requested = wf.fit_size(self.gen_width or self.width, self.gen_height or self.height)
        out_path = Path(job.out_path)
        folder = server_folder(self.comfyui, out_path)
        values = _only_slots(
            wf,
            {
                "prompt": prompt,
                "negative_prompt": shot.negative_prompt or None,
                "seed": shot.seed,
                "width": requested[0],
                "height": requested[1],
                "filename_prefix": f"{folder}/keyframe",
                **_lora_values(wf, job.characters),
            },
        )
        uploads: dict[str, Path] = {}
        ref = next((c.reference_image for c in job.characters if c.reference_image), None)
        if ref is not None and wf.has_slot("reference_image"):
            uploads["reference_image"] = Path(ref)

        def complete(run: RunResult) -> ImageResult:
            from PIL import Image, ImageOps
            from PIL.PngImagePlugin import PngInfo

            src = _pick_output(run, wf)
            with Image.open(src) as im:
                im.load()
                rgb = im.convert("RGB")
            made = rgb.size
            info = None
            if made != (self.width, self.height):
                rgb = ImageOps.fit(rgb, (self.width, self.height), Image.Resampling.LANCZOS)
                info = PngInfo()
                info.add_text(GENERATED_SIZE_KEY, f"{made[0]}x{made[1]}")
            with atomic_path(out_path) as tmp_png:
                rgb.save(tmp_png, format="PNG", pnginfo=info)
            extra = _extra(run, wf, shot.seed)
            extra.update(
                {
                    "requested_size": f"{requested[0]}x{requested[1]}",
                    "generated_size": f"{made[0]}x{made[1]}",
                    "upscale": round(upscale_factor(made, (self.width, self.height)), 2),
                }
            )
            return ImageResult(
                path=out_path,
                width=self.width,
                height=self.height,
                seed=shot.seed,
                engine=ENGINE,
                workflow_version=wf.version,
                extra=extra,
            )

        return _submit(
            self.comfyui,
            wf,
            _make_prompt_builder(self.comfyui, wf, values, uploads, folder),
            out_path,
            progress=job.progress,
            cancel_check=job.cancel_check,
            complete=complete,
        )


class ComfyUIClips(ClipMakerResource):
    """Generates clips with a ComfyUI image-to-video workflow from the shot's keyframe."""

    comfyui: ComfyUIResource
    workflow: str = Field(
        default="wan-2.2-v1", description="Workflow name in the registry (kind video)."
    )
    workflows_dir: str | None = Field(
        default=None, description="A studio's own workflows folder, over the shipped registry."
    )
    gen_width: int = Field(default=1280, description="Width asked of the video model.")
    gen_height: int = Field(default=720, description="Height asked of the video model.")
    gen_fps: int | None = Field(
        default=None, description="Frame rate asked of the model (default: the workflow's own)."
    )
    fps: int = Field(default=30, description="Frame rate of the final clip.")
    width: int = Field(default=1920, description="Width of the final clip.")
    height: int = Field(default=1080, description="Height of the final clip.")

    kind: ClassVar[str] = "video"

    def _wf(self, workflow: str | None = None) -> Workflow:
        wf = load_workflow(workflow or self.workflow, self.workflows_dir)
        if wf.kind != self.kind:
            raise ServiceError(
                "comfyui", f"workflow {wf.name!r} makes {wf.kind}s, not {self.kind}s"
            )
        return wf

    def version(self, workflow: str | None = None) -> str:
        """The content hash of the workflow (``workflow`` overrides the configured one)."""
        return self._wf(workflow).version

    def make_clip(self, job: ClipJob) -> ClipResult:
        """Generate the clip; ``job.cancel_check`` works as in
        `ComfyUIKeyframes.make_keyframe`."""
        return _finish(self.comfyui, self._submit_clip(job))

    def make_clips(self, jobs: Iterable[ClipJob]) -> Generator[ClipResult, None, None]:
        """`make_clip` for each job, results in order, pipelined as in
        `ComfyUIKeyframes.make_keyframes` (each job's keyframe must already be on disk)."""
        return _pipelined(self.comfyui, jobs, self._submit_clip)

    def _submit_clip(self, job: ClipJob) -> _Pending[ClipResult]:
        wf = self._wf(job.workflow)
        shot, progress = job.shot, job.progress
        narration = Path(job.narration)
        seconds = _wav_seconds(narration)
        gen_fps = self.gen_fps or round(float(wf.slot_default("fps") or 24))
        frames = max(1, math.ceil(round(seconds * gen_fps, 6)))
        requested = wf.fit_size(self.gen_width, self.gen_height)
        out_path = Path(job.out_path)
        folder = server_folder(self.comfyui, out_path)
        values = _only_slots(
            wf,
            {
                "prompt": shot.video_prompt.strip() or shot.image_prompt,
                "negative_prompt": shot.negative_prompt or None,
                "seed": shot.seed,
                "width": requested[0],
                "height": requested[1],
                "frames": frames,
                "fps": gen_fps,
                "filename_prefix": f"{folder}/clip",
            },
        )
        uploads = {"image": Path(job.keyframe)}
        sent: list[str] = []  # the keyframe's upload: this clip's alone, deleted once made

        def complete(run: RunResult) -> ClipResult:
            # lazy: numpy and PyAV load with the first clip, not with every command that builds the
            # resources (`videogen status` only reads their versions)
            from videogen_resources import media

            src = _pick_output(run, wf)
            made = media.probe(src, count="packets").video
            if progress:
                progress(f"conforming {src.name} to {seconds:.2f}s at {self.fps} fps")
            info = media.conform_clip(
                src, narration, out_path, fps=self.fps, width=self.width, height=self.height
            )
            self.comfyui.remove_uploads(sent, progress)
            extra = _extra(run, wf, shot.seed)
            extra.update({"generated_frames": frames, "generated_fps": gen_fps})
            extra["requested_size"] = f"{requested[0]}x{requested[1]}"
            if made is not None and made.width and made.height:
                extra["generated_size"] = f"{made.width}x{made.height}"
                extra["upscale"] = round(min(self.width / made.width, self.height / made.height), 2)
            return ClipResult(
                path=out_path,
                duration_s=info.duration_s,
                num_frames=info.num_frames,
                fps=info.fps,
                engine=ENGINE,
                workflow_version=wf.version,
                extra=extra,
            )

        return _submit(
            self.comfyui,
            wf,
            _make_prompt_builder(self.comfyui, wf, values, uploads, folder, sent),
            out_path,
            progress=progress,
            cancel_check=job.cancel_check,
            complete=complete,
        )


__all__ = [
    "GENERATED_SIZE_KEY",
    "ComfyUIClips",
    "ComfyUIKeyframes",
    "check_server_nodes",
    "generated_size",
    "server_folder",
    "upload_name",
    "upscale_factor",
]

"""Orchestration figures: what Dagster itself costs per sentence, and how busy a GPU server stays.

(a) A project of N sentences rendered the way ``videogen render`` does it (one run per
    per-sentence asset per contiguous key range, then one run for the project assets) with
    near-zero-latency narrator, keyframe and clip makers that copy pre-made tiny media.
    Targets: <= 0.25 s per sentence, <= 100 s in all for 400 sentences.
(b) The same four per-sentence assets run one partition per run, on a subset, extrapolated to N.
(c) The ComfyUI test server with a fixed 1.0 s per job: K keyframes through ComfyUIKeyframes in
    one batched keyframe step. Busy fraction = summed job execution time / (last completion -
    first submit), from the server's submit times and execution_start/execution_success stamps.
    Target >= 95 %.

Usage: python benchmarks/bench_orchestration.py [--sentences 400] [--per-partition 20]
       [--keyframes 10] [--job-seconds 1.0]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.support.servers (the ComfyUI test server)

from videogen.operations import QUIET, _contiguous_ranges, create_project, sync  # noqa: E402
from videogen_assets.context import PER_PROJECT, key  # noqa: E402
from videogen_assets.definitions import build_definitions  # noqa: E402
from videogen_assets.partitions import partitions_name  # noqa: E402
from videogen_assets.sentence_assets import PER_SENTENCE  # noqa: E402
from videogen_assets.status import sentence_statuses  # noqa: E402
from videogen_resources import audio  # noqa: E402
from videogen_resources.base import (  # noqa: E402
    ClipJob,
    ClipMakerResource,
    ClipResult,
    ImageResult,
    KeyframeJob,
    KeyframeMakerResource,
    NarratorResource,
    SpeechJob,
    SpeechResult,
)
from videogen_resources.settings import BackendSettings  # noqa: E402

RATE = 48000
SECONDS = 0.5
FPS = 30
FRAMES = int(SECONDS * FPS)


# ---------------------------------------------------------------------------- tiny real media


def make_media(folder: Path) -> dict[str, Path]:
    """A 0.5 s 48 kHz tone WAV, a 1920x1080 PNG and a 15-frame 1920x1080 H.264/AAC MP4."""
    import imageio_ffmpeg
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "narration.wav"
    t = np.arange(int(RATE * SECONDS)) / RATE
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2")
    audio.write_wav(wav, samples, RATE)
    png = folder / "keyframe.png"
    Image.new("RGB", (1920, 1080), (40, 90, 140)).save(png, format="PNG")
    mp4 = folder / "clip.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"color=c=0x285a8c:s=1920x1080:r={FPS}",
            "-i",
            str(wav),
            "-frames:v",
            str(FRAMES),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-r",
            str(FPS),
            "-c:a",
            "aac",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-t",
            f"{SECONDS}",
            str(mp4),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {"wav": wav, "png": png, "mp4": mp4}


def _copy(src: str, out_path: Path) -> None:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out_path)


class InstantNarrator(NarratorResource):
    """Copies a pre-made WAV."""

    source: str

    def speak(self, job: SpeechJob) -> SpeechResult:
        _copy(self.source, job.out_path)
        n = int(RATE * SECONDS)
        return SpeechResult(
            path=job.out_path,
            duration_ms=int(SECONDS * 1000),
            sample_rate=RATE,
            num_samples=n,
            voice=job.voice or "bench",
            engine="bench",
        )

    def version(self) -> str:
        return "bench-1"


class InstantKeyframes(KeyframeMakerResource):
    """Copies a pre-made 1920x1080 PNG."""

    source: str

    def make_keyframe(self, job: KeyframeJob) -> ImageResult:
        _copy(self.source, job.out_path)
        return ImageResult(
            path=job.out_path, width=1920, height=1080, seed=job.shot.seed, engine="bench"
        )

    def version(self, workflow: str | None = None) -> str:
        return "bench-1"


class InstantClips(ClipMakerResource):
    """Copies a pre-made MP4 (as long as the pre-made narration)."""

    source: str

    def make_clip(self, job: ClipJob) -> ClipResult:
        _copy(self.source, job.out_path)
        return ClipResult(
            path=job.out_path, duration_s=SECONDS, num_frames=FRAMES, fps=FPS, engine="bench"
        )

    def version(self, workflow: str | None = None) -> str:
        return "bench-1"


def instant_resources(media: dict[str, Path]) -> dict[str, Any]:
    return {
        "narrator": InstantNarrator(source=str(media["wav"])),
        "keyframes": InstantKeyframes(source=str(media["png"])),
        "clips": InstantClips(source=str(media["mp4"])),
    }


def make_script(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = "lava ash magma crust plate quake cone vent rock gas heat cloud river forest".split()
    lines = []
    for i in range(n):
        if i % 20 == 0:
            lines.append(f"\n## Section {i // 20 + 1}")
        lines.append(f"Sentence {i} tells how the " + " ".join(rng.choices(words, k=9)) + ".")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- rendering


@dataclass
class Studio:
    root: Path
    name: str
    instance: dg.DagsterInstance


def new_project(
    base: Path, instance: dg.DagsterInstance, n: int, name: str
) -> tuple[Studio, float, float]:
    """Create a project of ``n`` sentences; return it, the create time and the first publish."""
    script = base / f"{name}.md"
    script.write_text(make_script(n), encoding="utf-8")
    root = base / "studio"
    t0 = time.perf_counter()
    create_project(root, title=name, name=name, script_file=script, instance=instance)
    t_create = time.perf_counter() - t0
    t0 = time.perf_counter()
    sync(root, name, instance=instance)  # first publish of the observed data versions
    t_observe = time.perf_counter() - t0
    return Studio(root, name, instance), t_create, t_observe


def _assets(defs: dg.Definitions) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    return [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]


def _resources(defs: dg.Definitions, override: dict[str, Any]) -> dict[str, Any]:
    return {**dict(defs.resources or {}), **override}


def render_batched(studio: Studio, override: dict[str, Any]) -> dict[str, float]:
    """``videogen.operations.render``'s loop with the makers replaced; seconds per phase."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    sync(studio.root, studio.name, instance=studio.instance)
    defs = build_definitions(studio.root, BackendSettings())
    all_keys = studio.instance.get_dynamic_partitions(partitions_name(studio.name))
    statuses = sentence_statuses(studio.instance, defs, studio.name, all_keys)
    todo = [k for k in all_keys if any(v != "done" for v in statuses.get(k, {}).values())]
    times["prepare"] = time.perf_counter() - t0
    assets, resources = _assets(defs), _resources(defs, override)
    for start, end in _contiguous_ranges(all_keys, todo):
        for kind in PER_SENTENCE:
            t0 = time.perf_counter()
            res = dg.materialize(
                assets,
                instance=studio.instance,
                resources=resources,
                run_config=QUIET,
                selection=[key(studio.name, kind)],
                tags={
                    "dagster/asset_partition_range_start": start,
                    "dagster/asset_partition_range_end": end,
                },
            )
            assert res.success
            times[kind] = times.get(kind, 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    res = dg.materialize(
        assets,
        instance=studio.instance,
        resources=resources,
        run_config=QUIET,
        selection=[key(studio.name, k) for k in PER_PROJECT],
    )
    assert res.success
    times["project assets"] = time.perf_counter() - t0
    return times


def render_per_partition(studio: Studio, override: dict[str, Any], count: int) -> float:
    """The four per-sentence assets of the first ``count`` sentences, one run per sentence."""
    defs = build_definitions(studio.root, BackendSettings())
    keys = studio.instance.get_dynamic_partitions(partitions_name(studio.name))[:count]
    assets, resources = _assets(defs), _resources(defs, override)
    t0 = time.perf_counter()
    for pk in keys:
        res = dg.materialize(
            assets,
            instance=studio.instance,
            resources=resources,
            run_config=QUIET,
            partition_key=pk,
            selection=[key(studio.name, k) for k in PER_SENTENCE],
        )
        assert res.success
    return time.perf_counter() - t0


def count_materializations(studio: Studio) -> dict[str, int]:
    return {
        kind: len(studio.instance.get_materialized_partitions(key(studio.name, kind)))
        for kind in PER_SENTENCE
    }


# ---------------------------------------------------------------------------- GPU busy fraction


def gpu_busy(base: Path, media: dict[str, Path], count: int, job_seconds: float) -> dict[str, Any]:
    """``count`` keyframes through ComfyUIKeyframes in one batched step against the test server."""
    from tests.support.servers.comfyui import FakeComfyUI
    from videogen_resources.comfyui import ComfyUIResource
    from videogen_resources.comfyui_makers import ComfyUIKeyframes
    from videogen_resources.workflows import newer_node_schemas

    class TimedComfyUI(FakeComfyUI):
        """The test server, also noting when each POST /prompt arrived."""

        submits: list[float]

        async def _post_prompt(self, request: Any) -> Any:
            self.submits.append(time.time())
            return await super()._post_prompt(request)

    # the default image workflow (Flux 2) needs the newer node schemas
    server = TimedComfyUI(
        job_seconds=job_seconds, extra_nodes=newer_node_schemas(), version="0.7.0"
    )
    server.submits = []
    server.start()
    try:
        with dg.instance_for_test(temp_dir=str(base / "home")) as instance:
            studio, _, _ = new_project(base, instance, count, "gpu")
            defs = build_definitions(studio.root, BackendSettings())
            assets = _assets(defs)
            keys = instance.get_dynamic_partitions(partitions_name(studio.name))
            tags = {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            }
            resources = _resources(defs, instant_resources(media))
            for kind in ("narration", "shot"):
                res = dg.materialize(
                    assets,
                    instance=instance,
                    resources=resources,
                    run_config=QUIET,
                    selection=[key(studio.name, kind)],
                    tags=tags,
                )
                assert res.success
            comfy = ComfyUIResource(urls=[server.url])
            resources["keyframes"] = ComfyUIKeyframes(comfyui=comfy)
            t0 = time.perf_counter()
            res = dg.materialize(
                assets,
                instance=instance,
                resources=resources,
                run_config=QUIET,
                selection=[key(studio.name, "keyframe")],
                tags=tags,
            )
            step_s = time.perf_counter() - t0
            assert res.success
            made = len(instance.get_materialized_partitions(key(studio.name, "keyframe")))
    finally:
        server.close()
    spans: list[tuple[float, float]] = []
    for entry in server.history.values():
        stamps = {name: data.get("timestamp") for name, data in entry["status"]["messages"]}
        if stamps.get("execution_start") and stamps.get("execution_success"):
            spans.append((stamps["execution_start"] / 1000, stamps["execution_success"] / 1000))
    spans.sort()
    busy = sum(end - start for start, end in spans)
    window = max(end for _, end in spans) - min(server.submits)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    return {
        "jobs": len(spans),
        "keyframes": made,
        "busy_s": busy,
        "window_s": window,
        "fraction": busy / window if window > 0 else 0.0,
        "mean_gap_s": sum(gaps) / len(gaps) if gaps else 0.0,
        "step_s": step_s,
    }


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument(
        "--per-partition",
        type=int,
        default=20,
        help="sentences run one partition per run, extrapolated to --sentences",
    )
    parser.add_argument("--keyframes", type=int, default=10)
    parser.add_argument("--job-seconds", type=float, default=1.0)
    parser.add_argument("--skip-gpu", action="store_true", help="skip (c)")
    args = parser.parse_args()
    n = args.sentences
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        media = make_media(base / "media")
        override = instant_resources(media)

        (base / "a" / "home").mkdir(parents=True)
        with dg.instance_for_test(temp_dir=str(base / "a" / "home")) as instance:
            create_project(
                base / "warm", title="Warm up", name="warm", script_file=_script_file(base, 5)
            )  # warm imports
            studio, t_create, t_observe = new_project(base / "a", instance, n, "bench")
            t0 = time.perf_counter()
            phases = render_batched(studio, override)
            t_render = time.perf_counter() - t0
            done = count_materializations(studio)

        (base / "b" / "home").mkdir(parents=True)
        with dg.instance_for_test(temp_dir=str(base / "b" / "home")) as instance:
            studio_b, _, _ = new_project(base / "b", instance, n, "perpart")
            subset = min(args.per_partition, n)
            t_pp = render_per_partition(studio_b, override, subset)

        gpu = None
        if not args.skip_gpu:
            (base / "c" / "home").mkdir(parents=True)
            gpu = gpu_busy(base / "c", media, args.keyframes, args.job_seconds)

    per_sentence = t_render / n
    print(f"sentences: {n}")
    print(f"(a) create project (sections, DB rows, partitions): {t_create:.2f} s  (no target here)")
    print(f"(a) first publish of {2 * n} observed data versions: {t_observe:.2f} s  (no target)")
    print(
        f"(a) batched render, zero-latency makers: {t_render:.1f} s total  (target <= "
        f"{0.25 * n:.0f} s = 0.25 s x {n} sentences)"
    )
    print(f"(a) per sentence: {per_sentence:.3f} s  (target <= 0.25 s)")
    print("(a) phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    print(
        "(a) sentence materializations: "
        + ", ".join(f"{k} {v}/{n}" for k, v in done.items())
        + f"  (target: all {n})"
    )
    per_run = t_pp / subset
    print(
        f"(b) one run per partition (4 assets per run): {per_run:.3f} s per sentence over "
        f"{subset}; extrapolated to {n}: {per_run * n:.0f} s  (comparison only; batched "
        f"per-sentence steps took {sum(phases[k] for k in PER_SENTENCE) / n:.3f} s/sentence)"
    )
    if gpu is not None:
        print(
            f"(c) ComfyUI test server, {args.job_seconds:g} s per job, {gpu['jobs']} keyframes "
            f"in one batched step ({gpu['keyframes']} materialized): busy "
            f"{gpu['busy_s']:.2f} s of {gpu['window_s']:.2f} s = {100 * gpu['fraction']:.1f} %"
            f"  (target >= 95 %)"
        )
        print(
            f"(c) mean idle gap between jobs: {gpu['mean_gap_s'] * 1000:.0f} ms; keyframe step "
            f"{gpu['step_s']:.2f} s"
        )


def _script_file(base: Path, n: int) -> Path:
    path = base / "warm.md"
    path.write_text(make_script(n), encoding="utf-8")
    return path


if __name__ == "__main__":
    main()

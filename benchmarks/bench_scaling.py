"""Throughput with 1, 2 and 3 ComfyUI servers, each taking a fixed time per job.

Each server is a protocol-faithful ComfyUI test server on 127.0.0.1 that runs one prompt at a
time (like ComfyUI on one GPU). The same batch of keyframes goes through `ComfyUIKeyframes` in
one batched call (what the keyframe asset does for many sentences); jobs go to the least busy
server.

Targets: 2 servers >= 1.8x and 3 servers >= 2.6x the throughput of one.

Usage: python benchmarks/bench_scaling.py [--jobs 18] [--job-seconds 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.support.servers (the ComfyUI test server)

from tests.support.servers.comfyui import FakeComfyUI  # noqa: E402
from videogen_domain.models import Shot  # noqa: E402
from videogen_resources.base import KeyframeJob  # noqa: E402
from videogen_resources.comfyui import ComfyUIResource  # noqa: E402
from videogen_resources.comfyui_makers import ComfyUIKeyframes  # noqa: E402


def run(servers: list[FakeComfyUI], jobs: int, out: Path) -> float:
    """Seconds to make ``jobs`` keyframes over ``servers``."""
    maker = ComfyUIKeyframes(
        comfyui=ComfyUIResource(urls=[s.url for s in servers]), workflow="flux-1-dev-v1"
    )
    specs = [
        KeyframeJob(
            shot=Shot(image_prompt=f"a volcano, view {i}", video_prompt="", seed=i),
            sentence_text=f"sentence {i}",
            section_title="bench",
            style="documentary",
            characters=[],
            out_path=out / f"k{i:03d}.png",
        )
        for i in range(jobs)
    ]
    t0 = time.perf_counter()
    made = list(maker.make_keyframes(specs))
    elapsed = time.perf_counter() - t0
    assert len(made) == jobs and all(r.path.exists() for r in made)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=18)
    parser.add_argument("--job-seconds", type=float, default=1.0)
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        servers = []
        for _ in range(3):
            server = FakeComfyUI(job_seconds=args.job_seconds)
            server.start()
            stack.callback(server.close)
            servers.append(server)
        results = {}
        for n in (1, 2, 3):
            seconds = run(servers[:n], args.jobs, Path(tmp) / f"n{n}")
            results[n] = args.jobs / seconds
            per_server = [len(s.job_times) for s in servers[:n]]
            print(
                f"{n} server(s): {args.jobs} jobs in {seconds:.1f} s = "
                f"{results[n]:.2f} jobs/s (jobs per server so far: {per_server})"
            )
    print(f"speed-up with 2 servers: {results[2] / results[1]:.2f}x  (target >= 1.8x)")
    print(f"speed-up with 3 servers: {results[3] / results[1]:.2f}x  (target >= 2.6x)")


if __name__ == "__main__":
    main()

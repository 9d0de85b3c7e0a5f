"""The batch-first maker interface: a maker that only makes one item at a time gets a batch form
that makes the jobs in order, lazily, and serves every project."""

from __future__ import annotations

from pathlib import Path

from videogen_domain.models import Shot
from videogen_resources.base import (
    ClipJob,
    ClipMakerResource,
    ClipResult,
    ImageResult,
    KeyframeJob,
    KeyframeMakerResource,
)


class OneAtATimeKeyframes(KeyframeMakerResource):
    def make_keyframe(self, job: KeyframeJob) -> ImageResult:
        made.append(job.out_path.name)
        return ImageResult(path=job.out_path, width=1, height=1, seed=job.shot.seed, engine="t")

    def version(self, workflow: str | None = None) -> str:
        return "t"


class OneAtATimeClips(ClipMakerResource):
    def make_clip(self, job: ClipJob) -> ClipResult:
        made.append(job.out_path.name)
        return ClipResult(path=job.out_path, duration_s=1.0, num_frames=30, fps=30, engine="t")

    def version(self, workflow: str | None = None) -> str:
        return "t"


made: list[str] = []


def test_the_default_batch_makes_each_job_in_order_as_it_is_asked(tmp_path: Path) -> None:
    made.clear()
    shot = Shot(image_prompt="a volcano", video_prompt="lava", seed=3)
    jobs = [
        KeyframeJob(
            shot=shot,
            sentence_text="t",
            section_title="s",
            style="",
            characters=[],
            out_path=tmp_path / f"k{i}.png",
        )
        for i in range(3)
    ]
    results = OneAtATimeKeyframes().make_keyframes(jobs)
    assert made == []  # nothing is made before a result is asked for
    first = next(results)
    assert first.path.name == "k0.png" and made == ["k0.png"]
    assert [r.path.name for r in results] == ["k1.png", "k2.png"]
    assert made == ["k0.png", "k1.png", "k2.png"]

    made.clear()
    clips = [
        ClipJob(
            shot=shot,
            keyframe=tmp_path / "k.png",
            narration=tmp_path / "n.wav",
            out_path=tmp_path / f"c{i}.mp4",
        )
        for i in range(2)
    ]
    assert [r.path.name for r in OneAtATimeClips().make_clips(clips)] == ["c0.mp4", "c1.mp4"]
    assert made == ["c0.mp4", "c1.mp4"]


def test_a_plain_maker_serves_every_project() -> None:
    keyframes, clips = OneAtATimeKeyframes(), OneAtATimeClips()
    assert keyframes.for_project("alpha") is keyframes
    assert clips.for_project("beta") is clips

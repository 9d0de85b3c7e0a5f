"""Ken Burns clips: a smooth camera move over a still keyframe, exactly as long as its narration.

The keyframe PNG is decoded once and scaled once (to the overscan the move needs); the ``loop``
filter repeats that one frame. Pans, tilts and orbits move a ``crop`` window over that picture
along an eased path (x/y are expressions of the frame number); zooms and dollies rescale it every
frame (``scale`` with ``eval=frame``) and centre it on a fixed canvas. Cosine easing makes the
camera start and stop gently. The clip has exactly ``ceil(narration_seconds * fps)`` frames and the
narration, padded with silence to that length, is muxed as AAC 48 kHz.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from videogen_domain.atomic import atomic_path
from videogen_domain.models import CameraMovement
from videogen_resources.base import ClipJob, ClipMakerResource, ClipResult

ENGINE = "kenburns"
_RENDER_VERSION = "4"  # bump when the motion or encoding changes (4: BT.709 tagged)


@dataclass(frozen=True)
class Move:
    """A camera move as ffmpeg expressions of the frame number ``n``.

    ``zoom`` is the scale of the picture relative to the frame (>= 1); ``fx``/``fy`` place the
    crop window inside the spare picture, 0 = left/top edge, 0.5 = centre, 1 = right/bottom.
    """

    zoom: str
    fx: str
    fy: str
    max_zoom: float
    zooms: bool


def _ease(frames: int) -> str:
    """Cosine ease-in-out progress 0 -> 1 over ``frames`` frames, as an expression of n."""
    span = max(1, frames - 1)
    return f"(0.5-0.5*cos(PI*min(n/{span},1)))"


def plan_move(movement: CameraMovement, strength: float, frames: int) -> Move:
    """The expressions for ``movement`` at ``strength`` (0..1) over ``frames`` frames."""
    s = min(1.0, max(0.0, strength))
    p = _ease(frames)
    travel = 0.04 + 0.21 * s  # extra picture the move travels over (4 % .. 25 %)
    if movement == "static" or s == 0.0:
        return Move("1", "0.5", "0.5", 1.0, False)
    if movement in ("pan-left", "pan-right", "tilt-up", "tilt-down"):
        z = 1.0 + travel
        forward = f"{p}"
        backward = f"(1-{p})"
        # pan-left: the camera turns left, so the window travels from the right to the left.
        fx = {"pan-left": backward, "pan-right": forward}.get(movement, "0.5")
        fy = {"tilt-up": backward, "tilt-down": forward}.get(movement, "0.5")
        return Move(f"{z:.6f}", fx, fy, z, False)
    if movement == "zoom-in":
        z1 = 1.0 + travel
        return Move(f"(1+{z1 - 1:.6f}*{p})", "0.5", "0.5", z1, True)
    if movement == "zoom-out":
        z1 = 1.0 + travel
        return Move(f"({z1:.6f}-{z1 - 1:.6f}*{p})", "0.5", "0.5", z1, True)
    if movement == "dolly":
        # A push toward the subject that keeps accelerating a little (ease-in, soft stop).
        z1 = 1.0 + 1.2 * travel
        push = f"({p}*{p}*(2-{p}))"
        return Move(f"(1+{z1 - 1:.6f}*{push})", "0.5", "0.5", z1, True)
    # orbit: sweep sideways around the subject along a shallow arc.
    z = 1.0 + travel
    return Move(f"{z:.6f}", f"(0.1+0.8*{p})", f"(0.5-0.35*sin(PI*{p}))", z, False)


def kenburns_filter(
    movement: CameraMovement, strength: float, frames: int, *, fps: int, width: int, height: int
) -> str:
    """The ``-filter_complex`` video chain from the keyframe input to ``[v]``."""
    # lazy: numpy and PyAV load with the first clip, not with every command that builds the
    # resources (`videogen status` only reads their versions)
    from videogen_resources import media

    move = plan_move(movement, strength, frames)
    # Fit (cover) the keyframe to the frame once, at the largest size the move needs.
    w0 = _even(width * move.max_zoom)
    h0 = _even(height * move.max_zoom)
    head = (
        f"[0:v:0]scale={w0}:{h0}:force_original_aspect_ratio=increase:flags=lanczos,"
        f"crop={w0}:{h0},setsar=1,{media.TO_BT709},format=yuv420p,loop=loop=-1:size=1:start=0,"
        f"settb=1/{fps},setpts=N,fps={fps}"
    )
    if not move.zooms:
        # Pans and tilts: one pre-scaled picture, a crop window moving along an eased path.
        if move.max_zoom != 1.0:
            crop = f"crop={width}:{height}:x='(iw-ow)*{move.fx}':y='(ih-oh)*{move.fy}':exact=1"
        else:
            crop = f"scale={width}:{height}:flags=lanczos"
        return f"{head},{crop},format=yuv420p,{media.TAG_BT709}[v]"
    # Zooms: rescale the picture every frame (eval=frame) and centre it on a fixed canvas.
    # Sizes are multiples of 4 so the centring offsets are exact, even (chroma-aligned) pixels.
    sw = f"4*trunc({width}*{move.zoom}/4+0.5)"
    sh = f"4*trunc({height}*{move.zoom}/4+0.5)"
    return (
        f"{head},scale=w='{sw}':h='{sh}':eval=frame:flags=bilinear[zoomed];"
        f"color=c=black:s={width}x{height}:r={fps},format=yuv420p[canvas];"
        f"[canvas][zoomed]overlay=x='({width}-({sw}))/2':y='({height}-({sh}))/2'"
        f":eval=frame:shortest=1,format=yuv420p,{media.TAG_BT709}[v]"
    )


def _even(x: float) -> int:
    return max(4, 4 * math.ceil(x / 4))


class KenBurnsClips(ClipMakerResource):
    """Embedded clip maker: a Ken Burns move over the keyframe (CPU only, ffmpeg)."""

    fps: int = 30
    width: int = 1920
    height: int = 1080
    preset: str = "veryfast"  # x264 preset: ultrafast ... veryslow
    crf: int = 20
    threads: int = 2  # encoder threads (bounded so parallel runs don't oversubscribe)
    timeout_s: float = 600.0

    def version(self, workflow: str | None = None) -> str:
        """Changes when the motion code or the encoding settings change.

        ``workflow`` is ignored: Ken Burns clips use no workflow file.
        """
        key = f"{_RENDER_VERSION}|{self.fps}|{self.width}x{self.height}|{self.preset}|{self.crf}"
        return f"{ENGINE}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def make_clip(self, job: ClipJob) -> ClipResult:
        """Render the move over the job's keyframe with its narration muxed; see the module
        doc."""
        shot, progress = job.shot, job.progress
        keyframe, narration, out_path = Path(job.keyframe), Path(job.narration), Path(job.out_path)
        # lazy: numpy and PyAV load with the first clip, not with every command that builds the
        # resources (`videogen status` only reads their versions)
        from videogen_resources import audio, media

        num_samples, rate = audio.wav_num_samples(narration)
        frames = audio.frames_for_samples(num_samples, rate, self.fps)
        audio_samples = audio.samples_for_frames(frames, self.fps)
        vchain = kenburns_filter(
            shot.camera_movement,
            shot.motion_strength,
            frames,
            fps=self.fps,
            width=self.width,
            height=self.height,
        )
        graph = f"{vchain};[1:a:0]{media.narration_filter(audio_samples)}[a]"
        if progress:
            progress(
                f"kenburns: {shot.camera_movement} (motion {shot.motion_strength:.2f}), "
                f"{frames} frames at {self.fps} fps, preset {self.preset}"
            )
        with atomic_path(out_path) as tmp:
            media.run_ffmpeg(
                [
                    "-i",
                    str(keyframe),
                    "-i",
                    str(narration),
                    "-filter_complex",
                    graph,
                    "-map",
                    "[v]",
                    "-map",
                    "[a]",
                    "-frames:v",
                    str(frames),
                    *media.x264_args(
                        fps=self.fps, preset=self.preset, crf=self.crf, threads=self.threads
                    ),
                    *media.audio_out_args(),
                    "-movflags",
                    "+faststart",
                    str(tmp),
                ],
                what=f"Ken Burns clip {out_path.name}",
                timeout=self.timeout_s,
            )
        return ClipResult(
            path=out_path,
            duration_s=frames / self.fps,
            num_frames=frames,
            fps=self.fps,
            engine=ENGINE,
            workflow_version=self.version(),
            extra={
                "camera_movement": shot.camera_movement,
                "motion_strength": shot.motion_strength,
                "preset": self.preset,
                "audio_samples_48k": audio_samples,
                "narration_samples": num_samples,
                "narration_sample_rate": rate,
            },
        )

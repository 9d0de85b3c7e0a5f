"""Benchmark of the embedded media path; prints its figures.

    python benchmarks/bench_media.py [--clips 200] [--moviepy-clips 50] [--sentences 8]

Measures:
  * Piper: voice load time and real-time factor (synthesis seconds / audio seconds).
  * Ken Burns: seconds per ~5 s 1080p clip at x264 presets ultrafast and veryfast.
  * Rough cut of --clips five-second clips (stream copy + one narration track) and its
    decoded audio/video length difference.
  * moviepy concatenating --moviepy-clips of the same clips (re-encode), and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from videogen_domain.models import CameraMovement, Shot
from videogen_resources import audio, media
from videogen_resources.base import ClipJob, KeyframeJob, SpeechJob
from videogen_resources.embedded import piper as piper_mod
from videogen_resources.embedded.cards import CardKeyframes
from videogen_resources.embedded.kenburns import KenBurnsClips

SENTENCES = [
    "Volcanoes are openings in the crust where molten rock reaches the surface.",
    "Most of them sit along the edges of tectonic plates.",
    "When pressure builds, gas and magma force their way upward.",
    "Some eruptions are gentle rivers of lava; others explode into towering clouds of ash.",
    "Over time, layer upon layer of cooled lava builds a mountain.",
    "Scientists watch for small earthquakes and swelling ground before an eruption.",
    "Volcanic soil is rich, so people have farmed beside volcanoes for thousands of years.",
    "Iceland sits on a rift where two plates pull apart.",
    "The ring of fire circles the Pacific Ocean.",
    "Even today, new islands are born from the sea.",
]


def bench_piper(work: Path, sentences: int) -> None:
    print("== Piper narration")
    model, config = piper_mod.default_model_paths()
    t0 = time.perf_counter()
    piper_mod.load_voice(model, config)
    print(f"voice load: {time.perf_counter() - t0:.2f} s ({model.name})")
    narrator = piper_mod.PiperNarrator()
    narrator.synthesize("Warm up.")  # first call initializes the phonemizer
    synth_s = audio_s = 0.0
    speak_s = 0.0
    for i in range(sentences):
        text = SENTENCES[i % len(SENTENCES)]
        t0 = time.perf_counter()
        samples, rate = narrator.synthesize(text)
        synth_s += time.perf_counter() - t0
        audio_s += samples.size / rate
        t0 = time.perf_counter()
        narrator.speak(SpeechJob(text=text, out_path=work / f"speak{i}.wav"))
        speak_s += time.perf_counter() - t0
    print(f"{sentences} sentences, {audio_s:.1f} s of audio")
    print(f"real-time factor (synthesis only): {synth_s / audio_s:.3f}")
    print(f"real-time factor (speak: + loudness + WAV): {speak_s / audio_s:.3f}")


def make_inputs(work: Path) -> tuple[Path, Path]:
    shot = Shot(image_prompt="x", video_prompt="x", key_phrase="Volcanoes shape the land")
    keyframe = work / "key.png"
    CardKeyframes().make_keyframe(
        KeyframeJob(
            shot=shot,
            sentence_text="",
            section_title="Benchmark",
            style="documentary",
            characters=[],
            out_path=keyframe,
        ),
    )
    sr = 22_050
    t = np.arange(5 * sr) / sr
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    narration = audio.write_wav(work / "five.wav", voice, sr)
    return keyframe, narration


def bench_kenburns(work: Path, keyframe: Path, narration: Path, repeats: int = 2) -> None:
    print("== Ken Burns clip (5 s, 1920x1080, 30 fps)")
    for preset in ("ultrafast", "veryfast"):
        maker = KenBurnsClips(preset=preset)
        movements: tuple[CameraMovement, ...] = ("pan-right", "zoom-in")
        for movement in movements:
            times = []
            for r in range(repeats):
                shot = Shot(
                    image_prompt="x",
                    video_prompt="x",
                    camera_movement=movement,
                    motion_strength=0.6,
                )
                t0 = time.perf_counter()
                maker.make_clip(
                    ClipJob(
                        shot=shot,
                        keyframe=keyframe,
                        narration=narration,
                        out_path=work / f"kb_{preset}_{movement}_{r}.mp4",
                    ),
                )
                times.append(time.perf_counter() - t0)
            print(f"{preset:9s} {movement:9s}: {min(times):.2f} s per clip (best of {repeats})")


def make_clip_pool(work: Path, keyframe: Path, count: int) -> tuple[list[Path], list[Path]]:
    """A few distinct 5 s clips (and their narrations), reused as copies for a long cut."""
    sr = 22_050
    clips, narrs = [], []
    maker = KenBurnsClips(preset="ultrafast")
    moves: tuple[CameraMovement, ...] = ("pan-right", "zoom-in", "pan-left", "zoom-out")
    for i in range(4):
        t = np.arange(round((4.8 + 0.05 * i) * sr)) / sr
        narr = audio.write_wav(
            work / f"pool{i}.wav", 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t), sr
        )
        shot = Shot(image_prompt="x", video_prompt="x", camera_movement=moves[i])
        res = maker.make_clip(
            ClipJob(shot=shot, keyframe=keyframe, narration=narr, out_path=work / f"pool{i}.mp4")
        )
        clips.append(res.path)
        narrs.append(narr)
    out_clips, out_narrs = [], []
    folder = work / "clips"
    folder.mkdir(exist_ok=True)
    for n in range(count):
        dst = folder / f"clip{n:04d}.mp4"
        try:
            os.link(clips[n % 4], dst)
        except OSError:
            shutil.copyfile(clips[n % 4], dst)
        out_clips.append(dst)
        out_narrs.append(narrs[n % 4])
    return out_clips, out_narrs


def bench_rough_cut(work: Path, clips: list[Path], narrs: list[Path]) -> float:
    print(f"== Rough cut of {len(clips)} clips")
    t0 = time.perf_counter()
    info = media.build_rough_cut(clips, narrs, work / f"rough_{len(clips)}.mp4")
    elapsed = time.perf_counter() - t0
    print(
        f"{info.video_duration_s:.1f} s of video in {elapsed:.2f} s; "
        f"frames {info.video_frames}/{info.expected_frames}; "
        f"decoded audio {info.audio_duration_s:.4f} s vs video {info.video_duration_s:.4f} s "
        f"(drift {info.drift_s * 1000:+.2f} ms, within one frame: {info.within_one_frame}); "
        f"video copied: {info.video_copied}; loudness {info.loudness_lufs:.2f} LUFS"
    )
    return elapsed


def bench_moviepy(work: Path, clips: list[Path]) -> float | None:
    try:
        from moviepy import VideoFileClip, concatenate_videoclips
    except ImportError:
        print("moviepy is not installed (pip install moviepy): skipped")
        return None
    print(f"== moviepy concatenation of {len(clips)} clips (re-encodes, veryfast)")
    t0 = time.perf_counter()
    opened = [VideoFileClip(str(c)) for c in clips]
    try:
        final = concatenate_videoclips(opened)
        final.write_videofile(
            str(work / "moviepy.mp4"),
            fps=30,
            codec="libx264",
            audio_codec="aac",
            preset="veryfast",
            threads=2,
            logger=None,
        )
    finally:
        for c in opened:
            c.close()
    elapsed = time.perf_counter() - t0
    info = media.probe(work / "moviepy.mp4", count="packets")
    assert info.video is not None and info.audio is not None
    print(
        f"{elapsed:.2f} s; video {info.video.duration_s:.3f} s, audio {info.audio.duration_s:.3f} s"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--moviepy-clips", type=int, default=50)
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["piper", "kenburns", "rough", "moviepy"]
    )
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        if "piper" not in args.skip:
            bench_piper(work, args.sentences)
        keyframe, narration = make_inputs(work)
        if "kenburns" not in args.skip:
            bench_kenburns(work, keyframe, narration)
        need = max(args.clips, args.moviepy_clips)
        clips, narrs = make_clip_pool(work, keyframe, need)
        if "rough" not in args.skip:
            bench_rough_cut(work, clips[: args.clips], narrs[: args.clips])
        if "moviepy" not in args.skip and args.moviepy_clips > 0:
            m = args.moviepy_clips
            ours = bench_rough_cut(work, clips[:m], narrs[:m])
            theirs = bench_moviepy(work, clips[:m])
            if theirs:
                print(f"moviepy / rough cut for {m} clips: {theirs / ours:.1f}x slower")


if __name__ == "__main__":
    main()

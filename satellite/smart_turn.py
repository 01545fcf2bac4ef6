"""The acoustic end-of-turn model: Smart Turn v3.2 (Pipecat, BSD-2), an ONNX file shipped in the
``pipecat-ai`` wheel, run on the last phrase of a command (at most 8 s) to say whether its speaker sounds
finished.

The model reads Whisper-style log-mel features (80 bins, 10 ms hop) of 8 s of 16 kHz audio,
zero-padded at the start, and answers one probability that the turn is complete. It is cheap
(about 70 ms on one core) but not sure of itself: on its own it takes many mid-sentence pauses
for ends, so :mod:`satellite.end_of_turn` weighs it with the words heard.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from pathlib import Path

import numpy as np

_LOGGER = logging.getLogger(__name__)

RATE = 16000
SECONDS = 8
N_FFT = 400
HOP = 160
MELS = 80
FRAMES = SECONDS * RATE // HOP  # 800
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


class SmartTurnMissing(Exception):
    """The model file is not installed (the ``pipecat-ai`` wheel, or a file given by path)."""


def bundled_model() -> Path | None:
    """The model inside the installed ``pipecat-ai`` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "audio" / "turn" / "smart_turn" / "data" / MODEL_FILE
        if path.is_file():
            return path
    return None


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """The Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@cache
def mel_filters() -> np.ndarray:
    """Triangular filters (80 x 201), area-normalised (Slaney), 0 Hz to 8 kHz: Whisper's filterbank."""
    bins = np.linspace(0.0, RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(RATE / 2)), MELS + 2))
    widths = np.diff(edges)
    slopes = edges[:, None] - bins[None, :]
    rising = -slopes[:-2] / widths[:-1, None]
    falling = slopes[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return filters.astype(np.float32)


@cache
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def features(audio: np.ndarray) -> np.ndarray:
    """The model's input (80 x 800) for float audio in [-1, 1] at 16 kHz: its last 8 s, padded at the start."""
    samples = SECONDS * RATE
    audio = np.asarray(audio, dtype=np.float32)[-samples:]
    audio = np.concatenate([np.zeros(samples - audio.size, dtype=np.float32), audio])
    audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)  # Whisper's extractor normalises the wave
    padded = np.pad(audio, N_FFT // 2, mode="reflect")  # centred frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:FRAMES]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    mel = mel_filters() @ power.T.astype(np.float32)
    log_mel = np.log10(np.maximum(mel, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """Smart Turn v3.2 loaded once; :meth:`complete` is blocking (call it off the event loop)."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or bundled_model()
        if path is None or not path.is_file():
            raise SmartTurnMissing(
                f"the end-of-turn model {path or MODEL_FILE} is not installed: install the satellite with "
                "scripts/setup.sh satellite (it brings the pipecat-ai wheel), or use --end-of-turn silence"
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One core: on two (measured on the turn corpus) it took twice as long at a pause, where the
        # other core is rarely free (the STT server, the answer).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.path = path
        _LOGGER.debug("End-of-turn model %s loaded", path)

    def complete(self, audio: np.ndarray) -> float:
        """The probability that the speaker has finished, from the audio of the command so far."""
        output = self._session.run(None, {"input_features": features(audio)[None]})[0]
        return float(np.asarray(output).reshape(-1)[0])

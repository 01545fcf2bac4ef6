"""Streaming speech detection with the Silero VAD model that ships inside faster-whisper.

The STT server uses it only to know *where speech ended* in the audio it has
received, so it can start the final decode during the trailing silence. One
ONNX session is shared by every stream (``run`` is thread-safe); each
:class:`SpeechDetector` carries its own recurrent state.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import onnxruntime
from faster_whisper.utils import get_assets_path

SAMPLE_RATE = 16000
FRAME = 512  # 32 ms, the frame size the model was trained on
_CONTEXT = 64  # samples of the previous frame the model sees


@functools.cache
def _session() -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
        providers=["CPUExecutionProvider"],
        sess_options=opts,
    )


class SpeechDetector:
    """Speech probability for each 32 ms frame of a 16 kHz float32 stream."""

    def __init__(self) -> None:
        self._session = _session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed samples; return one probability per frame completed by them."""
        data = np.concatenate((self._pending, samples)) if self._pending.size else samples
        count = data.size // FRAME
        self._pending = data[count * FRAME :].copy()
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        frames = data[: count * FRAME].reshape(count, FRAME)
        contexts = np.empty((count, _CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -_CONTEXT:]
        self._context = frames[-1, -_CONTEXT:].copy()
        batch = np.ascontiguousarray(np.concatenate((contexts, frames), axis=1), dtype=np.float32)
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(probs, dtype=np.float32).reshape(-1)

"""Kokoro-82M on ONNX Runtime: one session per process, text in, 24 kHz float audio out.

:meth:`KokoroEngine.synthesize` is blocking and thread-safe; the server calls
it from worker threads. A call can be stopped from another thread through its
:class:`Cancel` (ONNX Runtime's ``RunOptions.terminate``), so a client that
disconnects stops costing CPU at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime

from .phonemes import Phonemizer, split_phonemes
from .rewrite import DURATION_CAPS
from .text import clean_markup, spoken

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 24000
_SILENCE = 0.01  # amplitude below which Kokoro's padding counts as silence
_KEEP_BEFORE = int(0.03 * SAMPLE_RATE)
_KEEP_AFTER = int(0.12 * SAMPLE_RATE)
_FINAL_PAUSE_FRAMES = 5  # 125 ms: more than trim() keeps

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


class Cancelled(Exception):
    """The synthesis was stopped because nobody wants its audio any more."""


def run_options(*, give_back_memory: bool) -> onnxruntime.RunOptions:
    """Options for one model call; ``give_back_memory`` returns the call's working memory when it ends.

    ONNX Runtime's CPU arena keeps the largest working set it was ever asked
    for, so one long sentence would hold hundreds of megabytes for the life of
    the server. Short pieces (the first of every answer, where latency counts)
    keep their memory between calls; the arena is shrunk after a long piece.
    """
    options = onnxruntime.RunOptions()
    if give_back_memory:
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


# Pieces longer than this give their memory back after the call (an answer's first piece is a few words).
KEEP_MEMORY_TOKENS = 64


class Cancel:
    """Stops a running synthesis from another thread."""

    def __init__(self) -> None:
        self.options = run_options(give_back_memory=False)
        self.long_piece_options = run_options(give_back_memory=True)
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.options.terminate = True
        self.long_piece_options.terminate = True

    def options_for(self, tokens: int) -> onnxruntime.RunOptions:
        return self.long_piece_options if tokens > KEEP_MEMORY_TOKENS else self.options


def providers_for(device: str) -> list[str]:
    available = onnxruntime.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                "--device cuda needs onnxruntime-gpu (CUDAExecutionProvider); this onnxruntime has "
                + ", ".join(available)
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(model: Path, threads: int, device: str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Threads that spin while waiting for work take the cores from the LLM writing the rest of the answer
    # and the STT: the first audio came 70-150 ms sooner without it (bench/RESULTS.md, issue 16).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=providers_for(device))


def trim(audio: np.ndarray) -> np.ndarray:
    """Cut Kokoro's leading and trailing silence down to a short natural pause."""
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    if loud.size == 0:
        return audio[:0]
    return audio[max(0, loud[0] - _KEEP_BEFORE) : loud[-1] + _KEEP_AFTER]


_NEVER_CANCELLED = Cancel()  # the run options of calls that nobody can stop


class KokoroEngine:
    """A loaded Kokoro model and a phonemizer for each language it speaks (the server's, and the voices' own)."""

    def __init__(
        self, model: Path, *, threads: int | None = None, device: str = "cpu", language: str = "en-us"
    ) -> None:
        started = time.monotonic()
        self.model = model
        self.session = open_session(model, threads or os.cpu_count() or 1, device)
        inputs = {i.name: _DTYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self._token_input = "input_ids" if "input_ids" in inputs else "tokens"
        self._dtypes = inputs
        self.language = language
        self.phonemizer = Phonemizer(language)
        self._phonemizers = {language: self.phonemizer}
        self._phonemizers_lock = threading.Lock()
        self._caps = DURATION_CAPS in inputs
        self._stops = {self.phonemizer.vocab[mark] for mark in ".!?,;:…" if mark in self.phonemizer.vocab}
        _LOGGER.info("Loaded Kokoro %s in %.2f s", model.name, time.monotonic() - started)

    def feed(self, tokens: list[int], style: np.ndarray, speed: float) -> dict[str, np.ndarray]:
        """The model inputs for at most 510 tokens."""
        feed = {
            self._token_input: np.array([[0, *tokens, 0]], dtype=self._dtypes[self._token_input]),
            "style": np.asarray(style[min(len(tokens), len(style)) - 1], dtype=self._dtypes["style"]),
            "speed": np.array([speed], dtype=self._dtypes["speed"]),
        }
        if self._caps:
            feed[DURATION_CAPS] = self._duration_caps(tokens)
        return feed

    def run(self, tokens: list[int], style: np.ndarray, speed: float, cancel: Cancel | None = None) -> np.ndarray:
        """Audio for at most 510 tokens."""
        feed = self.feed(tokens, style, speed)
        options = (cancel or _NEVER_CANCELLED).options_for(len(tokens))
        try:
            audio = self.session.run(None, feed, options)[0]
        except Exception as err:
            if cancel is not None and cancel.cancelled:
                raise Cancelled from err
            raise
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def _duration_caps(self, tokens: list[int]) -> np.ndarray:
        """Frames each token may last: short final punctuation and end token (their silence is trimmed)."""
        caps = np.full((1, len(tokens) + 2), 1e4, dtype=np.float32)
        caps[0, -1] = 1
        index = len(tokens)
        while index > 0 and tokens[index - 1] in self._stops:
            caps[0, index] = _FINAL_PAUSE_FRAMES
            index -= 1
        return caps

    def phonemizer_for(self, language: str | None) -> Phonemizer:
        """The phonemizer of ``language`` (None: the server's), made the first time it is needed."""
        language = language or self.language
        with self._phonemizers_lock:
            if language not in self._phonemizers:
                self._phonemizers[language] = Phonemizer(language)
            return self._phonemizers[language]

    def speech_text(self, text: str, language: str | None = None) -> str:
        """The text as it is spoken in ``language`` (None: the server's): in English money, times and units
        spelled out; in every language the markup removed."""
        return spoken(text) if (language or self.language).startswith("en") else clean_markup(text)

    def spoken_length(self, text: str, language: str | None = None) -> int:
        """How long ``text`` is to say: its phonemes ("1,832,000" has 37), or its characters as spoken while
        the language's phonemizer is not loaded (it is never loaded here: this runs on the event loop)."""
        language = language or self.language
        words = self.speech_text(text, language)
        phonemizer = self._phonemizers.get(language)
        return len(words) if phonemizer is None else len(phonemizer.phonemes(words))

    def synthesize(
        self,
        text: str,
        style: np.ndarray,
        speed: float = 1.0,
        cancel: Cancel | None = None,
        language: str | None = None,
    ) -> Iterator[np.ndarray]:
        """Speak one piece of text in ``language`` (None: the server's): trimmed float32 audio, one array per
        model call (long text: several)."""
        phonemizer = self.phonemizer_for(language)
        phonemes = phonemizer.phonemes(self.speech_text(text, phonemizer.language))
        for piece in split_phonemes(phonemes):
            tokens = phonemizer.tokens(piece)
            if not tokens:
                continue
            if cancel is not None and cancel.cancelled:
                raise Cancelled
            yield trim(self.run(tokens, style, speed, cancel))

"""Text to Kokoro tokens: espeak-ng phonemes (the copy shipped in ``espeakng-loader``) and the model vocabulary."""

from __future__ import annotations

import json
import logging
import threading
from importlib import resources

import espeakng_loader
from phonemizer.backend import EspeakBackend
from phonemizer.backend.espeak.wrapper import EspeakWrapper

MAX_TOKENS = 510  # the model's context, without the two boundary tokens

# phonemizer warns about every text whose word count changes (numbers, abbreviations): keep its errors only.
_QUIET_LOGGER = logging.getLogger(__name__ + ".espeak")
_QUIET_LOGGER.setLevel(logging.ERROR)

# espeak-ng keeps process-wide state: one phonemization at a time.
_ESPEAK_LOCK = threading.Lock()


def kokoro_vocab() -> dict[str, int]:
    """Phoneme symbol → token id, from the config kokoro-onnx ships (the model's own vocabulary)."""
    config = json.loads((resources.files("kokoro_onnx") / "config.json").read_text(encoding="utf-8"))
    return config["vocab"]


class Phonemizer:
    """Turns text in one language into Kokoro token ids."""

    def __init__(self, language: str = "en-us") -> None:
        with _ESPEAK_LOCK:
            EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
            EspeakWrapper.set_library(espeakng_loader.get_library_path())
            self._backend = EspeakBackend(
                language,
                preserve_punctuation=True,
                with_stress=True,
                language_switch="remove-flags",
                logger=_QUIET_LOGGER,
            )
        self.language = language
        self.vocab = kokoro_vocab()

    def phonemes(self, text: str) -> str:
        with _ESPEAK_LOCK:
            result = self._backend.phonemize([text], strip=True, njobs=1)[0]
        return "".join(symbol for symbol in " ".join(result.split()) if symbol in self.vocab)

    def tokens(self, phonemes: str) -> list[int]:
        return [self.vocab[symbol] for symbol in phonemes if symbol in self.vocab]


def split_phonemes(phonemes: str, limit: int = MAX_TOKENS) -> list[str]:
    """Cut a phoneme string into pieces of at most ``limit`` symbols, at punctuation, else at spaces."""
    pieces: list[str] = []
    rest = phonemes.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(mark) for mark in ".!?;:,")
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = limit - 1
        pieces.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    if rest:
        pieces.append(rest)
    return pieces

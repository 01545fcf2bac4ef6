"""The Whisper model: loaded once per process, warmed up, called from worker threads."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from faster_whisper import WhisperModel

from .models import ModelSource

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class DecodeOptions:
    """Per-request decoding settings."""

    language: str | None  # None: detect
    beam_size: int
    initial_prompt: str | None = None


@dataclass(frozen=True)
class Recognition:
    """Text recognized in the first ``samples`` samples of an utterance."""

    samples: int
    text: str
    language: str | None
    seconds: float  # wall time the decode took


class Transcriber:
    """A faster-whisper model shared by every connection of the server."""

    def __init__(
        self,
        source: ModelSource,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        workers: int,
        download_root: str,
        local_files_only: bool,
    ) -> None:
        started = time.monotonic()
        self.source = source
        self.model = WhisperModel(
            source.path_or_id,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=workers,
            download_root=download_root,
            local_files_only=local_files_only,
        )
        self.languages: list[str] = list(self.model.supported_languages)
        self.multilingual: bool = self.model.model.is_multilingual
        _LOGGER.info(
            "Loaded Whisper %s (%s, %s on %s) in %.2f s",
            source.name,
            source.origin,
            compute_type,
            device,
            time.monotonic() - started,
        )

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Recognition:
        """Decode 16 kHz float32 mono audio. Blocking: call it from a worker thread."""
        started = time.monotonic()
        segments, info = self.model.transcribe(
            audio,
            language=options.language if self.multilingual else "en",
            beam_size=options.beam_size,
            initial_prompt=options.initial_prompt,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Recognition(
            samples=int(audio.size),
            text=text,
            language=info.language,
            seconds=time.monotonic() - started,
        )

    def warm_up(self, options: DecodeOptions) -> None:
        """Run one decode so the first real request does not pay for lazy initialisation."""
        started = time.monotonic()
        rng = np.random.default_rng(0)
        self.transcribe((rng.standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32), options)
        _LOGGER.info("Warmed up in %.2f s", time.monotonic() - started)

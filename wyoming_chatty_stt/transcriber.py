"""The Whisper model: loaded once per process, warmed up, called from worker threads.

Whisper's encoder is built for 30-second windows, and faster-whisper pads every
utterance to one: for a three-second question most of the work (about 200 of
300 ms with tiny.en on two cores) is spent encoding silence. A voice command is
short, so :class:`Transcriber` encodes a window just long enough for the audio
(at least ``min_window`` seconds and three times the audio: shorter windows make
Whisper repeat itself or slip on words) and checks the result the way Whisper's own fallback does
(repetition, a run-away length). When the check fails, or the audio is longer than a window, it
decodes the classic way. Measured on spoken questions (``bench/stt_window.py``): the same words,
four to five times faster. Words of low confidence are kept, marked unsure: Whisper's fallback for
them (sampling at rising temperatures) cost seconds and gave no better words on short commands.

A prompt (``--initial-prompt``: names, jargon) lowers Whisper's no-speech probability: music and
chimes came out as words ("I'm not a fan.") after one. A decode after a prompt whose words are
unsure is checked for speech without the prompt.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from chatty_common.repeats import repeated_tail

from .models import ModelSource

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
FULL_WINDOW_FRAMES = 3000
WINDOW_MARGIN_FRAMES = 100  # silence kept after the audio inside the window
DEFAULT_MIN_WINDOW = 10.0  # seconds; 8 was still exact in our measurements, 5 was not

# The same limits Whisper and faster-whisper use to reject a decode.
COMPRESSION_RATIO_LIMIT = 2.4
LOG_PROB_LIMIT = -1.0
NO_SPEECH_LIMIT = 0.6
MIN_LANGUAGE_PROBABILITY = 0.5
TOKENS_PER_SECOND_LIMIT = 12  # fast speech is about 5 tokens a second; more is a loop
FULL_WINDOW_SECONDS = 30
MAX_NEW_TOKENS = 218  # Whisper's 448-token context less the longest prompt faster-whisper builds (230)
# How many times a phrase of so many words ends a decode for it to be Whisper looping (longer ones: twice).
LOOP_REPEATS = {1: 4, 2: 3}


def said_over_and_over(text: str) -> bool:
    """Whisper looping: the decode ends in one word four times or more ("T-T-T-T-T" for a noise), two words
    three times, or a longer phrase twice ("Turn on the bedroom lamp Turn on the bedroom lamp Turn on", the
    last time cut short by the token budget).

    tiny.en does this on short commands (18 of 960 decodes of the turn corpus's complete clips, all of them
    commands), sure of its words, in text too short for gzip's compression ratio to tell. A speaker who
    starts again goes on with other words ("Turn on the, turn on the lights"), and one who repeats a word
    says it fewer times ("No, no, no"); a speaker who does say a phrase twice is heard in the full window.
    """
    heard = re.findall(r"\w+", text.casefold())
    for phrase in range(1, len(heard) // 2 + 1):
        if repeated_tail(heard, phrase) >= phrase * LOOP_REPEATS.get(phrase, 2):
            return True
    return False


def token_budget(seconds: float) -> int:
    """The most tokens a decode of ``seconds`` of speech may write: beyond it, Whisper is repeating itself."""
    return min(int(TOKENS_PER_SECOND_LIMIT * min(seconds, FULL_WINDOW_SECONDS)) + 8, MAX_NEW_TOKENS)


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
    window: float = 30.0  # seconds of encoder window used
    shared: bool = False  # made for another connection streaming the same speech
    sure: bool = True
    """False: Whisper's confidence in these words is under its own limit (its average log-probability)."""


def window_frames(audio_frames: int, min_window: float) -> int:
    """Encoder window for audio of ``audio_frames`` log-mel frames (a multiple of 100, at most 3000).

    At least ``min_window`` seconds and three times the audio: with the audio
    filling half the window, Whisper already slips on single words now and then
    ("lived" heard as "lives" in a six-second sentence).
    """
    wanted = max(3 * audio_frames, audio_frames + WINDOW_MARGIN_FRAMES, round(min_window * FRAMES_PER_SECOND))
    return min(FULL_WINDOW_FRAMES, math.ceil(wanted / 100) * 100)


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
        min_window: float = DEFAULT_MIN_WINDOW,
    ) -> None:
        started = time.monotonic()
        self.source = source
        self.min_window = min_window
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
        if self.min_window < FULL_WINDOW_FRAMES / FRAMES_PER_SECOND:
            fitted = self._transcribe_fitted(audio, options, started)
            if fitted is not None:
                return fitted
        return self._transcribe_full(audio, options, started)

    def transcribe_if_quick(self, audio: np.ndarray, options: DecodeOptions) -> Recognition | None:
        """Decode in the fitted window only; None when its result fails the check or is unsure. Blocking.

        For partial text while the user speaks: the full-window decode that would follow costs three
        to ten times as much (up to 2 s on two cores, measured on the turn corpus) and holds up the
        decode at the speaker's next pause, which the end of turn waits for.
        """
        started = time.monotonic()
        if self.min_window >= FULL_WINDOW_FRAMES / FRAMES_PER_SECOND:
            return self._transcribe_full(audio, options, started)
        recognition = self._transcribe_fitted(audio, options, started)
        return recognition if recognition is not None and recognition.sure else None

    def _transcribe_full(self, audio: np.ndarray, options: DecodeOptions, started: float) -> Recognition:
        # A decode that fails Whisper's checks is tried again at five rising temperatures, five samples
        # each; one that loops ("rote rote rote ...") would write 200 tokens every time: seconds of a
        # user's wait for a few words of speech. Bounded by the audio's length, as the fitted window is.
        prompt = options.initial_prompt
        segments, info = self.model.transcribe(
            audio,
            language=options.language if self.multilingual else "en",
            beam_size=options.beam_size,
            initial_prompt=prompt,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            max_new_tokens=token_budget(audio.size / SAMPLE_RATE),
        )
        decoded = list(segments)
        text = " ".join(segment.text.strip() for segment in decoded).strip()
        if prompt and text and all(segment.avg_logprob < LOG_PROB_LIMIT for segment in decoded):
            first = self.model.feature_extractor(audio[: FULL_WINDOW_SECONDS * SAMPLE_RATE])
            tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe", language=info.language)
            if self._no_speech_unprompted(self._encode(first, FULL_WINDOW_FRAMES), tokenizer) > NO_SPEECH_LIMIT:
                _LOGGER.debug("Unsure words after the prompt, and no speech without it: %r", text)
                text = ""
        return Recognition(
            samples=int(audio.size),
            text=text,
            language=info.language,
            seconds=time.monotonic() - started,
        )

    def _transcribe_fitted(self, audio: np.ndarray, options: DecodeOptions, started: float) -> Recognition | None:
        """Decode with a window fitted to the audio; None when only a full window will do."""
        whisper = self.model
        features = whisper.feature_extractor(audio)
        frames = window_frames(features.shape[-1], self.min_window)
        if features.shape[-1] + WINDOW_MARGIN_FRAMES > frames:
            return None  # longer than one window: faster-whisper's long-form decoding
        encoded = self._encode(features, frames)

        language = options.language if self.multilingual else "en"
        if language is None:
            ranked = whisper.model.detect_language(encoded)[0]
            token, probability = ranked[0]
            if probability < MIN_LANGUAGE_PROBABILITY:
                _LOGGER.debug("Language unsure in a %d-frame window (%.2f); full window", frames, probability)
                return None
            language = token[2:-2]  # "<|en|>"
        tokenizer = Tokenizer(whisper.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        previous = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        prompt = whisper.get_prompt(tokenizer, previous, without_timestamps=True)
        max_length = min(whisper.max_length, len(prompt) + token_budget(audio.size / SAMPLE_RATE))
        result = whisper.model.generate(
            encoded,
            [prompt],
            beam_size=options.beam_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),  # non-speech symbols, control tokens
        )[0]
        tokens = [token for token in result.sequences_ids[0] if token < tokenizer.eot]
        text = tokenizer.decode(tokens).strip()
        avg_log_prob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1
        no_speech = result.no_speech_prob
        if previous and avg_log_prob < LOG_PROB_LIMIT and no_speech <= NO_SPEECH_LIMIT:
            no_speech = self._no_speech_unprompted(encoded, tokenizer)  # the prompt lowers it (music heard)
        silence = no_speech > NO_SPEECH_LIMIT and avg_log_prob < LOG_PROB_LIMIT
        silence = silence or not any(char.isalnum() for char in text)  # "." for a silent window
        if not silence:
            problem = None
            if len(prompt) + len(tokens) >= max_length:
                problem = "ran to the length limit"
            elif get_compression_ratio(text) > COMPRESSION_RATIO_LIMIT or said_over_and_over(text):
                problem = "repeats itself"
            if problem:
                _LOGGER.debug("Decode in a %d-frame window %s: %r; full window", frames, problem, text)
                return None
        # Low confidence alone is no reason for the full window: its fallback (five rising temperatures,
        # five samples each) took 1-8 s on two cores and gave no better words on short commands
        # (bench/RESULTS.md, "Unsure words without the fallback"). They are the words, marked unsure.
        sure = silence or avg_log_prob >= LOG_PROB_LIMIT
        if not sure:
            _LOGGER.debug("Decode in a %d-frame window unsure (%.2f): %r", frames, avg_log_prob, text)
        return Recognition(
            samples=int(audio.size),
            text="" if silence else text,
            language=language,
            seconds=time.monotonic() - started,
            window=frames / FRAMES_PER_SECOND,
            sure=sure,
        )

    def _encode(self, features: np.ndarray, frames: int) -> ctranslate2.StorageView:
        """The encoder's output for log-mel ``features`` padded with silence to a window of ``frames``."""
        window = np.zeros((1, features.shape[0], frames), dtype=np.float32)
        window[0, :, : min(frames, features.shape[-1])] = features[:, :frames]
        return self.model.model.encode(ctranslate2.StorageView.from_array(window))

    def _no_speech_unprompted(self, encoded: ctranslate2.StorageView, tokenizer: Tokenizer) -> float:
        """Whisper's probability that the window holds no speech, read without a prompt (one decoder step)."""
        bare = self.model.get_prompt(tokenizer, [], without_timestamps=True)
        result = self.model.model.generate(encoded, [bare], max_length=len(bare) + 1, return_no_speech_prob=True)
        return float(result[0].no_speech_prob)

    def warm_up(self, options: DecodeOptions) -> None:
        """Run one decode so the first real request does not pay for lazy initialisation."""
        started = time.monotonic()
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
        self.transcribe(noise, options)
        self._transcribe_full(noise, options, started)  # the fallback's shapes, too
        _LOGGER.info("Warmed up in %.2f s", time.monotonic() - started)

"""The per-turn latency log: where each turn's time went, as one log line and one JSON line.

All times are ``time.monotonic()`` readings taken on the satellite:

- QUESTION-TO-RESPONSE_MS: end of speech detected (the question submitted) → first answer audio played
- VOICE-TO-VOICE_MS: last voiced audio frame of the question → first answer audio played
- STT_MS: end of speech → transcript
- LLM-TTF_MS / LLM-TOTAL_MS: transcript sent to the LLM server → first piece / whole answer (direct mode)
- TTS-TTFA_MS: first text sent to the TTS (or, through Home Assistant, the answer text arriving) → first audio;
  none through Home Assistant when the answer streamed (its text comes at the end, after its audio)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from chatty_common.metrics import MetricsFile

if TYPE_CHECKING:
    from .player import Playback

_LOGGER = logging.getLogger(__name__)

QUESTION_ENDINGS = ("?", ";", "？", "\u037e")  # also the full-width and the Greek question marks
FIGURES = ("QUESTION-TO-RESPONSE_MS", "VOICE-TO-VOICE_MS", "STT_MS", "LLM-TTF_MS", "LLM-TOTAL_MS", "TTS-TTFA_MS")


class Outcome(StrEnum):
    """How a turn ended, as the turn log and the metrics file name it."""

    ANSWERED = "answered"
    INTERRUPTED = "interrupted"  # the wake word cut the answer off (barge-in)
    NOTHING_SAID = "nothing said"  # no speech after the wake word
    NO_FOLLOW_UP = "no follow-up"  # nobody answered the answer's question (not logged: not a turn)
    NOT_UNDERSTOOD = "not understood"  # an empty transcript
    NOT_HANDLED = "not handled"  # the agent could not answer (its sentence is spoken)
    NO_ANSWER = "no answer"  # Home Assistant's run ended without speech (an answer with no words: "never mind")
    STT_UNAVAILABLE = "stt unavailable"
    LLM_UNAVAILABLE = "llm unavailable"
    TTS_UNAVAILABLE = "tts unavailable"
    STT_ERROR = "stt error"
    LLM_ERROR = "llm error"
    TTS_ERROR = "tts error"
    CONNECTION_LOST = "connection lost"
    HA_ERROR = "error"  # Home Assistant reported an error (its text in ``error``)
    HA_DISCONNECTED = "home assistant disconnected"
    PAUSED = "paused"  # Home Assistant paused the satellite mid-turn
    STOPPED = "stopped"  # the satellite was shut down mid-turn
    FAILED = "failed"  # a bug: see the log


def _ms(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return round((end - start) * 1000, 1)


@dataclass
class Turn:
    """One turn's moments and words, filled in as it goes."""

    mode: str
    wake_word: str | None = None
    conversation_id: str | None = None
    last_voice_at: float | None = None
    end_of_speech_at: float | None = None
    transcript_at: float | None = None
    llm_sent_at: float | None = None
    llm_first_at: float | None = None
    llm_done_at: float | None = None
    tts_text_at: float | None = None
    tts_first_audio_at: float | None = None
    transcript: str | None = None
    answer: str | None = None
    outcome: Outcome = Outcome.ANSWERED
    error: str | None = None
    """What a server or Home Assistant said went wrong."""
    extra: dict[str, Any] = field(default_factory=dict)
    answer_playback: Playback | None = field(default=None, repr=False)
    """The answer's audio on the speaker."""
    wall_clock_offset: float = field(default_factory=lambda: time.time() - time.monotonic())  # epoch = monotonic + this

    @property
    def first_played_at(self) -> float | None:
        """When the answer first sounded (also for an answer cut off while it was still coming)."""
        return self.answer_playback.first_sound_at if self.answer_playback is not None else None

    @property
    def follow_up(self) -> bool:
        """Heard without a wake word, after an answer that asked something."""
        return self.wake_word is None

    def asks_back(self) -> bool:
        """The answer was heard in full and ends with a question: the user is listened to again, no wake word."""
        return self.outcome is Outcome.ANSWERED and (self.answer or "").rstrip().endswith(QUESTION_ENDINGS)

    def reset_answer(self) -> None:
        """Forget an answer prepared during a pause that turned out not to be the end."""
        self.transcript_at = self.llm_sent_at = self.llm_first_at = self.llm_done_at = None
        self.tts_text_at = self.tts_first_audio_at = None
        self.transcript = self.answer = None
        self.answer_playback = None
        self.outcome = Outcome.ANSWERED

    def figures(self) -> dict[str, float | None]:
        stt = _ms(self.transcript_at, self.end_of_speech_at)
        tts = _ms(self.tts_first_audio_at, self.tts_text_at)
        return {
            "QUESTION-TO-RESPONSE_MS": _ms(self.first_played_at, self.end_of_speech_at),
            "VOICE-TO-VOICE_MS": _ms(self.first_played_at, self.last_voice_at),
            "STT_MS": None if stt is None else max(stt, 0.0),  # 0: the transcript was there before the end
            "LLM-TTF_MS": _ms(self.llm_first_at, self.llm_sent_at),
            "LLM-TOTAL_MS": _ms(self.llm_done_at, self.llm_sent_at),
            "TTS-TTFA_MS": None if tts is None or tts < 0 else tts,  # (see the module's docstring)
        }

    def stages(self) -> dict[str, float | None]:
        """Each moment of the turn in ms after the last voiced frame of the question (for the waterfall)."""
        moments = {
            "end_of_speech": self.end_of_speech_at,
            "transcript": self.transcript_at,
            "llm_sent": self.llm_sent_at,
            "llm_first": self.llm_first_at,
            "llm_done": self.llm_done_at,
            "tts_text": self.tts_text_at,
            "tts_first_audio": self.tts_first_audio_at,
            "first_played": self.first_played_at,
        }
        return {name: _ms(at, self.last_voice_at) for name, at in moments.items()}

    def record(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "outcome": self.outcome.value,
            **({"error": self.error} if self.error else {}),
            **self.figures(),
            "stages_ms": self.stages(),
            "wake_word": self.wake_word,
            **({"follow_up": True} if self.follow_up else {}),
            "conversation_id": self.conversation_id,
            "transcript": self.transcript,
            "answer": self.answer,
            # Wall-clock time of the first played audio, to line up with other programs' logs.
            "first_played_time": None
            if self.first_played_at is None
            else round(self.first_played_at + self.wall_clock_offset, 3),
            # Silences heard inside the answer because its audio came late (also of an answer cut off).
            **({"waits_s": list(self.answer_playback.waits)} if self.answer_playback is not None else {}),
            **self.extra,
        }


class TurnLog:
    """Writes each finished turn to the log and, with ``--metrics-file``, as a JSON line."""

    def __init__(self, metrics: MetricsFile | None = None) -> None:
        self.metrics = metrics

    def write(self, turn: Turn) -> None:
        figures = " ".join(
            f"{name}={'-' if value is None else f'{value:.0f}'}" for name, value in turn.figures().items()
        )
        outcome = f"{turn.outcome.value}: {turn.error}" if turn.error else turn.outcome.value
        _LOGGER.info("Turn %s: %s transcript=%r answer=%r", outcome, figures, turn.transcript or "", turn.answer or "")
        if self.metrics is not None:
            self.metrics.append(turn.record())

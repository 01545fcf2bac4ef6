"""One spoken command as it is heard: its frames queued for whoever streams them, its end, its pauses."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum

from .audio_io import FRAME_BYTES, FRAME_SECONDS, Frame
from .speech import CommandEnd, CommandRules, Endpointer

GO_ON_SPEECH = 0.1  # seconds of unbroken speech after a command's early end that mean the speaker went on


@dataclass(frozen=True)
class Heard:
    """One frame with what was heard in it: a wake word (its name) and the speech probability."""

    frame: Frame
    wake_word: str | None
    speech: float


class Marker(Enum):
    """Queued between a command's frames when the speaker pauses and when they go on."""

    PAUSE = "pause"
    """The speaker has paused long enough that the command may be over (work on it can start)."""
    RESUME = "resume"
    """Speech came back after a :attr:`PAUSE`."""


class CommandCapture:
    """One spoken command: frames go to ``queue`` until it ends (then None).

    With ``pause_after``, :attr:`Marker.PAUSE` is queued once the speaker has
    been silent that long after speech (the command may be over: work on it can
    start), and :attr:`Marker.RESUME` if speech then comes back before the end.
    """

    def __init__(self, rules: CommandRules, pause_after: float | None = None) -> None:
        self.endpointer = Endpointer(rules)
        self.pause_after = pause_after
        self.queue: asyncio.Queue[Frame | Marker | None] = asyncio.Queue()
        self.end: CommandEnd | None = None
        self.ended_at: float | None = None
        self.pcm = bytearray()
        """The command's audio so far (at most ``max_command`` seconds of it)."""
        self.pauses = 0
        """How many times :attr:`Marker.PAUSE` has been queued."""
        self._paused = False

    def feed(self, heard: Heard) -> CommandEnd | None:
        if self.end is not None:
            return self.end
        self.queue.put_nowait(heard.frame)
        self.pcm += heard.frame.pcm
        end = self.endpointer.feed(heard.frame, heard.speech)
        if self.pause_after is not None and end is None:
            silent_long_enough = self.endpointer.started and self.endpointer.silence >= self.pause_after
            if silent_long_enough and not self._paused:
                self._paused = True
                self.pauses += 1
                self.queue.put_nowait(Marker.PAUSE)
            elif self._paused and self.endpointer.silence == 0.0:
                self._paused = False
                self.queue.put_nowait(Marker.RESUME)
        if end is not None:
            self.finish(end, heard.frame.captured_at)
        return end

    def finish(self, end: CommandEnd, at: float | None = None) -> None:
        """End the command (end of speech, or ended from outside: a transcript, an error, a pause)."""
        if self.end is None:
            self.end = end
            self.ended_at = at if at is not None else time.monotonic()
            self.queue.put_nowait(None)

    def going_on(self, since: list[Heard]) -> CommandCapture:
        """The same command heard on after it ended early: a capture that starts with this one's audio
        (queued at once) and the frames heard ``since`` its end, and goes on from there."""
        capture = CommandCapture(self.endpointer.rules, self.pause_after)
        capture.endpointer = self.endpointer  # its speech so far, its time so far (towards max_command)
        capture.pcm = bytearray(self.pcm)
        for start in range(0, len(self.pcm), FRAME_BYTES):
            capture.queue.put_nowait(Frame(bytes(self.pcm[start : start + FRAME_BYTES]), 0.0))
        capture._paused = self.pause_after is not None  # still in the pause it ended at: no new one
        capture.pauses = self.pauses
        for heard in since:
            capture.feed(heard)
        return capture

    @property
    def paused(self) -> bool:
        """The speaker is silent since the last :attr:`Marker.PAUSE` and the command goes on."""
        return self._paused and self.end is None

    @property
    def last_voice_at(self) -> float | None:
        return self.endpointer.last_voice_at


class AfterEarlyEnd:
    """The moments after a command was ended early, at a pause judged to be its end: the speaker may
    still go on, until the silence that would have ended the command anyway has passed.

    :meth:`feed` keeps the frames heard meanwhile and says when the speaker went on (:data:`GO_ON_SPEECH`
    of unbroken speech) or when the chance has passed.
    """

    def __init__(self, capture: CommandCapture) -> None:
        self.capture = capture
        self.heard: list[Heard] = []
        self.silence = capture.endpointer.silence
        """Seconds since the last voiced frame."""
        self.speech = 0.0
        """Seconds of unbroken speech up to now."""

    def feed(self, heard: Heard) -> bool | None:
        """True: the speaker went on; False: they did not in time; None: not yet known."""
        self.heard.append(heard)
        if heard.speech >= self.capture.endpointer.rules.threshold:
            self.speech += FRAME_SECONDS
            self.silence = 0.0
            if self.speech >= GO_ON_SPEECH - 1e-9:
                return True
        else:
            self.speech = 0.0
            self.silence += FRAME_SECONDS
            if self.silence >= self.capture.endpointer.end_silence - 1e-9:
                return False
        return None

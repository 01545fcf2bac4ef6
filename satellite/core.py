"""The satellite's listening loop: every microphone frame is checked for the wake word and for speech
(on one audio thread, off the event loop), then handed to the mode (direct or Home Assistant).

A :class:`CommandCapture` follows one spoken command from the wake word (or a
follow-up) to its end, queuing its frames for whoever streams them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .audio_io import REOPEN_FIRST, REOPEN_MAX, DeviceError, FileMicrophone, Frame, Microphone
from .player import Player
from .speech import CommandEnd, CommandRules, Endpointer, VoiceActivity
from .wake import LocalWakeDetector, RemoteWakeDetector

_LOGGER = logging.getLogger(__name__)

VAD_WARM_UP_FRAMES = 30  # 0.3 s


@dataclass(frozen=True)
class Heard:
    """One frame with what was heard in it: a wake word (its name) and the speech probability."""

    frame: Frame
    wake_word: str | None
    speech: float


PAUSE = "pause"
"""Queued when the speaker has paused long enough that the command may be over (speculation point)."""
RESUME = "resume"
"""Queued when speech comes back after a :data:`PAUSE`."""


class CommandCapture:
    """One spoken command: frames go to ``queue`` until it ends (then None).

    With ``pause_after``, a :data:`PAUSE` marker is queued once the speaker has
    been silent that long after speech (the command may be over: work on it can
    start), and :data:`RESUME` if speech then comes back before the end.
    """

    def __init__(self, rules: CommandRules, pause_after: float | None = None) -> None:
        self.endpointer = Endpointer(rules)
        self.pause_after = pause_after
        self.queue: asyncio.Queue[Frame | str | None] = asyncio.Queue()
        self.end: CommandEnd | None = None
        self.ended_at: float | None = None
        self._paused = False

    def feed(self, heard: Heard) -> CommandEnd | None:
        if self.end is not None:
            return self.end
        self.queue.put_nowait(heard.frame)
        end = self.endpointer.feed(heard.frame, heard.speech)
        if self.pause_after is not None and end is None:
            silent_long_enough = self.endpointer.started and self.endpointer.silence >= self.pause_after
            if silent_long_enough and not self._paused:
                self._paused = True
                self.queue.put_nowait(PAUSE)
            elif self._paused and self.endpointer.silence == 0.0:
                self._paused = False
                self.queue.put_nowait(RESUME)
        if end is not None:
            self.finish(end, heard.frame.captured_at)
        return end

    def finish(self, end: CommandEnd, at: float | None = None) -> None:
        """End the command (end of speech, or ended from outside: a transcript, an error, a pause)."""
        if self.end is None:
            self.end = end
            self.ended_at = at if at is not None else time.monotonic()
            self.queue.put_nowait(None)

    @property
    def last_voice_at(self) -> float | None:
        return self.endpointer.last_voice_at


class Mode(ABC):
    """What the satellite does with what it hears: direct turns, or a Home Assistant pipeline."""

    @abstractmethod
    def on_heard(self, heard: Heard) -> None:
        """Called for every frame, in order, on the event loop; must not block."""

    @property
    @abstractmethod
    def idle(self) -> bool:
        """Nothing is being listened to, answered or played."""

    @property
    @abstractmethod
    def capturing(self) -> bool:
        """A spoken command is being heard (its end is looked for: the speech probability is needed)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open what the mode needs (a server, connections)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop turns in progress and release what the mode opened."""


class Listener:
    """Runs the microphone through wake word and voice activity detection on one audio thread."""

    def __init__(
        self, mic: Microphone, wake: LocalWakeDetector | RemoteWakeDetector | None, vad: VoiceActivity
    ) -> None:
        self.mic = mic
        self.wake = wake
        self.vad = vad
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="listener")
        self._start: float | None = None
        self._vad_on = False
        self._recent: deque[bytes] = deque(maxlen=VAD_WARM_UP_FRAMES)

    def _analyse(self, chunk: list[Frame], want_speech: bool) -> list[tuple[str | None, float]]:
        """Wake word and speech probability for each frame of a chunk (on the listener's thread).

        Voice activity detection, the costlier of the two, runs only while speech is wanted: during a
        command, and from a wake word on (a command starts there). Switched on, the detector first
        hears the last :data:`VAD_WARM_UP_FRAMES` again, so it starts in the state it would be in had
        it run all along.
        """
        results: list[tuple[str | None, float]] = []
        for frame in chunk:
            wake = self.wake.process(frame.pcm) if isinstance(self.wake, LocalWakeDetector) else None
            speech = 0.0
            if want_speech:
                if not self._vad_on:
                    self.vad.reset()
                    for pcm in self._recent:
                        self.vad.process(pcm)
                    self._vad_on = True
                speech = self.vad.process(frame.pcm)
            else:
                self._vad_on = False
            self._recent.append(frame.pcm)
            want_speech = want_speech or wake is not None
            results.append((wake, speech))
        return results

    async def heard(self, want_speech: Callable[[], bool] = lambda: True) -> AsyncIterator[Heard]:
        """What the microphone hears. A microphone that fails at once is an error; one that stops after
        working (a USB glitch, a recorder that crashed) is opened again with back-off.

        ``want_speech`` says whether the speech probability is needed now (else it is 0.0).
        """
        loop = asyncio.get_running_loop()
        worked = failed = False
        backoff = REOPEN_FIRST
        while True:
            try:
                async for chunk in self.mic.chunks():
                    if failed:
                        _LOGGER.info("The microphone %s works again", self.mic.description)
                    worked, failed, backoff = True, False, REOPEN_FIRST
                    # One hop to the listener's thread per device read, not per 10 ms frame.
                    results = await loop.run_in_executor(self._executor, self._analyse, chunk, want_speech())
                    for frame, (wake, speech) in zip(chunk, results, strict=True):
                        if isinstance(self.wake, RemoteWakeDetector):
                            if self._start is None:
                                self._start = frame.captured_at
                            at = int((frame.captured_at - self._start) * 1000)
                            wake = await self.wake.process(frame.pcm, at)
                        yield Heard(frame, wake, speech)
                return
            except DeviceError as err:
                if not worked:
                    raise
                _LOGGER.warning("%s; opening the microphone again in %.0f s", err, backoff)
                failed = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, REOPEN_MAX)

    async def close(self) -> None:
        if isinstance(self.wake, RemoteWakeDetector):
            await self.wake.close()
        await self.mic.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


class Satellite:
    """Listens until stopped (or, with a microphone file, until the file is used up and all is quiet)."""

    def __init__(self, listener: Listener, player: Player, mode: Mode) -> None:
        self.listener = listener
        self.player = player
        self.mode = mode

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        mic = self.listener.mic
        await self.mode.start()
        # One clock for both: a microphone file and a speaker file line up sample for sample.
        start = time.monotonic()
        if isinstance(mic, FileMicrophone):
            mic.start_at = start
        self.player.start(at=start)
        listening = asyncio.create_task(self._listen())
        stopping = asyncio.create_task(stop.wait())
        try:
            # A stop is noticed at once, also while the microphone delivers nothing (a stalled device).
            await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            listening.cancel()
            # Never wait long on a cancellation: Python 3.11's wait_for can lose one (in a library).
            await asyncio.wait({listening}, timeout=1.0)
            await self.mode.close()
            # Together: each waits up to a second for its thread to leave a device that has stalled.
            await asyncio.gather(self.listener.close(), asyncio.to_thread(self.player.close))
        if listening.done() and not listening.cancelled() and (error := listening.exception()) is not None:
            raise error  # what ended the listening (a microphone that cannot be used)

    async def _listen(self) -> None:
        mic = self.listener.mic
        async for heard in self.listener.heard(lambda: self.mode.capturing):
            self.mode.on_heard(heard)
            if isinstance(mic, FileMicrophone) and mic.ended.is_set() and self.mode.idle and not self.player.busy:
                _LOGGER.info("The microphone file is used up and the satellite is idle: stopping")
                return

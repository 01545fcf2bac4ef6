"""The satellite's listening loop: every microphone frame is checked for the wake word and for speech
(on one audio thread, off the event loop), then handed to the mode (direct or Home Assistant)."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from .audio_io import (
    REOPEN_FIRST,
    REOPEN_MAX,
    DeviceError,
    DeviceHung,
    DevicesListedAnew,
    FileMicrophone,
    Frame,
    Microphone,
)
from .capture import Heard
from .player import Player
from .speech import VoiceActivity
from .turns import TurnController
from .wake import LocalWakeDetector, RemoteWakeDetector

_LOGGER = logging.getLogger(__name__)

VAD_WARM_UP_FRAMES = 30  # 0.3 s


class Mode(ABC):
    """What the satellite does with what it hears: direct turns, or a Home Assistant pipeline.

    Both run their turns through one :class:`TurnController`, ``turns``.
    """

    turns: TurnController

    def on_heard(self, heard: Heard) -> None:
        """Called for every frame, in order, on the event loop; must not block."""
        if not self.turns.feed(heard) and heard.wake_word is not None:
            self.on_wake_word(heard.wake_word)

    def on_wake_word(self, wake_word: str) -> None:
        """The wake word, heard while no command is: a new turn (which cuts off an answer being played)."""
        self.listen(wake_word)

    @abstractmethod
    def listen(self, wake_word: str | None) -> None:
        """Hear a command (after the wake word, or as a follow-up without one)."""

    @property
    def idle(self) -> bool:
        """Nothing is being listened to, answered or played."""
        return self.turns.idle

    @property
    def capturing(self) -> bool:
        """A spoken command is being heard (its end is looked for)."""
        return self.turns.capturing

    @property
    def wants_speech(self) -> bool:
        """The speech probability is needed: a command is being heard, or may yet go on."""
        return self.turns.wants_speech

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
                    wanted = want_speech()
                    # Idle, the wake word may be heard up to 0.1 s later: the device hands over audio in
                    # batches. From a wake word on, every read comes at once (the end of speech is timed).
                    self.mic.relaxed = not wanted
                    # One hop to the listener's thread per batch, not per 10 ms frame.
                    results = await loop.run_in_executor(self._executor, self._analyse, chunk, wanted)
                    for frame, (wake, speech) in zip(chunk, results, strict=True):
                        if isinstance(self.wake, RemoteWakeDetector):
                            if self._start is None:
                                self._start = frame.captured_at
                            at = int((frame.captured_at - self._start) * 1000)
                            wake = await self.wake.process(frame.pcm, at)
                        yield Heard(frame, wake, speech)
                return
            except DevicesListedAnew as err:
                _LOGGER.info("The microphone opens again: %s", err)
            except DeviceHung:
                raise  # nothing in this process can open it again
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
        watching = asyncio.create_task(self._watch_speaker())
        try:
            # A stop is noticed at once, also while the microphone delivers nothing (a stalled device).
            await asyncio.wait({listening, stopping, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            watching.cancel()
            listening.cancel()
            # Never wait long on a cancellation: Python 3.11's wait_for can lose one (in a library).
            await asyncio.wait({listening}, timeout=1.0)
            await self.mode.close()
            # Together: each waits up to a second for its thread to leave a device that has stalled.
            await asyncio.gather(self.listener.close(), asyncio.to_thread(self.player.close))
        for task in (watching, listening):
            if task.done() and not task.cancelled() and (error := task.exception()) is not None:
                raise error  # what ended the satellite (a microphone or a speaker that cannot be used)

    async def _watch_speaker(self) -> None:
        """Raises :class:`DeviceHung` once the speaker has hung (:meth:`Player.hung`)."""
        while True:
            await asyncio.sleep(1.0)
            if (hung := self.player.hung()) is not None:
                raise hung

    async def _listen(self) -> None:
        mic = self.listener.mic
        async for heard in self.listener.heard(lambda: self.mode.wants_speech):
            self.mode.on_heard(heard)
            if isinstance(mic, FileMicrophone) and mic.ended.is_set() and self.mode.idle and not self.player.busy:
                _LOGGER.info("The microphone file is used up and the satellite is idle: stopping")
                return

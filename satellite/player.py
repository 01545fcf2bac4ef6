"""Streaming playback: audio is played the moment it arrives, and the player knows when it really ended.

A thread owns the speaker. It plays queued audio in order and keeps the output
running with silence when there is none, so a device never has to start up
(no clipped first syllable) and a file records on the satellite's clock. It
stays at most ``lead`` seconds ahead of real time, so :meth:`Player.stop`
(barge-in) silences the speaker within that time. Each :class:`Playback`
knows when its first sample sounded, when its last one had finished, and where
the listener heard silence in between because its audio had not come yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque

from chatty_common.audio import PcmFormat, PcmToPcm16

from .audio_io import REOPEN_FIRST, REOPEN_MAX, DeviceCalls, DeviceError, DeviceHung, RealTimePacer, Speaker

_LOGGER = logging.getLogger(__name__)

SILENCE_BLOCK = 0.02  # seconds of silence written at a time while idle
WAIT_SECONDS = 0.1  # silence (audio late) inside a playback that counts as a wait (shorter ones: scheduling)
JOIN_SECONDS = 1.0  # how long closing waits for the player's thread to leave the speaker


class Playback:
    """One answer or sound. ``add`` audio as it arrives, then ``end``; await ``finished``."""

    def __init__(self, player: Player, fmt: PcmFormat, loop: asyncio.AbstractEventLoop, *, held: bool = False) -> None:
        self._player = player
        self._held: list[bytes | None] | None = [] if held else None
        self._converter = PcmToPcm16(fmt, player.rate)
        self._loop = loop
        self.finished = asyncio.Event()
        self.first_sound_at: float | None = None
        """``time.monotonic()`` when the first sample reached the speaker's output."""
        self.sounded = asyncio.Event()
        """Set once the first sample has reached the speaker's output."""
        self.end_at: float | None = None
        self.interrupted = False
        self.seconds = 0.0
        self.waits: list[float] = []
        """Seconds of silence the speaker played inside this playback because its next audio was late (a stall
        the listener hears; pauses in the audio itself are not waits), each of WAIT_SECONDS or more."""
        self._starved = 0.0

    def _put(self, pcm: bytes | None) -> None:
        if self._held is not None:
            self._held.append(pcm)
        else:
            self._player._put(self, pcm)

    def add(self, pcm: bytes) -> None:
        converted = self._converter.convert(pcm)
        if converted:
            self.seconds += len(converted) / 2 / self._player.rate
            self._put(converted)

    def end(self) -> None:
        tail = self._converter.flush()
        if tail:
            self._put(tail)
        self._put(None)

    def release(self) -> None:
        """Start playing a playback made with ``held=True`` (what arrived so far, then the rest as it comes)."""
        held, self._held = self._held, None
        for pcm in held or []:
            self._player._put(self, pcm)

    def take_back(self) -> bool:
        """Withdraw a playback none of which has sounded yet: what is queued is dropped, and whatever is
        added from now on is held (never played). False, and nothing changes, once it has begun to sound."""
        return self._player._take_back(self)

    def _notify(self, event: asyncio.Event) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone
            self._loop.call_soon_threadsafe(event.set)


class Player:
    """Plays :class:`Playback` s one after another on a speaker, from its own thread."""

    def __init__(self, speaker: Speaker, lead: float = 0.03) -> None:
        self.speaker = speaker
        self.rate = speaker.rate
        self.lead = lead
        self._items: deque[tuple[Playback, bytes | None]] = deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._ending: list[Playback] = []
        self._sounding: Playback | None = None  # whose audio was played last, while its end has not come
        self._calls = DeviceCalls()  # the thread's calls of the speaker

    def start(self, at: float | None = None) -> None:
        """Start the output; ``at`` (``time.monotonic()``) lines a file's timeline up with the microphone."""
        self._thread = threading.Thread(target=self._run, args=(at or time.monotonic(),), name="player", daemon=True)
        self._thread.start()

    def playback(self, fmt: PcmFormat, *, held: bool = False) -> Playback:
        """A new playback; ``held`` ones are not played until :meth:`Playback.release`."""
        return Playback(self, fmt, asyncio.get_running_loop(), held=held)

    def queue(self, pcm: bytes, rate: int) -> Playback:
        """Queue a whole 16-bit mono sound after what is already queued."""
        playback = self.playback(PcmFormat(rate, 2, 1))
        playback.add(pcm)
        playback.end()
        return playback

    async def play(self, pcm: bytes, rate: int) -> Playback:
        """Play a whole 16-bit mono sound and wait until it has been heard."""
        playback = self.queue(pcm, rate)
        await playback.finished.wait()
        return playback

    def stop(self) -> bool:
        """Drop everything not yet played (barge-in). True if something was playing or waiting."""
        with self._lock:
            dropped = {playback for playback, _ in self._items} | set(self._ending)
            self._items.clear()
            self._ending.clear()
            self._sounding = None
        for playback in dropped:
            if not playback.finished.is_set():
                playback.interrupted = True
                playback.end_at = time.monotonic()
                playback._notify(playback.finished)
        return bool(dropped)

    def _take_back(self, playback: Playback) -> bool:
        with self._lock:
            if playback.first_sound_at is not None:
                return False
            playback._held = []
            kept = [item for item in self._items if item[0] is not playback]
            self._items.clear()
            self._items.extend(kept)
            return True

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._items or self._ending)

    def _put(self, playback: Playback, pcm: bytes | None) -> None:
        with self._lock:
            self._items.append((playback, pcm))

    def hung(self) -> DeviceHung | None:
        """The error to end with once the thread has been inside the speaker for good (a write that never
        returns: the sound library has hung, and only a new process can use the speaker); None before."""
        return self._calls.hung(f"speaker {self.speaker.description}", "its device")

    def _run(self, clock: float) -> None:
        """Play until closed; a speaker that fails is opened again with back-off (where it can be)."""
        backoff = REOPEN_FIRST
        while not self._closed.is_set():
            try:
                self._play(clock)
                return
            except Exception as err:
                self.stop()  # what was playing is lost
                if not self.speaker.reopenable:
                    _LOGGER.exception("The speaker failed; playback stopped")
                    return
                _LOGGER.warning("The speaker failed (%s); opening it again in %.0f s", err, backoff)
            while not self._closed.wait(backoff):
                self.stop()  # nothing waits for sound that cannot play
                try:
                    self._calls.run(self.speaker.reopen)
                except DeviceError as err:
                    backoff = min(backoff * 2, REOPEN_MAX)
                    _LOGGER.warning("%s; opening the speaker again in %.0f s", err, backoff)
                    continue
                _LOGGER.info("The speaker %s works again", self.speaker.description)
                backoff, clock = REOPEN_FIRST, time.monotonic()
                break

    def _play(self, clock: float) -> None:
        silence = bytes(int(self.rate * SILENCE_BLOCK) * 2)
        pacer = RealTimePacer()  # for a "paced" device that turns out to have no clock
        warned = False
        while not self._closed.is_set():
            now = time.monotonic()
            if clock < now - 0.05:  # fell behind (a slow write): a file keeps its timeline with silence
                if not self.speaker.paced:
                    gap = int((now - clock) * self.rate)
                    self._calls.run(self.speaker.write, bytes(gap * 2))
                if (sounding := self._sounding) is not None:  # (read once: a barge-in may clear it meanwhile)
                    sounding._starved += now - clock
                clock = now
            with self._lock:
                item = self._items.popleft() if self._items else None
                if item is not None and item[1] is None:
                    item[0].end_at = clock
                    self._ending.append(item[0])
                    if self._sounding is item[0]:
                        self._sounding = None
                    continue
                if item is not None and item[0].first_sound_at is None:  # under the lock: see _take_back
                    item[0].first_sound_at = max(clock, now)
                    item[0]._notify(item[0].sounded)
                ending = [p for p in self._ending if p.end_at is not None and p.end_at <= now]
                for playback in ending:
                    self._ending.remove(playback)
            for playback in ending:
                playback._notify(playback.finished)
            if item is None:
                pcm = silence
                if (sounding := self._sounding) is not None:
                    sounding._starved += SILENCE_BLOCK
            else:
                playback, data = item
                assert data is not None
                pcm = data
                self._count_wait(playback)
            self._calls.run(self.speaker.write, pcm)
            clock = max(clock, now if self.speaker.paced else clock) + len(pcm) / 2 / self.rate
            if not self.speaker.paced:
                delay = clock - self.lead - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            elif delay := pacer.delay(len(pcm) / 2 / self.rate):
                if not warned:
                    warned = True
                    _LOGGER.warning(
                        "The speaker %s takes audio faster than real time (a device without a clock?); "
                        "playing at real-time pace",
                        self.speaker.description,
                    )
                time.sleep(delay)

    def _count_wait(self, playback: Playback) -> None:
        """Audio of ``playback`` plays now: silence since its audio before (none of it was queued) was a wait."""
        if self._sounding is playback and playback._starved >= WAIT_SECONDS:
            playback.waits.append(round(playback._starved, 2))
        playback._starved = 0.0
        self._sounding = playback

    def close(self) -> None:
        self._closed.set()
        self.stop()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)
            if self._thread.is_alive():
                # Closing the device under a thread that is inside it crashes; the process is ending anyway.
                _LOGGER.warning("The speaker is stuck in a write (%.0f s); leaving it open", JOIN_SECONDS)
                return
        self.speaker.close()

"""A bounded pool of decode workers with priorities and fair queueing.

Every utterance has at most one decode waiting and one running. Workers take
the waiting decode with the highest priority (a client waiting for its final
transcript first, then an utterance whose speech just ended, then progress
updates while someone is still talking), oldest request first within a
priority, so no client can starve the others. The audio is taken when a
decode *starts*, so a decode that waited covers everything received by then.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from enum import IntEnum
from functools import partial
from typing import NamedTuple

import numpy as np

from .transcriber import SAMPLE_RATE, DecodeOptions, Recognition, Transcriber

_LOGGER = logging.getLogger(__name__)


class Priority(IntEnum):
    """Why a decode is wanted; higher runs first."""

    PROGRESS = 0  # partial text while the user speaks
    ENDPOINT = 1  # speech ended: this decode will probably be the final one
    FINAL = 2  # the client sent audio-stop and is waiting


class Snapshot(NamedTuple):
    """The audio to decode, how, and how many samples of the utterance it stands for (the audio is the
    speech with the silence around it cut or made up to a fixed length)."""

    audio: np.ndarray
    options: DecodeOptions
    covers: int
    heard: int | None = None
    """How many of the audio's first samples were heard up to the end of the speech (the rest is the
    silence after it, which differs with the moment the decode starts); None: all of them."""


def decode_snapshot(transcriber: Transcriber, snapshot: Snapshot, *, quick: bool = False) -> Recognition | None:
    """Decode a snapshot (blocking); the recognition stands for all the samples the snapshot covers.

    ``quick``: the fitted window only, None when its result is unsure (see ``transcribe_if_quick``).
    """
    audio, options, covers, _ = snapshot
    if quick:
        recognition = transcriber.transcribe_if_quick(audio, options)
        return None if recognition is None else replace(recognition, samples=covers)
    return replace(transcriber.transcribe(audio, options), samples=covers)


class DecodeJob:
    """One requested decode of an utterance's audio."""

    def __init__(self, priority: Priority, seq: int, snapshot: Callable[[DecodeJob], Snapshot]) -> None:
        self.priority = priority
        self.seq = seq
        self._snapshot = snapshot
        self.covers: int | None = None  # samples, known once started
        self.result: asyncio.Future[Recognition | None] = asyncio.get_running_loop().create_future()
        """The recognition; None for an unsure progress decode (partial text is not worth a full-window decode)."""

    @property
    def started(self) -> bool:
        return self.covers is not None

    def take_snapshot(self) -> Snapshot:
        snapshot = Snapshot(*self._snapshot(self))
        self.covers = snapshot.covers
        return snapshot


SHARED_DECODES = 16  # recent decodes kept for another connection streaming the same speech ...
SHARED_SECONDS = 30.0  # ... for this long


class SharedDecodes:
    """Decodes of the same speech, made once for every connection that streams it.

    With Chatty's integration in Home Assistant, a satellite streams each command twice to this server:
    to Home Assistant, which streams it here, and here itself, for the words at each pause that decide
    whether the speaker is done. Both connections decode the same pause; on two cores the second
    decode (150-300 ms) holds up the first, the satellite's judgement and the answer. A decode is known
    by the speech it was made of (up to the end of the speech: the silence after it differs with the
    moment each decode starts) and its options; a decode running or made in the last
    ``SHARED_SECONDS`` answers every request for the same.
    """

    def __init__(self) -> None:
        self._decodes: OrderedDict[bytes, tuple[asyncio.Future[Recognition | None], float]] = OrderedDict()

    @staticmethod
    def key(snapshot: Snapshot) -> bytes:
        heard = snapshot.audio[: snapshot.heard] if snapshot.heard is not None else snapshot.audio
        digest = hashlib.blake2b(repr(snapshot.options).encode(), digest_size=16)
        digest.update(np.ascontiguousarray(heard).data)  # a view of the buffer: no copy on the event loop
        return digest.digest()

    def find(self, key: bytes) -> asyncio.Future[Recognition | None] | None:
        """A decode of the same speech, running or made (a quick one, of the fitted window only, gives None
        when it is unsure: a full decode then goes on to Whisper's 30 s window)."""
        self._forget_old()
        found = self._decodes.get(key)
        return None if found is None else found[0]

    def add(self, key: bytes, decode: asyncio.Future[Recognition | None]) -> None:
        self._decodes[key] = (decode, time.monotonic())
        self._decodes.move_to_end(key)
        while len(self._decodes) > SHARED_DECODES:
            self._decodes.popitem(last=False)

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._decodes and now - next(iter(self._decodes.values()))[1] > SHARED_SECONDS:
            self._decodes.popitem(last=False)


class DecodeScheduler:
    """Runs decode jobs on ``workers`` threads, highest priority first."""

    def __init__(self, transcriber: Transcriber, workers: int) -> None:
        self._transcriber = transcriber
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        self._waiting: set[DecodeJob] = set()
        self._wakeup = asyncio.Event()
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._shared = SharedDecodes()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"decode worker {n}") for n in range(self._workers)]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, priority: Priority, snapshot: Callable[[DecodeJob], Snapshot]) -> DecodeJob:
        job = DecodeJob(priority, next(self._seq), snapshot)
        self._waiting.add(job)
        self._wakeup.set()
        return job

    def withdraw(self, job: DecodeJob) -> None:
        """Forget a job that has not started (its utterance is gone)."""
        self._waiting.discard(job)
        if not job.result.done():
            job.result.cancel()

    async def _work(self) -> None:
        while True:
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job = max(self._waiting, key=lambda j: (j.priority, -j.seq))
            self._waiting.discard(job)
            try:
                snapshot = job.take_snapshot()
                quick = job.priority == Priority.PROGRESS
                recognition = await self._decode(snapshot, quick)
            except asyncio.CancelledError:
                if not job.result.done():
                    job.result.cancel()
                raise
            except Exception as err:  # a decode failure fails only its own request
                _LOGGER.exception("Decode failed")
                if not job.result.done():
                    job.result.set_exception(err)
                continue
            if not job.result.done():
                job.result.set_result(recognition)

    async def _decode(self, snapshot: Snapshot, quick: bool) -> Recognition | None:
        """The snapshot's recognition: another connection's decode of the same speech, else a decode of its own."""
        key = self._shared.key(snapshot)
        if (shared := self._shared.find(key)) is not None:
            try:
                recognition = await asyncio.shield(shared)
            except asyncio.CancelledError:
                if not shared.cancelled():
                    raise  # this worker is being stopped
            except Exception:
                _LOGGER.debug("The decode of the same speech failed; decoding it again")
            else:
                if recognition is not None or quick:
                    # Whichever connection asked second: the one that asked first may never log a transcript
                    # (the satellite drops its words stream once it has judged the pause).
                    _LOGGER.info(
                        "Decode of %.2f s of speech shared with another connection streaming the same audio",
                        snapshot.covers / SAMPLE_RATE,
                    )
                    return None if recognition is None else replace(recognition, samples=snapshot.covers, shared=True)
                _LOGGER.debug("The quick decode of the same speech was unsure; a full decode of its own")
        loop = asyncio.get_running_loop()
        decode: asyncio.Future[Recognition | None] = loop.create_future()
        self._shared.add(key, decode)
        try:
            recognition = await loop.run_in_executor(
                self._pool, partial(decode_snapshot, self._transcriber, snapshot, quick=quick)
            )
        except asyncio.CancelledError:
            decode.cancel()
            raise
        except Exception as err:
            decode.set_exception(err)
            decode.exception()  # retrieved: a request may never come for it
            raise
        decode.set_result(recognition)
        return recognition

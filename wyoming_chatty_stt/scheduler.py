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
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from enum import IntEnum
from functools import partial

import numpy as np

from .transcriber import DecodeOptions, Recognition, Transcriber

_LOGGER = logging.getLogger(__name__)


class Priority(IntEnum):
    """Why a decode is wanted; higher runs first."""

    PROGRESS = 0  # partial text while the user speaks
    ENDPOINT = 1  # speech ended: this decode will probably be the final one
    FINAL = 2  # the client sent audio-stop and is waiting


Snapshot = tuple[np.ndarray, DecodeOptions, int]
"""The audio to decode, how, and how many samples of the utterance it stands for (the audio is the
speech with the silence around it cut or made up to a fixed length)."""


def decode_snapshot(transcriber: Transcriber, snapshot: Snapshot, *, quick: bool = False) -> Recognition | None:
    """Decode a snapshot (blocking); the recognition stands for all the samples the snapshot covers.

    ``quick``: the fitted window only, None when its result is unsure (see ``transcribe_if_quick``).
    """
    audio, options, covers = snapshot
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
        audio, options, covers = self._snapshot(self)
        self.covers = covers
        return audio, options, covers


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
        loop = asyncio.get_running_loop()
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
                recognition = await loop.run_in_executor(
                    self._pool, partial(decode_snapshot, self._transcriber, snapshot, quick=quick)
                )
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

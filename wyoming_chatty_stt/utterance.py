"""One utterance, from ``audio-start`` to ``audio-stop``: buffer, speech tracking, speculative decodes.

While audio streams in, the utterance

* decodes what it has about once a second while the user speaks, and turns
  the words two successive decodes agree on into partial text;
* starts a full-quality decode as soon as speech has been followed by a short
  silence (``endpoint_silence``), which is usually long before the client
  (HA waits for 0.7 s of silence) sends ``audio-stop``.

At ``audio-stop`` that decode is the answer if no speech came after the audio
it covered; otherwise the utterance decodes again. When such a decode covers
all the speech so far (or one already does: a decode that started just after the speech ended), its
text is offered at once as a *candidate* (``on_candidate``, with the seconds of audio it covers and
whether Whisper was sure of the words): what
the transcript will be if the speaker is done; once at every pause, even when the words are the same
as at the last one. All this happens only while
audio arrives live: a recording sent faster than real time is decoded once,
at ``audio-stop``. Every decode sees the speech with ``kept_silence`` before and
after it: Whisper's words changed with the silence around them. A client unsure of a pause's words
may ask for a *second hearing* (:meth:`Utterance.hear_again`): the same speech with half that silence.
Audio is converted to 16 kHz mono float32 on arrival and kept in a bounded buffer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np

from chatty_common.audio import PcmFormat, PcmToFloat
from chatty_common.protocol import RequestError

from .scheduler import DecodeJob, DecodeScheduler, Priority, Snapshot
from .transcriber import SAMPLE_RATE, DecodeOptions, Recognition
from .vad import FRAME, SpeechDetector


@dataclass(frozen=True)
class StreamingSettings:
    """How eagerly the server decodes ahead of ``audio-stop``."""

    max_seconds: float = 30.0
    endpoint_silence: float = 0.2
    # Silence before the first speech and after the last that decodes see: the rest is left out, and
    # less after it is made up with silence, so the words do not depend on where the client started
    # the stream, how long it waited before audio-stop or how soon after the speech a decode began.
    kept_silence: float = 0.3
    progress_interval: float = 1.0  # 0 disables partial text
    speech_threshold: float = 0.3


class AudioBuffer:
    """Growable float32 buffer with a hard size limit; views of it stay valid."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self._data = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self.size = 0

    def append(self, samples: np.ndarray) -> None:
        end = self.size + samples.size
        if end > self._data.size:
            grown = np.zeros(min(max(end, 2 * self._data.size), self.max_samples), dtype=np.float32)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = samples
        self.size = end

    def view(self) -> np.ndarray:
        return self._data[: self.size]


_NOT_WORD = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _NOT_WORD.sub("", word.lower())


LIVE_AHEAD = 1.0  # seconds ahead of real time that a live stream's audio may be (network, batching)
LIVE_RECENT = 0.5  # seconds of arrivals that show a stream is live now, after a part sent at once
LIVE_RECENT_AHEAD = 0.2  # seconds those arrivals may be ahead of real time


class Utterance:
    """The audio of one request and the decodes made of it."""

    def __init__(
        self,
        fmt: PcmFormat,
        options: DecodeOptions,
        *,
        scheduler: DecodeScheduler,
        settings: StreamingSettings,
        vad_executor: Executor,
        on_partial: Callable[[str], None],
        on_candidate: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        self.options = options
        self._converter = PcmToFloat(fmt, SAMPLE_RATE)
        self._scheduler = scheduler
        self._settings = settings
        self._vad_executor = vad_executor
        self._on_partial = on_partial
        self._on_candidate = on_candidate
        self._audio = AudioBuffer(int(settings.max_seconds * SAMPLE_RATE))
        self._kept = int(settings.kept_silence * SAMPLE_RATE)
        self._vad = SpeechDetector()
        self._frames = 0
        self._speech_start = 0  # sample where the first frame that held speech begins
        self._speech_end = 0  # sample just after the last frame that held speech
        self._heard_speech = False
        self._waiting: DecodeJob | None = None
        self._running: set[DecodeJob] = set()
        self._full_jobs: set[DecodeJob] = set()
        self._second_hearings: set[DecodeJob] = set()
        self._best: Recognition | None = None
        self._offered_end = -1  # the speech end of the last pause a candidate was offered for
        self._last_progress_at = 0
        self._first_audio_at: float | None = None
        self._arrivals: deque[tuple[float, int]] = deque()  # (time.monotonic(), samples received by then)
        self._finished = False
        self._hypothesis: list[str] = []
        self._confirmed: list[str] = []

    # -- audio in ---------------------------------------------------------

    async def add_audio(self, pcm: bytes) -> None:
        if self._first_audio_at is None:
            self._first_audio_at = time.monotonic()
        await self._ingest(self._converter.convert(pcm))
        now = time.monotonic()
        arrivals = self._arrivals
        arrivals.append((now, self._audio.size))
        while len(arrivals) > 1 and arrivals[1][0] <= now - LIVE_RECENT:
            arrivals.popleft()  # the first one left is the last that came at least LIVE_RECENT ago
        self._schedule()

    def _live(self) -> bool:
        """Is audio arriving at about real-time pace (not a recording sent all at once)?

        Either all of it (it is less than :data:`LIVE_AHEAD` ahead of real time), or for the last
        :data:`LIVE_RECENT` seconds: a satellite that hears a command on after its end sends what was said
        before at once, then the rest as it is spoken, which must be decoded at its pauses as usual.
        """
        assert self._first_audio_at is not None
        now = time.monotonic()
        if self._audio.size / SAMPLE_RATE - (now - self._first_audio_at) < LIVE_AHEAD:
            return True
        at, size = self._arrivals[0]
        if at > now - LIVE_RECENT:
            return False
        return (self._audio.size - size) / SAMPLE_RATE - (now - at) < LIVE_RECENT_AHEAD

    async def _ingest(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if self._audio.size + samples.size > self._audio.max_samples:
            raise RequestError(
                f"audio is longer than this server's limit of {self._settings.max_seconds:g} s (--max-seconds)",
                "audio-too-long",
            )
        self._audio.append(samples)
        loop = asyncio.get_running_loop()
        probs = await loop.run_in_executor(self._vad_executor, self._vad.process, samples)
        voiced = np.flatnonzero(probs >= self._settings.speech_threshold)
        if voiced.size:
            if not self._heard_speech:
                self._speech_start = (self._frames + int(voiced[0])) * FRAME
            self._heard_speech = True
            self._speech_end = (self._frames + int(voiced[-1]) + 1) * FRAME
        self._frames += probs.size

    # -- deciding what to decode ------------------------------------------

    def _schedule(self) -> None:
        if not self._heard_speech or not self._live():
            # A recording sent faster than real time ends in a moment: decode it once, at audio-stop.
            return
        received = self._audio.size
        silence = received - self._speech_end
        if silence >= self._settings.endpoint_silence * SAMPLE_RATE:
            if not self._covered(self._speech_end):
                self._request(Priority.ENDPOINT)
            else:
                self._offer_candidate()
        elif (
            self._settings.progress_interval > 0
            and self._waiting is None
            and not self._running
            and not self._covered(self._speech_end)  # nothing new said since the last decode
            and received - self._last_progress_at >= self._settings.progress_interval * SAMPLE_RATE
        ):
            self._last_progress_at = received
            self._request(Priority.PROGRESS)

    def _covered(self, samples: int) -> bool:
        """Is (or will) a full-quality decode cover the first ``samples`` samples?"""
        if self._best is not None and self._best.samples >= samples:
            return True
        if any(job.covers is not None and job.covers >= samples for job in self._running & self._full_jobs):
            return True
        return self._waiting is not None and self._waiting.priority >= Priority.ENDPOINT

    def _request(self, priority: Priority) -> DecodeJob:
        if self._waiting is not None:
            self._waiting.priority = max(self._waiting.priority, priority)
            return self._waiting
        job = self._scheduler.submit(priority, self._snapshot)
        job.result.add_done_callback(lambda _future: self._on_decoded(job))
        self._waiting = job
        return job

    def _snapshot(self, job: DecodeJob) -> Snapshot:
        """Called by a worker when ``job`` starts: the audio so far and how to decode it."""
        if self._waiting is job:
            self._waiting = None
        self._running.add(job)
        full = job.priority >= Priority.ENDPOINT or self.options.beam_size == 1
        received = self._audio.view()
        if self._heard_speech:
            audio = self._speech_part(received)
            heard: int | None = self._speech_end - max(0, self._speech_start - self._kept)
        else:
            audio, heard = received, None
        if full:
            self._full_jobs.add(job)
            return Snapshot(audio, self.options, received.size, heard)
        return Snapshot(audio, replace(self.options, beam_size=1), received.size, heard)

    def _speech_part(self, received: np.ndarray, kept: int | None = None) -> np.ndarray:
        """The speech with exactly ``kept`` samples (``kept_silence``) before and after it (what was heard,
        else silence)."""
        kept = self._kept if kept is None else kept
        start, end = max(0, self._speech_start - kept), self._speech_end + kept
        part = received[start:end]
        if part.size < end - start:
            part = np.concatenate((part, np.zeros(end - start - part.size, dtype=np.float32)))
        return part

    def _on_decoded(self, job: DecodeJob) -> None:
        self._running.discard(job)
        if job.result.cancelled() or job.result.exception() is not None:
            self._full_jobs.discard(job)
            return
        recognition = job.result.result()
        if recognition is None:  # an unsure progress decode: no partial text, and no candidate
            self._full_jobs.discard(job)
            return
        if job in self._full_jobs:
            self._full_jobs.discard(job)
            if self._best is None or recognition.samples > self._best.samples:
                self._best = recognition
            self._offer_candidate()
        if not self._finished:
            self._confirm_words(recognition.text)

    def _offer_candidate(self) -> None:
        """At a pause, offer the text of the full decode that covers all the speech so far (once per pause).

        That decode may be the one started at the pause, or one started a moment after the speech ended
        (a progress decode in the first few frames of the silence): either is what the transcript will
        be if the speaker is done.
        """
        best = self._best
        if (
            self._on_candidate is None
            or self._finished
            or best is None
            or best.samples < self._speech_end
            or self._offered_end == self._speech_end
            or self._audio.size - self._speech_end < self._settings.endpoint_silence * SAMPLE_RATE
            or not (text := best.text.strip())
        ):
            return
        self._offered_end = self._speech_end
        self._on_candidate(text, best.samples / SAMPLE_RATE, best.sure)

    # -- a second hearing ---------------------------------------------------

    def hear_again(self, on_heard: Callable[[str, float, bool], None]) -> None:
        """Decode the speech so far once more, with half the silence around it; its text goes to ``on_heard``
        (with the seconds of audio it covers, and whether Whisper was sure), never into the transcript.

        Whisper's words for a sentence cut off at a pause change with the silence around the speech ("What
        time does the bakery" is "What time does the maker eat?" with 0.3 s, "... the maker it?" with 0.15
        s), those of a whole one much less: a client judging whether the speaker is done asks for this when
        the first hearing leaves it unsure. An utterance with no speech yet is heard as nothing at once.
        """
        if not self._heard_speech:
            on_heard("", self._audio.size / SAMPLE_RATE, True)
            return
        job = self._scheduler.submit(Priority.ENDPOINT, self._second_snapshot)
        self._second_hearings.add(job)

        def heard(_future: object) -> None:
            self._second_hearings.discard(job)
            if job.result.cancelled() or job.result.exception() is not None or self._finished:
                return
            recognition = job.result.result()
            seconds = (job.covers or 0) / SAMPLE_RATE
            if recognition is None:
                on_heard("", seconds, False)
            else:
                on_heard(recognition.text.strip(), seconds, recognition.sure)

        job.result.add_done_callback(heard)

    def _second_snapshot(self, job: DecodeJob) -> Snapshot:
        received = self._audio.view()
        # heard=None: the whole audio tells it from the first hearing (when the speech began less than
        # kept_silence into the stream, the two differ only in the silence after it).
        return Snapshot(self._speech_part(received, self._kept // 2), self.options, received.size, None)

    # -- partial text -----------------------------------------------------

    def _confirm_words(self, text: str) -> None:
        """Emit the words this decode and the previous one agree on (and not emitted yet)."""
        words = text.split()
        normed = [_norm(w) for w in words]
        agreed = 0
        for old, new in zip(self._hypothesis, normed, strict=False):
            if old != new:
                break
            agreed += 1
        self._hypothesis = normed
        done = len(self._confirmed)
        if agreed > done and normed[:done] == [_norm(w) for w in self._confirmed]:
            fresh = words[done:agreed]
            self._confirmed.extend(fresh)
            self._on_partial((" " if done else "") + " ".join(fresh))

    def rest_of(self, final_text: str) -> str | None:
        """The part of the final text not yet sent as partial text, if the partials are its prefix."""
        words = final_text.split()
        done = len(self._confirmed)
        if done == 0 or len(words) <= done:
            return None
        if [_norm(w) for w in words[:done]] != [_norm(w) for w in self._confirmed]:
            return None
        return " " + " ".join(words[done:])

    # -- audio-stop ---------------------------------------------------------

    async def finish(self) -> Recognition:
        """The final recognition of all the audio, reusing a speculative decode when it covers the speech."""
        self._finished = True
        await self._ingest(self._converter.flush())
        if not self._heard_speech:
            return Recognition(self._audio.size, "", self.options.language, 0.0)
        while True:
            if self._best is not None and self._best.samples >= self._speech_end:
                return self._best
            covering = [
                job
                for job in self._running & self._full_jobs
                if job.covers is not None and job.covers >= self._speech_end
            ]
            job = covering[0] if covering else self._request(Priority.FINAL)
            try:
                await asyncio.shield(job.result)
            except asyncio.CancelledError:
                if job.result.cancelled():
                    raise RequestError("the transcription was cancelled", "internal") from None
                raise
            except Exception as err:
                raise RequestError(f"transcription failed: {err}", "internal") from err

    def close(self) -> None:
        """Drop a decode that has not started; the utterance is no longer wanted."""
        self._finished = True
        if self._waiting is not None:
            self._scheduler.withdraw(self._waiting)
            self._waiting = None
        for job in [job for job in self._second_hearings if not job.started]:
            self._scheduler.withdraw(job)

    @property
    def seconds(self) -> float:
        return self._audio.size / SAMPLE_RATE

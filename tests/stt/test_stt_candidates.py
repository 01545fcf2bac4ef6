"""An utterance offers its candidate at a pause from whichever full decode covers the speech: here a
progress decode that began just after the speech ended, run by a scripted scheduler (the real Whisper
tiny.en and the real Silero VAD; only *when* each decode runs is scripted, so the order is certain)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import CLIPS_DIR

from chatty_common.audio import PcmFormat
from wyoming_chatty_stt.client import read_wav
from wyoming_chatty_stt.scheduler import DecodeJob, Priority, Snapshot, decode_snapshot
from wyoming_chatty_stt.transcriber import DecodeOptions, Transcriber
from wyoming_chatty_stt.utterance import StreamingSettings, Utterance

RATE = 16000
CHUNK = RATE // 50 * 2  # 20 ms of 16-bit audio


class ScriptedScheduler:
    """Holds each decode until the test runs it (the real scheduler starts them as workers free up)."""

    def __init__(self) -> None:
        self.jobs: list[DecodeJob] = []

    def submit(self, priority: Priority, snapshot: Callable[[DecodeJob], Snapshot]) -> DecodeJob:
        job = DecodeJob(priority, len(self.jobs), snapshot)
        self.jobs.append(job)
        return job

    def withdraw(self, job: DecodeJob) -> None:
        self.jobs.remove(job)

    def start(self, job: DecodeJob) -> Snapshot:
        return job.take_snapshot()

    @staticmethod
    async def finish(job: DecodeJob, snapshot: Snapshot, transcriber: Transcriber) -> None:
        job.result.set_result(await asyncio.to_thread(decode_snapshot, transcriber, snapshot))
        await asyncio.sleep(0)  # the utterance hears of it


def speech_of(name: str) -> bytes:
    """The clip up to its last sound (its own trailing silence cut off)."""
    pcm, rate, width, channels = read_wav(CLIPS_DIR / name)
    assert (rate, width, channels) == (RATE, 2, 1)
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2")) > 300)
    return pcm[: 2 * (int(loud[-1]) + 1)]


class Live(Utterance):
    """An utterance that takes its audio as live (the test feeds it faster than real time)."""

    def _live(self) -> bool:
        return True


async def feed(utterance: Utterance, pcm: bytes) -> None:
    for offset in range(0, len(pcm), CHUNK):
        await utterance.add_audio(pcm[offset : offset + CHUNK])


@pytest.mark.parametrize("done_before_the_pause", [False, True])
async def test_a_decode_begun_in_the_silence_is_the_pause_s_candidate(
    tiny_transcriber: Transcriber, clips: dict[str, str], done_before_the_pause: bool
) -> None:
    scheduler = ScriptedScheduler()
    offered: list[tuple[str, float]] = []
    settings = StreamingSettings(endpoint_silence=0.3, progress_interval=1.0)
    with ThreadPoolExecutor(1) as vad:
        utterance = Live(
            PcmFormat(RATE, 2, 1), DecodeOptions(language="en", beam_size=1),
            scheduler=scheduler, settings=settings, vad_executor=vad,  # type: ignore[arg-type]
            on_partial=lambda _text: None, on_candidate=lambda text, seconds, _sure: offered.append((text, seconds)),
        )  # fmt: skip
        speech = speech_of("weather.wav")
        await feed(utterance, speech + bytes(int(0.1 * RATE) * 2))  # the speech, then a short silence
        progress = [job for job in scheduler.jobs if not job.started]
        assert [job.priority for job in progress] == [Priority.PROGRESS]  # asked while the speaker spoke
        snapshot = scheduler.start(progress[0])  # it begins now, in the silence: it covers all the speech
        if done_before_the_pause:
            await scheduler.finish(progress[0], snapshot, tiny_transcriber)
            assert offered == []  # no pause yet: 0.1 s of silence is not 0.3 s
        await feed(utterance, bytes(int(0.4 * RATE) * 2))  # now a pause
        if not done_before_the_pause:
            await scheduler.finish(progress[0], snapshot, tiny_transcriber)
        await feed(utterance, bytes(int(0.2 * RATE) * 2))  # the silence goes on: still the same pause
        assert [job for job in scheduler.jobs if not job.started] == []  # no second decode of the same audio
        assert len(offered) == 1, offered
        text, seconds = offered[0]
        assert text.lower().strip(" .?") == clips["weather.wav"]
        assert len(speech) / 2 / RATE <= seconds < len(speech) / 2 / RATE + 0.3
        recognition = await utterance.finish()  # and it is the final transcript, too
        assert recognition.text == text
        utterance.close()


async def test_an_unsure_progress_decode_gives_no_words_and_the_pause_is_decoded_in_full(
    tiny_transcriber: Transcriber,
) -> None:
    """Partial text while the speaker talks comes from the fitted window only: where that is unsure (here
    speech played backwards, which tiny.en cannot make out), there is no partial text and no second,
    full-window decode while the speaker talks; the pause still gets its full decode, whose words are
    the candidate and the transcript."""
    scheduler = ScriptedScheduler()
    offered: list[tuple[str, float]] = []
    partials: list[str] = []
    # Two seconds: of the first second alone, tiny.en on some CPUs writes nothing, sure it is silence.
    settings = StreamingSettings(endpoint_silence=0.3, progress_interval=2.0)
    with ThreadPoolExecutor(1) as vad:
        utterance = Live(
            PcmFormat(RATE, 2, 1), DecodeOptions(language="en", beam_size=1),
            scheduler=scheduler, settings=settings, vad_executor=vad,  # type: ignore[arg-type]
            on_partial=partials.append, on_candidate=lambda text, seconds, _sure: offered.append((text, seconds)),
        )  # fmt: skip
        speech = np.frombuffer(speech_of("weather.wav"), dtype="<i2")[::-1].tobytes()
        sent = 0
        while not scheduler.jobs:  # up to the first progress decode
            await utterance.add_audio(speech[sent : sent + CHUNK])
            sent += CHUNK
        progress = scheduler.jobs[0]
        assert progress.priority == Priority.PROGRESS
        unsure = await asyncio.to_thread(decode_snapshot, tiny_transcriber, scheduler.start(progress), quick=True)
        assert unsure is None
        progress.result.set_result(unsure)
        await asyncio.sleep(0)
        assert partials == []
        await feed(utterance, speech[sent:] + bytes(int(0.4 * RATE) * 2))  # the rest, then a pause
        waiting = [job for job in scheduler.jobs if not job.started]
        assert [job.priority for job in waiting] == [Priority.ENDPOINT]
        await scheduler.finish(waiting[0], scheduler.start(waiting[0]), tiny_transcriber)
        assert len(offered) == 1, offered
        recognition = await utterance.finish()
        assert recognition.text == offered[0][0]
        assert recognition.samples * 2 >= len(speech)
        utterance.close()

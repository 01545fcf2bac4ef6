"""Two connections streaming the same speech (a satellite's own words stream, and Home Assistant
forwarding the same command through Chatty's integration) get one decode of each pause between them.

The real scheduler, Whisper tiny.en and Silero VAD; the transcriber only counts its full decodes."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import CLIPS_DIR

from chatty_common.audio import PcmFormat
from wyoming_chatty_stt.client import read_wav
from wyoming_chatty_stt.scheduler import DecodeScheduler
from wyoming_chatty_stt.transcriber import DecodeOptions, Recognition, Transcriber
from wyoming_chatty_stt.utterance import StreamingSettings, Utterance

RATE = 16000
CHUNK = RATE // 50 * 2  # 20 ms of 16-bit audio
EN = DecodeOptions(language="en", beam_size=1)


class CountingTranscriber:
    """The real transcriber; counts the full decodes (a pause's, the final one), not the quick ones."""

    def __init__(self, transcriber: Transcriber) -> None:
        self._transcriber = transcriber
        self.full = 0

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Recognition:
        self.full += 1
        return self._transcriber.transcribe(audio, options)

    def transcribe_if_quick(self, audio: np.ndarray, options: DecodeOptions) -> Recognition | None:
        return self._transcriber.transcribe_if_quick(audio, options)


class Live(Utterance):
    """An utterance that takes its audio as live (the test feeds it faster than real time)."""

    def _live(self) -> bool:
        return True


def streamed(scheduler: DecodeScheduler, vad: ThreadPoolExecutor, pause: float, on_candidate=None) -> Live:
    """One connection's utterance: candidates after ``pause`` s of silence; no partial text (its decodes
    while the speaker talks start at moments that differ from one connection to the other)."""
    settings = StreamingSettings(endpoint_silence=pause, progress_interval=0)
    return Live(
        PcmFormat(RATE, 2, 1), EN, scheduler=scheduler, settings=settings, vad_executor=vad,
        on_partial=lambda _text: None, on_candidate=on_candidate,
    )  # fmt: skip


def in_a_room(name: str, seed: int = 3) -> bytes:
    """The clip with a quiet room's noise under it and 0.6 s of that noise after it: the silence after
    the speech is not digital zero, so each decode's tail differs with the moment it starts."""
    pcm, rate, width, channels = read_wav(CLIPS_DIR / name)
    assert (rate, width, channels) == (RATE, 2, 1)
    speech = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    loud = np.flatnonzero(np.abs(speech) > 300)
    audio = np.concatenate((speech[: int(loud[-1]) + 1], np.zeros(int(0.6 * RATE), dtype=np.float32)))
    audio += np.random.default_rng(seed).normal(0, 30, audio.size).astype(np.float32)
    return np.clip(audio, -32768, 32767).astype("<i2").tobytes()


async def stream_both(first: Utterance, second: Utterance, first_pcm: bytes, second_pcm: bytes) -> None:
    """Chunk by chunk to both at real time, as two live connections."""
    for offset in range(0, max(len(first_pcm), len(second_pcm)), CHUNK):
        if chunk := first_pcm[offset : offset + CHUNK]:
            await first.add_audio(chunk)
        if chunk := second_pcm[offset : offset + CHUNK]:
            await second.add_audio(chunk)
        await asyncio.sleep(CHUNK / 2 / RATE)


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_same_command_from_two_connections_is_decoded_once_at_its_pause(
    tiny_transcriber: Transcriber, clips: dict[str, str], workers: int
) -> None:
    counting = CountingTranscriber(tiny_transcriber)
    scheduler = DecodeScheduler(counting, workers)  # type: ignore[arg-type]
    scheduler.start()
    offered: dict[str, list[str]] = {"satellite": [], "home assistant": []}
    try:
        with ThreadPoolExecutor(1) as vad:
            # The satellite asks for the words after 0.1 s of silence, Home Assistant's stream after 0.2 s.
            satellite, home_assistant = (
                streamed(scheduler, vad, pause, lambda text, _s, _sure, who=who: offered[who].append(text))
                for who, pause in (("satellite", 0.1), ("home assistant", 0.2))
            )
            command = in_a_room("weather.wav")
            await stream_both(satellite, home_assistant, command, command)
            async with asyncio.timeout(30):  # a busy machine: the decode may still be under way
                while not all(offered.values()):
                    await asyncio.sleep(0.05)
            finals = [await satellite.finish(), await home_assistant.finish()]
            satellite.close()
            home_assistant.close()
    finally:
        await scheduler.close()
    expected = clips["weather.wav"]
    assert [text.lower().strip(" .?") for text in offered["satellite"]] == [expected], offered
    assert offered["home assistant"] == offered["satellite"]
    assert [final.text for final in finals] == offered["satellite"] * 2
    assert counting.full == 1  # one decode of the pause served both connections and both transcripts


async def test_different_speech_is_decoded_for_each_connection(tiny_transcriber: Transcriber, clips) -> None:
    counting = CountingTranscriber(tiny_transcriber)
    scheduler = DecodeScheduler(counting, 1)  # type: ignore[arg-type]
    scheduler.start()
    try:
        with ThreadPoolExecutor(1) as vad:
            first, second = streamed(scheduler, vad, 0.2), streamed(scheduler, vad, 0.2)
            # The same words in another room (other noise) are other audio: no decode is shared.
            await stream_both(first, second, in_a_room("weather.wav", seed=3), in_a_room("weather.wav", seed=4))
            finals = [await first.finish(), await second.finish()]
            first.close()
            second.close()
    finally:
        await scheduler.close()
    assert [final.text.lower().strip(" .?") for final in finals] == [clips["weather.wav"]] * 2
    assert counting.full == 2

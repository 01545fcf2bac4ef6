"""Words Whisper is unsure of: the transcript comes at once (no seconds-long fallback), and a client that
asked for candidates is told they are unsure, so that a satellite does not end a turn by them. A real
server and the satellite's own client."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from helpers import CLIPS_DIR
from helpers.speech import words
from wyoming.client import AsyncClient

from wyoming_chatty_stt.client import LiveTranscription, UnsureWords, read_wav

# Played backwards, this one gives tiny.en words it is unsure of on an AMD EPYC, where it was sure of the
# kitchen clip's (which earlier machines were unsure of): int8 decodes differ from CPU to CPU.
CLIP = "weather.wav"


async def stream_live(stream: LiveTranscription, pcm: bytes, rate: int) -> None:
    step = rate // 50 * 2  # 20 ms chunks, at real time, as a satellite streams them
    started = time.monotonic()
    for offset in range(0, len(pcm), step):
        await stream.send(pcm[offset : offset + step])
        await asyncio.sleep(max(0.0, started + (offset + step) / (rate * 2) - time.monotonic()))


async def test_unsure_words_are_marked_and_the_transcript_comes_at_once(stt_server, clips):
    """Speech played backwards (tiny.en writes something, unsure): the pause's words raise UnsureWords
    with what was heard; the final transcript is those words, sent well under a second after audio-stop.
    Speech it is sure of is not marked (the same connection, the next utterance)."""
    pcm, rate, width, channels = read_wav(CLIPS_DIR / CLIP)
    assert (rate, width, channels) == (16000, 2, 1)
    backwards = np.frombuffer(pcm, dtype="<i2")[::-1].tobytes()
    spoken = len(pcm) / (2 * rate)
    async with AsyncClient.from_uri(stt_server.uri) as client:
        stream = LiveTranscription(client, 0.1, rate, width, channels)
        await stream.start("en")
        await stream_live(stream, backwards + bytes(int(0.8 * rate) * 2), rate)
        with pytest.raises(UnsureWords) as unsure:
            await stream.words_after(spoken - 0.3, 20)
        stopped = time.monotonic()
        transcript = await stream.finish(30)
        took = time.monotonic() - stopped
        await stream.close()
    assert unsure.value.text and transcript == unsure.value.text
    assert took < 1.0, f"the transcript came {took:.2f} s after audio-stop"
    async with AsyncClient.from_uri(stt_server.uri) as client:
        stream = LiveTranscription(client, 0.1, rate, width, channels)
        await stream.start("en")
        await stream_live(stream, pcm + bytes(int(0.8 * rate) * 2), rate)
        heard = await stream.words_after(spoken - 0.3, 20)
        await stream.finish(30)
        await stream.close()
    assert heard is not None and words(heard) == words(clips[CLIP])

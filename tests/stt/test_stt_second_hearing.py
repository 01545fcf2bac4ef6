"""A client unsure of a pause's words asks Chatty's STT server to hear them again (issue 16): the same
speech decoded with less silence around it. Its words come marked as a second hearing and never become
the transcript; asking at the wrong moment is harmless or refused clearly. A real server, the real
Whisper tiny.en and the satellite's own client."""

from __future__ import annotations

import asyncio
import time

from helpers import CLIPS_DIR
from helpers.speech import words
from wyoming.asr import Transcribe
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.event import Event
from wyoming.info import Describe

from wyoming_chatty_stt.client import LiveTranscription, read_wav, stream_wav


async def test_a_pause_is_heard_again_on_request(stt_server, clips):
    """At the question's end (a pause of 0.1 s) the server's words, then a second hearing of the same
    speech: the same words, marked as such; the transcript stays the first hearing's."""
    pcm, rate, width, channels = read_wav(CLIPS_DIR / "weather.wav")
    spoken = len(pcm) / (rate * width * channels)
    pcm += bytes(int(1.0 * rate) * width * channels)
    step = rate // 50 * width * channels  # 20 ms chunks, at real time, as a satellite streams them
    async with AsyncClient.from_uri(stt_server.uri) as client:
        stream = LiveTranscription(client, 0.1, rate, width, channels)
        await stream.start("en")
        started = time.monotonic()
        for offset in range(0, len(pcm), step):
            await stream.send(pcm[offset : offset + step])
            await asyncio.sleep(max(0.0, started + (offset + step) / (rate * width * channels) - time.monotonic()))
        first = await stream.words_after(spoken - 0.3, 20)
        again = await stream.hear_again(spoken - 0.3, 20)
        transcript = await stream.finish(30)
        await stream.close()
    assert first is not None and again is not None
    assert words(first) == words(clips["weather.wav"])
    assert words(again) == words(clips["weather.wav"])
    assert transcript == first
    assert [heard.text for heard in stream.second_hearings] == [again]
    assert stream.second_hearings[0].seconds >= spoken


async def test_asked_at_the_wrong_moment_a_second_hearing_is_refused_or_ignored(stt_server, clips):
    """Between utterances (a request that crossed the audio-stop) it is ignored and the connection goes on;
    without candidates asked for, the server says what is wrong (and, as for any bad request, hangs up)."""
    async with AsyncClient.from_uri(stt_server.uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioStop().event())
        await client.write_event(Event("chatty-hear-again"))  # after the utterance: nothing to hear
        await client.write_event(Describe().event())
        ignored: list[str] = []
        async with asyncio.timeout(20):
            while (event := await client.read_event()) is not None and event.type != "info":
                ignored.append(event.type)
    assert ignored == ["transcript-start", "transcript", "transcript-stop"], ignored
    async with AsyncClient.from_uri(stt_server.uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(Event("chatty-hear-again"))
        async with asyncio.timeout(20):
            while (refused := await client.read_event()) is not None and refused.type == "transcript-start":
                pass
    assert refused is not None and refused.type == "error", refused
    assert refused.data["code"] == "bad-request" and "candidates" in refused.data["text"]
    result = await stream_wav(stt_server.uri, CLIPS_DIR / "weather.wav", language="en", realtime=False)
    assert words(result.transcript) == words(clips["weather.wav"])


async def test_a_command_heard_on_after_its_end_is_decoded_at_its_pause(stt_server):
    """A satellite that hears a command on after ending it early ("turn off the lights" ... "in the bedroom
    please") streams it again: what was said before at once, the rest as it is spoken. The rest's pause is
    decoded as it comes (as for a command streamed live from its start), not only at audio-stop."""
    pcm, rate, width, channels = read_wav(CLIPS_DIR / "pause.wav")
    second = rate * width * channels
    before = pcm[: int(2.3 * rate) * width * channels]  # "turn off the lights", then silence
    rest = pcm[len(before) :] + bytes(int(1.0 * rate) * width * channels)  # "in the bedroom please"
    spoken = len(pcm) / second
    step = rate // 50 * width * channels
    async with AsyncClient.from_uri(stt_server.uri) as client:
        stream = LiveTranscription(client, 0.1, rate, width, channels)
        await stream.start("en")
        await stream.send(before)
        started = time.monotonic()
        for offset in range(0, len(rest), step):
            await stream.send(rest[offset : offset + step])
            await asyncio.sleep(max(0.0, started + (offset + step) / second - time.monotonic()))
            if offset >= len(rest) - step - int(0.7 * rate) * width * channels:
                break  # 0.3 s into the silence after "please": the words of that pause are due by now
        heard = await stream.words_after(spoken - 0.3, 5.0)
        await stream.close()
    assert heard is not None and {"lights", "bedroom"} <= set(words(heard)), heard

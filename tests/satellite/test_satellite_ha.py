"""The satellite in Home Assistant mode, driven by a test client that plays Home Assistant's side.

The client does what HA's Wyoming integration does (its ``assist_satellite``
entity): it connects, asks ``describe``, sends ``run-satellite`` and pings,
takes the wake word ``detection`` and ``run-pipeline``, runs speech-to-text on
the streamed audio (here with the real STT server), and sends back the
transcript, the answer text in ``synthesize`` and the answer audio (from the
real TTS server, resampled to 22050 Hz as HA's ffmpeg step does) in 2048-byte
chunks, then waits for ``played``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soxr
from helpers import DATA, SATELLITE_DATA
from helpers.ha_peer import HA_RATE, next_event, send_answer_audio
from helpers.satellite_io import detections, loud, pcm16k, read_speaker
from helpers.servers import free_port
from helpers.speech import word_accuracy, words
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.pipeline import RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.timer import TimerFinished, TimerStarted
from wyoming.tts import Synthesize

from chatty_common.audio import write_wav
from satellite.wake import LocalWakeDetector, parse_wake_word
from wyoming_chatty_stt.client import stream_wav
from wyoming_chatty_tts.client import speak

ANSWER = "The capital of France is Paris."


class Satellite:
    """The satellite as its own process in HA mode."""

    def __init__(self, tmp_path: Path, mic_pcm: bytes, *extra: str) -> None:
        self.port = free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        self.out = tmp_path / "speaker.wav"
        self.metrics = tmp_path / "turns.jsonl"
        mic = write_wav(tmp_path / "mic.wav", mic_pcm)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "satellite", "--mode", "ha", "--uri", self.uri, "--mic-file", str(mic),
             "--snd-file", str(self.out), "--metrics-file", str(self.metrics), "--name", "kitchen",
             "--area", "Kitchen", "--stt-uri", "tcp://127.0.0.1:9", *extra],  # no STT: pauses end by silence
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    async def connect(self) -> AsyncClient:
        for _ in range(200):
            try:
                client = AsyncClient.from_uri(self.uri)
                await client.connect()
                return client
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError(self.uri)

    def finish(self) -> str:
        _, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, stderr
        return stderr

    def turns(self) -> list[dict]:
        return [json.loads(line) for line in self.metrics.read_text().splitlines()] if self.metrics.exists() else []


@pytest.fixture(scope="module")
async def answer_audio(tts_server) -> bytes:
    spoken = await speak(tts_server.uri, ANSWER)
    return spoken.audio


async def test_home_assistant_runs_a_turn_through_the_satellite(tmp_path, stt_server, answer_audio):
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    satellite = Satellite(tmp_path, bytes(32000 * 2) + nabu, "--no-follow-up")
    client = await satellite.connect()
    try:
        await client.write_event(Describe().event())
        info = Info.from_event(await next_event(client, "info"))
        assert info.satellite.name == "kitchen" and info.satellite.area == "Kitchen" and info.satellite.installed
        assert [(m.name, m.phrase) for m in info.wake[0].models] == [("okay_nabu", "okay nabu")]
        assert info.mic[0].mic_format.rate == 16000
        await client.write_event(RunSatellite().event())
        await client.write_event(Ping(text="hello").event())
        assert (await next_event(client, "pong")).data.get("text") == "hello"

        detection = await next_event(client, "detection")
        assert detection.data["name"] == "okay_nabu"
        run = RunPipeline.from_event(await next_event(client, "run-pipeline"))
        assert (run.start_stage.value, run.end_stage.value, run.wake_word_name) == ("asr", "tts", "okay_nabu")
        start = AudioStart.from_event(await next_event(client, "audio-start"))
        assert (start.rate, start.width, start.channels) == (16000, 2, 1)
        audio = bytearray()
        while (event := await next_event(client, "audio-chunk", "audio-stop")).type == "audio-chunk":
            audio += AudioChunk.from_event(event).audio
        # The satellite ended the stream itself at the end of speech (HA then ends speech-to-text at once).
        assert 1.5 < len(audio) / 32000 < 4.5
        heard = await stream_wav(stt_server.uri, write_wav(tmp_path / "streamed.wav", bytes(audio)), realtime=False)
        assert words(heard.transcript) == words("What is the capital of France?")

        await client.write_event(Transcript(text=heard.transcript).event())
        await client.write_event(Synthesize(text=ANSWER).event())
        sent_at = time.monotonic()
        seconds = await send_answer_audio(client, answer_audio)
        await next_event(client, "played")
        # "played" comes when the speaker has played it all, not when the audio arrived.
        assert seconds - 0.1 < time.monotonic() - sent_at < seconds + 1.0
    finally:
        await client.disconnect()
    satellite.process.terminate()
    satellite.finish()
    [turn] = satellite.turns()
    assert turn["mode"] == "ha" and turn["outcome"] == "answered" and turn["answer"] == ANSWER
    for figure in ("QUESTION-TO-RESPONSE_MS", "VOICE-TO-VOICE_MS", "STT_MS", "TTS-TTFA_MS"):
        assert turn[figure] is not None and turn[figure] >= 0, figure
    assert turn["LLM-TTF_MS"] is None  # the LLM server logs those in HA mode
    played = await stream_wav(stt_server.uri, satellite.out, realtime=False)
    assert word_accuracy(ANSWER, played.transcript) >= 0.8, played.transcript


async def test_announcements_timers_and_pause(tmp_path, answer_audio):
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    satellite = Satellite(tmp_path, bytes(32000 * 6) + nabu + bytes(32000 * 6))
    client = await satellite.connect()
    try:
        await client.write_event(RunSatellite().event())
        # An announcement: audio with no pipeline around it, and "played" after it has been heard.
        sent_at = time.monotonic()
        seconds = await send_answer_audio(client, answer_audio)
        await next_event(client, "played")
        assert time.monotonic() - sent_at > seconds - 0.1
        # A timer that finishes rings here.
        await client.write_event(TimerStarted(id="t1", total_seconds=60, name="pasta").event())
        rang_at = time.monotonic()
        await client.write_event(TimerFinished(id="t1").event())
        # Paused: the wake word (said at about 7 s) starts nothing.
        await client.write_event(PauseSatellite().event())
        with pytest.raises(TimeoutError):
            await next_event(client, "detection", "run-pipeline", timeout=7.0)
    finally:
        await client.disconnect()
    log = satellite.finish()
    assert "Timer pasta finished: ringing" in log
    samples, rate = read_speaker(satellite.out)
    ring_start = rang_at - sent_at + seconds  # roughly where the ring begins in the speaker file
    assert loud(samples, rate, ring_start, ring_start + 4.0) > 0.3
    assert satellite.turns() == []


async def test_wake_word_without_home_assistant_is_not_a_silent_failure(tmp_path):
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    satellite = Satellite(tmp_path, nabu)
    log = satellite.finish()
    assert "Heard okay_nabu, but Home Assistant is not connected" in log
    samples, rate = read_speaker(satellite.out)
    assert loud(samples, rate, 1.8, 3.0) > 0.1  # the error sound


async def test_follow_up_question_and_barge_in(tmp_path, tts_server):
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")  # wake word fires about 2 s in; the question ends at 5 s
    wake_only = nabu[: int(2.3 * 32000)]
    mic = bytes(32000 * 2) + nabu + bytes(32000 * 5) + wake_only + bytes(32000 * 4)
    question = "Do you want to hear about the weather in Paris as well?"
    # The answers are made before the satellite starts: its microphone file plays from its start, and a
    # slow synthesis (a busy machine) would connect "Home Assistant" after the first wake word.
    question_audio = (await speak(tts_server.uri, question)).audio
    long_answer = (await speak(tts_server.uri, "Paris is the capital of France. " * 6)).audio
    satellite = Satellite(tmp_path, mic, "--speech-timeout", "1.5", "--no-sounds")
    client = await satellite.connect()
    try:
        await client.write_event(RunSatellite().event())
        await next_event(client, "detection")
        await next_event(client, "audio-stop")
        await client.write_event(Transcript(text="What is the capital of France?").event())
        await client.write_event(Synthesize(text=question).event())
        await send_answer_audio(client, question_audio)
        await next_event(client, "played")
        # The answer asked something: the satellite listens again without the wake word ...
        follow_up = await next_event(client, "run-pipeline", "detection")
        assert follow_up.type == "run-pipeline" and follow_up.data.get("wake_word_name") is None
        await next_event(client, "audio-stop")  # ... and gives up after the speech timeout: nobody spoke
        await client.write_event(Transcript(text="").event())
        # A long answer is playing when the wake word comes again: it stops, and a new pipeline starts.
        await client.write_event(Synthesize(text="Paris is the capital of France.").event())
        await send_answer_audio(client, long_answer)
        detection = await next_event(client, "detection", "played", timeout=30)
        assert detection.type == "detection"
        await next_event(client, "run-pipeline")
    finally:
        await client.disconnect()
    log = satellite.finish()
    assert "Barge-in" in log
    # The cut-off answer had wholly arrived before the wake word: its turn is still logged, as interrupted.
    turns = satellite.turns()
    assert [t["outcome"] for t in turns][:2] == ["answered", "interrupted"], turns
    assert turns[1]["first_played_time"] is not None
    # The speaker file runs on the microphone's clock: the detection is where the detector fires in the audio.
    [_, (second_wake, _)] = detections(LocalWakeDetector([parse_wake_word("okay_nabu")]), mic)
    samples, rate = read_speaker(satellite.out)
    assert loud(samples, rate, second_wake - 1.5, second_wake - 0.5) > 0.5  # the long answer was playing
    assert loud(samples, rate, second_wake + 0.2, len(samples) / rate) == 0.0  # and then nothing more of it


async def test_a_reconnecting_home_assistant_takes_over_and_a_probe_does_not(tmp_path):
    satellite = Satellite(tmp_path, bytes(32000 * 6), "--no-sounds")
    first = await satellite.connect()
    try:
        await first.write_event(RunSatellite().event())
        await first.write_event(Ping(text="first").event())
        assert (await next_event(first, "pong")).data.get("text") == "first"

        # A probe (a health check, a config flow, a scanner) gets answers but does not become Home Assistant.
        probe = await satellite.connect()
        await probe.write_event(Describe().event())
        assert Info.from_event(await next_event(probe, "info")).satellite.name == "kitchen"
        await probe.write_event(AudioStop().event())  # not Home Assistant's: ignored
        await probe.disconnect()
        await first.write_event(Ping(text="still").event())
        assert (await next_event(first, "pong")).data.get("text") == "still"

        # Home Assistant reconnecting (its old connection half-dead) takes over with run-satellite.
        second = await satellite.connect()
        await second.write_event(Describe().event())
        await next_event(second, "info")
        await second.write_event(RunSatellite().event())
        assert await asyncio.wait_for(_read_until_closed(first), 5) is None
        await second.write_event(Ping(text="second").event())
        assert (await next_event(second, "pong")).data.get("text") == "second"
        await second.disconnect()
    finally:
        await first.disconnect()
    log = satellite.finish()
    assert "A new Home Assistant connection replaces the old one" in log


async def _read_until_closed(client: AsyncClient) -> None:
    while (event := await client.read_event()) is not None:
        assert event.type in ("pong", "info"), event
    return event


async def test_home_assistant_dropping_mid_turn_and_coming_back(tmp_path, answer_audio):
    """HA restarts while the user is asking: that turn ends with the error sound and a log line, and the
    satellite takes HA's next connection and its next turn as if nothing had happened."""
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    mic = bytes(32000 * 2) + nabu + bytes(32000 * 3) + nabu + bytes(32000 * 3)
    satellite = Satellite(tmp_path, mic, "--no-follow-up")
    first = await satellite.connect()
    await first.write_event(RunSatellite().event())
    await next_event(first, "detection")
    await next_event(first, "run-pipeline")
    for _ in range(5):
        await next_event(first, "audio-chunk")
    await first.disconnect()  # gone mid-question, without a word

    second = await satellite.connect()
    try:
        await second.write_event(Describe().event())
        await next_event(second, "info")
        await second.write_event(RunSatellite().event())
        assert (await next_event(second, "detection")).data["name"] == "okay_nabu"  # the second question
        await next_event(second, "run-pipeline")
        await next_event(second, "audio-stop")
        await second.write_event(Transcript(text="What is the capital of France?").event())
        await second.write_event(Synthesize(text=ANSWER).event())
        await send_answer_audio(second, answer_audio)
        await next_event(second, "played")
    finally:
        await second.disconnect()
    satellite.process.terminate()
    log = satellite.finish()
    assert "Home Assistant disconnected during a turn: playing the error sound" in log
    dropped, answered = satellite.turns()
    assert dropped["outcome"] == "home assistant disconnected" and dropped["answer"] is None
    assert answered["outcome"] == "answered" and answered["answer"] == ANSWER
    assert answered["QUESTION-TO-RESPONSE_MS"] is not None


async def test_home_assistant_dropping_while_the_answer_plays(tmp_path, answer_audio):
    """The answer that had arrived is played to its end and logged; HA's next connection works."""
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    satellite = Satellite(tmp_path, bytes(32000 * 2) + nabu + bytes(32000 * 8), "--no-follow-up", "--no-sounds")
    first = await satellite.connect()
    await first.write_event(RunSatellite().event())
    await next_event(first, "audio-stop")
    await first.write_event(Transcript(text="What is the capital of France?").event())
    await first.write_event(Synthesize(text=ANSWER).event())
    half = len(answer_audio) // 2 // 2 * 2
    pcm = soxr.resample(np.frombuffer(answer_audio[:half], dtype="<i2"), 24000, HA_RATE).astype("<i2").tobytes()
    await first.write_event(AudioStart(rate=HA_RATE, width=2, channels=1).event())
    await first.write_event(AudioChunk(rate=HA_RATE, width=2, channels=1, audio=pcm).event())
    await first.disconnect()  # no audio-stop: HA went away with half of the answer sent

    second = await satellite.connect()
    try:
        await second.write_event(RunSatellite().event())
        await second.write_event(Ping(text="back").event())
        assert (await next_event(second, "pong")).data.get("text") == "back"
    finally:
        await second.disconnect()
    await asyncio.sleep(len(pcm) / 2 / HA_RATE + 1.0)  # the half answer plays out
    satellite.process.terminate()
    satellite.finish()
    [turn] = satellite.turns()
    assert turn["outcome"] == "home assistant disconnected" and turn["answer"] == ANSWER
    assert turn["QUESTION-TO-RESPONSE_MS"] is not None  # its first audio did play


async def _command_audio(client: AsyncClient) -> bytes:
    """The audio of a command the satellite streams, up to its ``audio-stop``."""
    audio = bytearray()
    while (event := await next_event(client, "audio-chunk", "audio-stop")).type == "audio-chunk":
        audio += AudioChunk.from_event(event).audio
    return bytes(audio)


async def test_a_speaker_who_goes_on_after_an_early_end_is_sent_again_whole(
    tmp_path, stt_server, tts_server, llm_server
):
    """The smart end of turn ends "turn off the lights" at its pause (a whole command: ``audio-stop``); the
    speaker goes on ("in the bedroom please") before its answer sounds. The satellite starts a new run with the
    whole command once Home Assistant's run of the first words is over, and plays only the new run's answer."""
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")[: int(2.4 * 32000)]  # silence, "Okay Nabu.", silence
    clip = pcm16k(DATA / "clips" / "pause.wav")  # "turn off the lights", 1.4 s silence, "in the bedroom please"
    pause = clip[: 2 * int(1.7 * 16000)] + clip[2 * int(1.95 * 16000) :]  # a pause of 1.15 s
    partial, whole = "Turned off all the lights.", "Turned off the lights in the bedroom."
    partial_audio = (await speak(tts_server.uri, partial)).audio  # made before the microphone starts playing
    whole_audio = (await speak(tts_server.uri, whole)).audio
    # The long silence is longer than its default, so that the pause's verdict comes before the speaker goes on.
    satellite = Satellite(
        tmp_path, bytes(32000 * 3) + nabu + pause + bytes(32000 * 4),
        "--no-follow-up", "--no-sounds", "--stt-uri", stt_server.uri, "--unfinished-silence", "2.5",
        "--llm-uri", llm_server.uri,  # (it asks the LLM server to stop the early run's answer)
    )  # fmt: skip
    runs: list[str] = []
    client = await satellite.connect()
    try:
        await client.write_event(RunSatellite().event())
        await next_event(client, "run-pipeline", timeout=30)
        while True:
            audio = await _command_audio(client)
            heard = await stream_wav(stt_server.uri, write_wav(tmp_path / "run.wav", audio), realtime=False)
            runs.append(heard.transcript)
            await client.write_event(Transcript(text=heard.transcript).event())
            if "bedroom" in words(heard.transcript):
                break
            # Ended at the pause: the agent takes a while to write its answer, and the speaker has gone on
            # meanwhile. The satellite holds the new run until this one's speech begins, and drops that speech.
            await asyncio.sleep(2.0)
            await client.write_event(Synthesize(text=partial).event())
            await send_answer_audio(client, partial_audio)
            event = await next_event(client, "run-pipeline", "played", timeout=10)
            if event.type == "played":  # the answer to the first words was played
                satellite.process.terminate()
                raise AssertionError(f"the command was not sent again: {runs}\n{satellite.finish()}")
            run = RunPipeline.from_event(event)
            assert run.start_stage.value == "asr" and run.wake_word_name is None
        await client.write_event(Synthesize(text=whole).event())
        await send_answer_audio(client, whole_audio)
        await next_event(client, "played")
    finally:
        await client.disconnect()
    satellite.process.terminate()
    log = satellite.finish()
    [turn] = satellite.turns()
    assert turn["outcome"] == "answered" and turn["answer"] == whole, turn
    assert {"lights", "bedroom"} <= set(words(turn["transcript"])), (runs, log)
    if len(runs) > 1:  # ended at the pause (a busy machine may judge it only after the speaker went on)
        assert any(pause.get("ended") for pause in turn["pauses"]) and len(turn["went_on"]) == 1, turn
        assert "The speaker went on after the end of the command" in log
        # Its answer is not only stopped but forgotten: the next question is not asked after the half one.
        assert f"Asked the LLM server to stop writing the answer to {runs[0]!r} and forget it" in log, log
        assert "bedroom" not in words(runs[0]) and {"lights", "bedroom"} <= set(words(runs[1])), runs
    played = await stream_wav(stt_server.uri, satellite.out, realtime=False)
    assert "bedroom" in words(played.transcript) and "all" not in words(played.transcript), played.transcript

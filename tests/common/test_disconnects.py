"""A client that hangs up in the middle of a request: the work for it stops, nothing is left behind.

100 clients (40 for the TTS, where each costs a piece of synthesis) each start a request (an utterance
to transcribe, a text to speak, a question to answer) and disconnect once the work is under way.
Afterwards the server has as many threads as before, its memory has not grown beyond a bound, and it
answers the next client correctly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from helpers import CLIPS_DIR
from helpers.speech import words
from wyoming.audio import AudioChunk

from chatty_common.health_check import describe
from wyoming_chatty_llm.client import ask
from wyoming_chatty_stt.client import read_wav, stream_wav
from wyoming_chatty_tts.client import speak

CLIENTS = 100
TTS_CLIENTS = 40  # each one costs a piece of synthesis: about 0.6 s here
MEMORY_GROWTH_MB = 40


def _line(header: dict) -> bytes:
    return json.dumps(header).encode() + b"\n"


def _threads(pid: int) -> Counter[str]:
    """The process's threads by name (a failure says which kind was left behind)."""
    names: Counter[str] = Counter()
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended while we looked
            names[(task / "comm").read_text().strip()] += 1
    return names


async def _hang_up_after(port: int, request: bytes, first_reply: str, timeout: float = 30.0) -> None:
    """Send ``request``; once an event of type ``first_reply`` arrives (the work is under way), hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    async with asyncio.timeout(timeout):
        while line := await reader.readline():
            header = json.loads(line)
            for length in ("data_length", "payload_length"):
                if header.get(length):
                    await reader.readexactly(header[length])
            if header["type"] == first_reply:
                break
    writer.transport.abort()


async def _settled_threads(pid: int, baseline: Counter[str], seconds: float = 10.0) -> Counter[str]:
    """The threads once they are back to ``baseline`` (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while (threads := _threads(pid)) != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return threads


async def _check(
    server, request: bytes, first_reply: str, clients: int = CLIENTS
) -> tuple[Counter[str], Counter[str], float]:
    process = psutil.Process(server.process.pid)
    for _ in range(5):  # thread pools and allocator arenas reach their working size first
        await _hang_up_after(server.port, request, first_reply)
    await asyncio.sleep(1)
    threads, rss = _threads(process.pid), process.memory_info().rss
    for _ in range(clients):
        await _hang_up_after(server.port, request, first_reply)
    after = await _settled_threads(process.pid, threads)
    await asyncio.sleep(1)  # measured at rest, as the baseline was (freed memory goes back after each request)
    grown = (process.memory_info().rss - rss) / 2**20
    await describe(server.uri)
    return threads, after, grown


async def test_stt_clients_hanging_up_mid_utterance(stt_server, clips):
    pcm, rate, width, channels = read_wav(CLIPS_DIR / "weather.wav")
    chunk = AudioChunk(rate, width, channels, pcm).event()
    request = (
        _line({"type": "transcribe", "data": {"language": "en"}})
        + _line({"type": "audio-start", "data": {"rate": rate, "width": width, "channels": channels}})
        + _line({"type": "audio-chunk", "data": chunk.data, "payload_length": len(pcm)})
        + pcm
        + _line({"type": "audio-stop"})
    )
    threads, after, grown = await _check(stt_server, request, "transcript-start")
    assert after == threads, f"threads after {CLIENTS} clients hung up: {after - threads} more, {threads - after} fewer"
    assert grown < MEMORY_GROWTH_MB, f"memory grew by {grown:.0f} MB"
    result = await stream_wav(stt_server.uri, CLIPS_DIR / "weather.wav", realtime=False)
    assert words(result.transcript) == words(clips["weather.wav"])


# Forty requests one after another: about half a minute here, minutes on a machine busy with other work.
@pytest.mark.timeout(900)
async def test_tts_clients_hanging_up_mid_speech(tts_server):
    # A short first piece ("Yes."): each client hangs up once it has started, while the rest is being made.
    text = "Yes. " + "Here is a long answer that takes a while to speak. " * 20
    request = _line({"type": "synthesize", "data": {"text": text}})
    threads, after, grown = await _check(tts_server, request, "audio-chunk", TTS_CLIENTS)
    assert after == threads, (
        f"threads after {TTS_CLIENTS} clients hung up: {after - threads} more, {threads - after} fewer"
    )
    assert grown < MEMORY_GROWTH_MB, f"memory grew by {grown:.0f} MB"
    assert (await speak(tts_server.uri, "Still here.")).seconds() > 0.3


@pytest.mark.timeout(900)
async def test_llm_clients_hanging_up_mid_answer(llm_server, llm_dir):
    request = _line({"type": "transcript", "data": {"text": "Tell me a long story about the sea."}})
    threads, after, grown = await _check(llm_server, request, "handled-chunk")
    assert after == threads, f"threads after {CLIENTS} clients hung up: {after - threads} more, {threads - after} fewer"
    assert grown < MEMORY_GROWTH_MB, f"memory grew by {grown:.0f} MB"
    answer = await ask(llm_server.uri, "What is the capital of France?", "after-hang-ups")
    assert answer.handled and "paris" in answer.text.lower()
    # Each abandoned answer was cut short: none of them ran to its token limit.
    records = [json.loads(line) for line in (llm_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["outcome"] == "cancelled" for r in records) >= CLIENTS

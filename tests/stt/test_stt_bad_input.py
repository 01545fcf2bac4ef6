"""Bad input gets a clear error event; the server stays up for everyone else and memory stays bounded."""

from __future__ import annotations

import asyncio
import json

import psutil
import pytest
from helpers import CLIPS_DIR
from helpers.speech import words
from wyoming.audio import AudioChunk

from chatty_common.health_check import describe
from wyoming_chatty_stt.client import read_wav, stream_wav


async def _exchange(uri: str, raw: bytes, timeout: float = 10.0) -> list[dict]:
    """Send raw bytes; return the events the server sends back before it closes the connection."""
    host, port = uri.removeprefix("tcp://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    events = []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            header = json.loads(line)
            data = header.get("data") or {}
            if header.get("data_length"):
                data.update(json.loads(await reader.readexactly(header["data_length"])))
            if header.get("payload_length"):
                await reader.readexactly(header["payload_length"])
            events.append({"type": header["type"], **data})
    finally:
        writer.close()
    return events


def _frame(header: dict, data: bytes = b"", payload: bytes = b"") -> bytes:
    return json.dumps(header).encode() + b"\n" + data + payload


async def _still_serves(stt_server, clips) -> None:
    await describe(stt_server.uri)
    result = await stream_wav(stt_server.uri, CLIPS_DIR / "weather.wav", realtime=False)
    assert words(result.transcript) == words(clips["weather.wav"])


BAD_FRAMES = {
    "huge data_length": (_frame({"type": "transcribe", "data_length": 10**12}), "data_length", "too-large"),
    "huge payload_length": (
        _frame(
            {
                "type": "audio-chunk",
                "data": {"rate": 16000, "width": 2, "channels": 1},
                "payload_length": 10**10,
            }
        ),
        "payload_length",
        "too-large",
    ),
    "negative data_length": (_frame({"type": "transcribe", "data_length": -5}), "negative", "protocol-error"),
    "string payload_length": (
        _frame({"type": "audio-chunk", "payload_length": "12"}),
        "whole number",
        "protocol-error",
    ),
    "invalid JSON": (b'{"type": "describe",,}\n', "not valid JSON", "protocol-error"),
    "JSON that is not an object": (b"[1, 2, 3]\n", "JSON object", "protocol-error"),
    "no type": (b'{"data": {}}\n', "type", "protocol-error"),
    "data that is not an object": (_frame({"type": "transcribe", "data": [1]}), "object", "protocol-error"),
    "invalid JSON in data": (
        _frame({"type": "transcribe", "data_length": 5}, b"{oops"),
        "not valid JSON",
        "protocol-error",
    ),
    "endless header line": (b'{"type": "' + b"x" * 200_000, "longer than", "too-large"),
    "chunk before audio-start": (
        _frame(
            {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 4},
            payload=b"\0\0\0\0",
        ),
        "before audio-start",
        "audio-not-started",
    ),
    "audio-stop before audio-start": (
        _frame({"type": "audio-stop"}),
        "before audio-start",
        "audio-not-started",
    ),
    "unsupported width": (
        _frame({"type": "audio-start", "data": {"rate": 16000, "width": 7, "channels": 1}}),
        "width",
        "unsupported-audio",
    ),
    "missing rate": (
        _frame({"type": "audio-start", "data": {"width": 2, "channels": 1}}),
        "rate",
        "unsupported-audio",
    ),
    "zero rate": (
        _frame({"type": "audio-start", "data": {"rate": 0, "width": 2, "channels": 1}}),
        "rate",
        "unsupported-audio",
    ),
    "unsupported language": (
        _frame({"type": "transcribe", "data": {"language": "de"}}),
        "only transcribes English",
        "unsupported-language",
    ),
    "language of the wrong type": (
        _frame({"type": "transcribe", "data": {"language": 5}}),
        "language",
        "bad-request",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
async def test_bad_input_gets_an_error_and_the_server_stays_up(stt_server, clips, case):
    raw, expected_text, expected_code = BAD_FRAMES[case]
    events = await _exchange(stt_server.uri, raw)
    assert [event["type"] for event in events] == ["error"], events
    assert expected_text in events[0]["text"]
    assert events[0]["code"] == expected_code
    await _still_serves(stt_server, clips)


async def test_an_utterance_over_the_limit_is_refused(start_server, clips, tmp_path):
    server = start_server("wyoming_chatty_stt", "--data-dir", str(tmp_path), "--max-seconds", "4")
    pcm, rate, width, channels = read_wav(CLIPS_DIR / "robot.wav")  # 5.8 s
    events = await _exchange(
        server.uri,
        _frame({"type": "audio-start", "data": {"rate": rate, "width": width, "channels": channels}})
        + b"".join(
            _frame(
                {
                    "type": "audio-chunk",
                    "data": {"rate": rate, "width": width, "channels": channels},
                    "payload_length": len(pcm[i : i + 8192]),
                },
                payload=pcm[i : i + 8192],
            )
            for i in range(0, len(pcm), 8192)
        ),
    )
    assert [event["type"] for event in events] == ["transcript-start", "error"]
    assert "limit of 4 s" in events[-1]["text"]
    assert events[-1]["code"] == "audio-too-long"
    result = await stream_wav(server.uri, CLIPS_DIR / "weather.wav", realtime=False)
    assert words(result.transcript) == words(clips["weather.wav"])


async def test_vanishing_clients_leave_nothing_behind(stt_server, clips):
    """Clients that disconnect mid-stream, mid-event or mid-decode do not leak memory or break the server."""
    process = psutil.Process(stt_server.process.pid)
    pcm, rate, width, channels = read_wav(CLIPS_DIR / "robot.wav")
    host, port = stt_server.uri.removeprefix("tcp://").split(":")

    async def vanish(round_: int) -> None:
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(_frame({"type": "audio-start", "data": {"rate": rate, "width": width, "channels": channels}}))
        chunk = AudioChunk(rate, width, channels, pcm).event()
        header = {"type": "audio-chunk", "data": chunk.data, "payload_length": len(pcm)}
        if round_ % 3 == 0:  # gone in the middle of a payload
            writer.write(_frame(header, payload=pcm[: len(pcm) // 2]))
        elif round_ % 3 == 1:  # gone while its final decode runs
            writer.write(_frame(header, payload=pcm) + _frame({"type": "audio-stop"}))
        else:  # gone in the middle of a header line
            writer.write(_frame(header, payload=pcm) + b'{"type": "audio-')
        await writer.drain()
        writer.transport.abort()

    for round_ in range(6):  # warm up allocator pools before measuring
        await vanish(round_)
    await _still_serves(stt_server, clips)
    baseline = process.memory_info().rss
    for round_ in range(60):
        await vanish(round_)
    await _still_serves(stt_server, clips)
    grown = process.memory_info().rss - baseline
    assert grown < 40 * 1024 * 1024, f"server memory grew by {grown / 1e6:.1f} MB after 60 vanished clients"

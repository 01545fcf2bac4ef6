"""Shared pieces on their own: PCM conversion and the bounded event reader."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from helpers.servers import find_advertised, free_port

from chatty_common.audio import PcmFormat, PcmToFloat, UnsupportedAudio
from chatty_common.protocol import ClientGone, EventLimits, RequestError, read_event
from chatty_common.zeroconf import ZeroconfAdvertiser


def _tone(rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_every_sample_width_decodes_to_the_same_signal(width):
    tone = _tone(16000)
    scaled = np.round(tone * (2 ** (8 * width - 1) - 1)).astype(np.int64)
    if width == 1:
        pcm = (scaled + 128).astype(np.uint8).tobytes()
    else:
        pcm = b"".join(int(v).to_bytes(width, "little", signed=True) for v in scaled)
    out = PcmToFloat(PcmFormat(16000, width, 1), 16000).convert(pcm)
    assert out.shape == tone.shape
    assert np.max(np.abs(out - tone)) < 2.0 / 2 ** (8 * width - 1) + 1e-6


def test_stereo_is_mixed_and_rate_is_converted_in_small_chunks():
    tone = _tone(24000)
    stereo = np.stack([tone, tone], axis=1).reshape(-1)
    pcm = (stereo * 32767).astype("<i2").tobytes()
    converter = PcmToFloat(PcmFormat(24000, 2, 2), 16000)
    pieces = [converter.convert(pcm[i : i + 1001]) for i in range(0, len(pcm), 1001)]  # odd sizes split frames
    out = np.concatenate([*pieces, converter.flush()])
    assert abs(out.size - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(out[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 440) < 3
    assert 0.3 < np.sqrt(np.mean(out[2000:14000] ** 2)) < 0.4  # 0.5 amplitude sine: rms 0.354


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        (PcmFormat(0, 2, 1), "rate"),
        (PcmFormat(16000, 5, 1), "width"),
        (PcmFormat(16000, 2, 0), "channels"),
        (PcmFormat("16000", 2, 1), "whole number"),  # type: ignore[arg-type]
    ],
)
def test_unusable_formats_are_refused(fmt, reason):
    with pytest.raises(UnsupportedAudio, match=reason):
        PcmToFloat(fmt, 16000)


async def _read(raw: bytes, limits: EventLimits | None = None):
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    return await read_event(reader, limits or EventLimits())


async def test_reader_returns_payload_and_data():
    data = json.dumps({"text": "hi"}).encode()
    header = json.dumps({"type": "transcript", "data": {"a": 1}, "data_length": len(data), "payload_length": 3})
    event = await _read(header.encode() + b"\n" + data + b"abc")
    assert event.type == "transcript"
    assert event.data == {"a": 1, "text": "hi"}
    assert event.payload == b"abc"


async def test_reader_end_of_stream_and_truncation():
    assert await _read(b"") is None
    with pytest.raises(ClientGone):
        await _read(b'{"type": "audio-chunk", "payload_length": 10}\n12345')
    with pytest.raises(ClientGone):
        await _read(b'{"type": "audio-ch')


async def test_reader_limits_are_enforced_before_reading():
    limits = EventLimits(max_line_bytes=1000, max_data_bytes=100, max_payload_bytes=50)
    with pytest.raises(RequestError, match="payload_length 51 is over this server's limit of 50"):
        await _read(b'{"type": "audio-chunk", "payload_length": 51}\n', limits)
    with pytest.raises(RequestError, match="data_length 101"):
        await _read(b'{"type": "x", "data_length": 101}\n', limits)
    with pytest.raises(RequestError, match="longer than 1000 bytes"):
        await _read(b'{"type": "' + b"x" * 2000 + b'"}\n', limits)


async def test_json_nested_deeper_than_the_parser_goes_is_a_protocol_error():
    nested = b"[" * 20_000 + b"]" * 20_000  # json.loads raises RecursionError here, not ValueError
    with pytest.raises(RequestError, match="header is nested too deeply") as header:
        await _read(b'{"type": "describe", "data": {"x": ' + nested + b"}}\n")
    with pytest.raises(RequestError, match="data is nested too deeply") as data:
        await _read(b'{"type": "transcript", "data_length": %d}\n' % len(nested) + nested)
    assert header.value.code == data.value.code == "protocol-error"


def test_heartbeat_reports_while_a_long_step_runs_and_stops_after(caplog):
    import logging
    import time

    from chatty_common.progress import Heartbeat

    logger = logging.getLogger("test.heartbeat")
    with caplog.at_level(logging.INFO, logger="test.heartbeat"):
        with Heartbeat(logger, "Quantizing", every=0.05):
            time.sleep(0.32)
        during = [r.getMessage() for r in caplog.records]
        time.sleep(0.15)
    assert 4 <= len(during) <= 7, during
    assert all(m.startswith("Quantizing: still working (") for m in during)
    assert len(caplog.records) == len(during)  # silent once the step is over


async def test_a_taken_zeroconf_name_is_advertised_under_the_next_free_one(caplog):
    """A second Chatty in the house with default names: the second server takes "NAME-2" instead of failing."""
    name = f"chatty-test-{free_port()}"
    first = ZeroconfAdvertiser(name, free_port(), "127.0.0.1")
    second = ZeroconfAdvertiser(name, free_port(), "127.0.0.1")
    await first.start()
    try:
        await second.start()
        try:
            assert second.name == f"{name}-2"
            assert f"the name {name} is taken on this network; advertising as {name}-2" in caplog.text
            assert (await find_advertised(name, first.port)).name == name
            assert (await find_advertised(name, second.port)).name == f"{name}-2"
        finally:
            await second.close()
    finally:
        await first.close()

"""Home Assistant's side of a satellite connection, played by a test: reading events, sending answer audio."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import soxr
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.event import Event

HA_RATE = 22050  # HA's ffmpeg step resamples TTS audio for satellites to this rate
HA_CHUNK_BYTES = 2048


async def next_event(client: AsyncClient, *types: str, timeout: float = 20.0) -> Event:
    """The next event of one of ``types`` (pongs and others in between are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(client.read_event(), max(deadline - time.monotonic(), 0.01))
        assert event is not None, "the satellite closed the connection"
        if event.type in types:
            return event


async def send_answer_audio(client: AsyncClient, pcm24k: bytes) -> float:
    """Stream answer audio as HA does: 22050 Hz, 2048-byte chunks; returns its length in seconds."""
    pcm = soxr.resample(np.frombuffer(pcm24k, dtype="<i2"), 24000, HA_RATE).astype("<i2").tobytes()
    await client.write_event(AudioStart(rate=HA_RATE, width=2, channels=1, timestamp=0).event())
    for i in range(0, len(pcm), HA_CHUNK_BYTES):
        await client.write_event(
            AudioChunk(rate=HA_RATE, width=2, channels=1, audio=pcm[i : i + HA_CHUNK_BYTES]).event()
        )
    await client.write_event(AudioStop().event())
    return len(pcm) / 2 / HA_RATE

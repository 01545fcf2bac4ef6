"""The PortAudio microphone's reader against a scripted stream, and the background look-up of a server.

Fast checks of what the real devices (tests/satellite/test_satellite_devices.py: a frozen, a restarted
sound server) show only now and then: the counts PortAudio reports while a device holds no audio, has
lost some, or has gone away, and a request to let go while nothing comes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

import pytest

from satellite import audio_io
from satellite.audio_io import FRAME_SAMPLES, DeviceError, DevicesListedAnew, PyAudioMicrophone
from satellite.services import BackgroundLookup, Services

READ = FRAME_SAMPLES * 2  # frames in one device read


class ScriptedStream:
    """What pyaudio's input stream reports: the counts given, then nothing (a frozen sound server)."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.reads = 0

    def get_read_available(self) -> int:
        return self.counts.pop(0) if self.counts else 0

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        self.reads += 1
        return bytes(2 * frames)


class ScriptedDevice:
    """Stands in for the PortAudio device: opens a :class:`ScriptedStream` of ``COUNTS``."""

    COUNTS: ClassVar[list[int]] = []
    made: ClassVar[list[ScriptedDevice]] = []

    def __init__(self, device: str | None, kind: str, rate: int, frames_per_buffer: int) -> None:
        self.device = device or "default"
        self.stream: ScriptedStream | None = None
        self.stale = False
        self.released = self.abandoned = 0
        ScriptedDevice.made.append(self)

    def open(self) -> None:
        self.stream = ScriptedStream(list(self.COUNTS))

    def release(self) -> None:
        self.stream = None
        self.released += 1

    def abandon(self) -> None:
        self.stream = None
        self.abandoned += 1


@pytest.fixture
def scripted(monkeypatch):
    """A microphone on a scripted device; ``scripted(counts)`` makes it."""
    monkeypatch.setattr(audio_io, "_PortAudioStream", ScriptedDevice)
    ScriptedDevice.made = []

    def make(counts: list[int]) -> tuple[PyAudioMicrophone, ScriptedDevice]:
        ScriptedDevice.COUNTS = counts
        mic = PyAudioMicrophone("scripted")
        return mic, ScriptedDevice.made[-1]

    return make


async def test_a_device_that_reports_an_error_code_stops_with_its_error(scripted):
    mic, device = scripted([READ, READ * 2, -9999])  # the sound server went away after three reads
    with pytest.raises(DeviceError, match=r"the microphone stopped: \[Errno -9999\] Unanticipated host error"):
        async with asyncio.timeout(5):
            async for _ in mic.chunks():
                pass
    assert device.stream is None and device.released == 2  # checked at the start, then let go after the error


async def test_lost_audio_is_not_an_error_and_nothing_means_waiting(scripted):
    mic, device = scripted([READ, -9981, READ - 1, READ])  # an overflow, then not quite a read's worth
    frames = 0
    async with asyncio.timeout(5):
        async for batch in mic.chunks():
            frames += len(batch)
            if frames == 4:
                break
    await asyncio.sleep(0.1)  # nothing more comes: the reader waits, it does not read
    assert device.stream is not None and device.stream.reads == 2
    await mic.close()
    assert device.released == 2 and not device.abandoned  # checked at the start, then closed


async def test_a_request_to_let_go_is_heard_while_the_device_holds_nothing(scripted):
    mic, device = scripted([READ])
    chunks = mic.chunks()
    await anext(chunks)
    device.stale = True  # the speaker could not open its device: PortAudio must list them anew
    started = time.monotonic()
    with pytest.raises(DevicesListedAnew):
        async with asyncio.timeout(5):
            await anext(chunks)
    assert time.monotonic() - started < 1.0


async def test_a_microphone_that_went_quiet_is_left_open_at_the_end(scripted, caplog):
    mic, device = scripted([READ])
    chunks = mic.chunks()
    await anext(chunks)
    await asyncio.sleep(0.4)  # nothing since: its sound server has frozen, and closing would wait for it
    await chunks.aclose()
    await mic.close()
    assert device.abandoned == 1 and device.released == 1  # only the check at the start was closed
    assert "The microphone has delivered nothing for 0.25 s; leaving it open" in caplog.text


async def test_a_server_not_found_is_looked_up_once_at_a_time_and_not_again_at_once(caplog):
    caplog.set_level(logging.INFO)
    lookup = BackgroundLookup(Services({}, {}), "stt", "pauses end by silence until it is found")
    lookup.start()
    lookup.start()  # one is under way
    await asyncio.sleep(0.05)
    lookup.start()  # the last one was just now
    await asyncio.sleep(0.05)
    await lookup.close()
    assert caplog.text.count("STT server: neither an address nor a zeroconf name was given; pauses end by") == 1


def test_a_given_address_is_never_forgotten():
    services = Services({"stt": "tcp://127.0.0.1:9"}, {})
    services.forget("stt")
    assert services.address("stt") == "tcp://127.0.0.1:9" and services.address("llm") is None

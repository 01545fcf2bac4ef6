"""The PortAudio microphone's reader against a scripted stream, a speaker that hangs, and the background
look-up of a server.

Fast checks of what the real devices (tests/satellite/test_satellite_devices.py: a frozen, a restarted
sound server) show only now and then: the counts PortAudio reports while a device holds no audio, has
lost some, or has gone away, and a request to let go while nothing comes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from typing import ClassVar

import pytest

from satellite import audio_io
from satellite.audio_io import (
    FRAME_SAMPLES,
    DeviceError,
    DeviceHung,
    DevicesListedAnew,
    PyAudioMicrophone,
    Speaker,
)
from satellite.capture import Heard
from satellite.core import Listener, Mode, Satellite
from satellite.player import Player
from satellite.services import BackgroundLookup, Services
from satellite.speech import VoiceActivity

READ = FRAME_SAMPLES * 2  # frames in one device read


class ScriptedStream:
    """What pyaudio's input stream reports: the counts given, then nothing (a frozen sound server), or
    with ``hang`` set, no answer until it is cleared (libpulse deadlocked under the call)."""

    def __init__(self, counts: list[int], hang: threading.Event) -> None:
        self.counts = counts
        self.hang = hang
        self.reads = 0

    def get_read_available(self) -> int:
        if self.counts:
            return self.counts.pop(0)
        while self.hang.is_set():
            time.sleep(0.01)
        return 0

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        self.reads += 1
        return bytes(2 * frames)


class ScriptedDevice:
    """Stands in for the PortAudio device: opens a :class:`ScriptedStream` of ``COUNTS``."""

    COUNTS: ClassVar[list[int]] = []
    HANG = threading.Event()
    made: ClassVar[list[ScriptedDevice]] = []

    def __init__(self, device: str | None, kind: str, rate: int, frames_per_buffer: int) -> None:
        self.device = device or "default"
        self.stream: ScriptedStream | None = None
        self.stale = False
        self.released = self.abandoned = 0
        ScriptedDevice.made.append(self)

    def open(self) -> None:
        self.stream = ScriptedStream(list(self.COUNTS), self.HANG)

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
    ScriptedDevice.HANG.clear()

    def make(counts: list[int]) -> tuple[PyAudioMicrophone, ScriptedDevice]:
        ScriptedDevice.COUNTS = counts
        mic = PyAudioMicrophone("scripted")
        return mic, ScriptedDevice.made[-1]

    yield make
    ScriptedDevice.HANG.clear()  # lets a hung reader thread out


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


async def test_a_microphone_stuck_in_the_sound_library_ends_the_listening(scripted, monkeypatch):
    monkeypatch.setattr(audio_io, "DEVICE_HUNG_SECONDS", 1.5)
    mic, device = scripted([READ, READ])
    ScriptedDevice.HANG.set()  # after two reads, the device's next call never comes back
    listener = Listener(mic, None, VoiceActivity())
    heard = 0
    started = time.monotonic()
    with pytest.raises(DeviceHung, match=r"stuck inside the sound library for \d+ s .*only a new process"):
        async with asyncio.timeout(10):
            async for _ in listener.heard(lambda: False):
                heard += 1
    # It worked, then hung: not opened again with back-off (the reader would stay stuck), but ended.
    assert heard >= 2 and 1.5 <= time.monotonic() - started < 5
    assert device.released == 1 and not device.abandoned  # not closed under the thread inside it


class StuckSpeaker(Speaker):
    """A speaker whose writes stop coming back after the first few (libpulse deadlocked under a write)."""

    rate = 16000
    paced = True
    description = "PortAudio output stuck"

    def __init__(self) -> None:
        self.writes = 0
        self.release = threading.Event()

    def write(self, pcm: bytes) -> None:
        self.writes += 1
        if self.writes > 5:
            self.release.wait()
        else:
            time.sleep(len(pcm) / 2 / self.rate)


class Deaf(Mode):
    """A mode that does nothing with what it hears: the test is about the speaker."""

    def listen(self, wake_word: str | None) -> None:
        pass

    def on_heard(self, heard: Heard) -> None:
        pass

    @property
    def wants_speech(self) -> bool:
        return False

    @property
    def idle(self) -> bool:
        return True


async def test_a_speaker_stuck_in_the_sound_library_ends_the_satellite(scripted, monkeypatch, caplog):
    monkeypatch.setattr(audio_io, "DEVICE_HUNG_SECONDS", 1.5)
    mic, _device = scripted([READ] * 50)
    speaker = StuckSpeaker()
    satellite = Satellite(Listener(mic, None, VoiceActivity()), Player(speaker), Deaf())
    started = time.monotonic()
    try:
        with pytest.raises(DeviceHung, match=r"the speaker PortAudio output stuck has been stuck inside its device"):
            async with asyncio.timeout(10):
                await satellite.run()
    finally:
        speaker.release.set()
    assert speaker.writes == 6 and 1.5 <= time.monotonic() - started < 5
    assert "The speaker is stuck in a write" in caplog.text  # not closed under the thread inside it


def test_the_satellite_exits_at_once_when_its_microphone_hangs():
    # The thread stuck in the sound library holds its lock: a normal exit (waiting for threads, PortAudio's
    # clean-up) would never end. Here a thread that never ends stands for it.
    script = """
import threading, satellite.__main__ as main
from satellite.audio_io import DeviceHung
threading.Thread(target=threading.Event().wait).start()
async def run(args, wake_words):
    raise DeviceHung("the microphone default has been stuck inside the sound library for 60 s")
main.run = run
main.main(["--mode", "direct", "--mic-file", "x.wav", "--end-of-turn", "silence"])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 1
    assert "chatty-satellite: the microphone default has been stuck inside the sound library" in done.stderr


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

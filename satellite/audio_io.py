"""Microphones and speakers: PortAudio devices (``pyaudio``), external commands, and WAV files.

Every microphone yields 10 ms frames of 16 kHz, 16-bit mono audio with the
time each was captured; every speaker takes 16-bit mono PCM at its own rate
with a blocking ``write`` (called from the player's thread). Formats are
converted with libsoxr where the device's differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import subprocess
import threading
import time
import wave
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from chatty_common.audio import PcmFormat, PcmToPcm16, UnsupportedAudio

_LOGGER = logging.getLogger(__name__)

MIC_RATE = 16000
FRAME_SAMPLES = 160  # 10 ms
FRAME_BYTES = FRAME_SAMPLES * 2
FRAME_SECONDS = FRAME_SAMPLES / MIC_RATE
MIC_FORMAT = PcmFormat(MIC_RATE, 2, 1)


class DeviceError(Exception):
    """A microphone or speaker cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Frame:
    """10 ms of 16 kHz mono 16-bit audio and when it was captured (``time.monotonic()``)."""

    pcm: bytes
    captured_at: float


class _Framer:
    """Cuts converted audio into exact 10 ms frames."""

    def __init__(self, fmt: PcmFormat) -> None:
        try:
            self._converter = PcmToPcm16(fmt, MIC_RATE)
        except UnsupportedAudio as err:
            raise DeviceError(f"unsupported microphone format: {err}") from err
        self._buffer = bytearray()

    def frames(self, pcm: bytes) -> list[bytes]:
        self._buffer += self._converter.convert(pcm)
        count = len(self._buffer) // FRAME_BYTES
        frames = [bytes(self._buffer[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]) for i in range(count)]
        del self._buffer[: count * FRAME_BYTES]
        return frames


class Microphone(ABC):
    """A source of 10 ms frames."""

    description: str

    @abstractmethod
    def frames(self) -> AsyncIterator[Frame]:
        """Frames as they are captured; ends only when the source does."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device."""


class FileMicrophone(Microphone):
    """A WAV file played into the satellite at real-time pace, then silence (a room gone quiet).

    ``ended`` is set when the file's audio is used up.
    """

    def __init__(self, path: Path, silence_after: float = 3600.0) -> None:
        try:
            with wave.open(str(path), "rb") as wav:
                fmt = PcmFormat(wav.getframerate(), wav.getsampwidth(), wav.getnchannels())
                pcm = wav.readframes(wav.getnframes())
        except FileNotFoundError:
            raise DeviceError(f"--mic-file {path}: no such file") from None
        except (wave.Error, EOFError, OSError) as err:
            raise DeviceError(f"--mic-file {path}: not a readable WAV file ({err})") from None
        framer = _Framer(fmt)
        self._frames = framer.frames(pcm) + framer.frames(b"")
        self._silence_frames = int(silence_after / FRAME_SECONDS)
        self.description = f"file {path}"
        self.ended = asyncio.Event()
        self.start_at: float | None = None
        """When the file starts playing in (``time.monotonic()``); default: when reading starts."""

    @property
    def seconds(self) -> float:
        return len(self._frames) * FRAME_SECONDS

    async def frames(self) -> AsyncIterator[Frame]:
        silence = bytes(FRAME_BYTES)
        start = self.start_at if self.start_at is not None else time.monotonic()
        self.start_at = start
        total = len(self._frames) + self._silence_frames
        for index in range(total):
            due = start + (index + 1) * FRAME_SECONDS  # a frame exists once its last sample was "spoken"
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if index == len(self._frames):
                self.ended.set()
            yield Frame(self._frames[index] if index < len(self._frames) else silence, due)
        self.ended.set()


class CommandMicrophone(Microphone):
    """Raw PCM from a command's standard output, e.g. ``arecord -r 16000 -c 1 -f S16_LE -t raw``."""

    def __init__(self, command: str, fmt: PcmFormat) -> None:
        self._argv = shlex.split(command)
        if not self._argv:
            raise DeviceError("--mic-command is empty")
        self._fmt = fmt
        self._framer = _Framer(fmt)
        self._process: asyncio.subprocess.Process | None = None
        self.description = f"command {self._argv[0]}"

    async def frames(self) -> AsyncIterator[Frame]:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as err:
            raise DeviceError(f"--mic-command: cannot run {self._argv[0]}: {err}") from err
        assert self._process.stdout is not None
        block = max(FRAME_SAMPLES * self._fmt.frame_bytes * self._fmt.rate // MIC_RATE, 1)
        while True:
            data = await self._process.stdout.read(block)
            if not data:
                break
            now = time.monotonic()
            for pcm in self._framer.frames(data):
                yield Frame(pcm, now)
        code = await self._process.wait()
        stderr = b""
        if self._process.stderr is not None:
            stderr = await self._process.stderr.read()
        detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise DeviceError(f"--mic-command {self._argv[0]} stopped (exit code {code}) {detail[0]}".strip())

    async def close(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await asyncio.wait_for(self._process.wait(), 5)


def _pyaudio():
    try:
        import pyaudio
    except ImportError as err:
        raise DeviceError(
            "PortAudio devices need pyaudio (install chatty[satellite]; on Debian it builds against "
            "portaudio19-dev); or use --mic-command / --snd-command"
        ) from err
    return pyaudio


def _find_device(audio, wanted: str, kind: str) -> int:
    """A PortAudio device index by number or by (part of) its name, with a list on failure."""
    key = "maxInputChannels" if kind == "input" else "maxOutputChannels"
    devices = [audio.get_device_info_by_index(i) for i in range(audio.get_device_count())]
    usable = [d for d in devices if d.get(key, 0) > 0]
    if wanted.isdigit() and any(d["index"] == int(wanted) for d in usable):
        return int(wanted)
    for device in usable:
        if wanted.lower() in str(device["name"]).lower():
            return int(device["index"])
    names = ", ".join(f"{d['index']}: {d['name']}" for d in usable) or "none"
    raise DeviceError(f"no {kind} device {wanted!r}; {kind} devices: {names}")


class PyAudioMicrophone(Microphone):
    """A PortAudio input device at 16 kHz mono (PortAudio converts where the device cannot)."""

    def __init__(self, device: str | None) -> None:
        self._pyaudio = _pyaudio()
        self._audio = self._pyaudio.PyAudio()
        self._device = device
        try:
            self._index = None if device in (None, "default") else _find_device(self._audio, device, "input")
        except DeviceError:
            self._audio.terminate()
            raise
        self._stream = None
        self._open()
        self.description = f"PortAudio input {device or 'default'}"
        self._stop = threading.Event()

    def _open(self) -> None:
        try:
            self._stream = self._audio.open(
                format=self._pyaudio.paInt16, channels=1, rate=MIC_RATE, input=True,
                input_device_index=self._index, frames_per_buffer=FRAME_SAMPLES * 2,
            )  # fmt: skip
        except (OSError, ValueError) as err:
            raise DeviceError(f"cannot open the microphone {self._device or 'default'}: {err}") from err

    def _close_stream(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.stop_stream()
                self._stream.close()
            self._stream = None

    async def frames(self) -> AsyncIterator[Frame]:
        if self._stream is None:
            self._open()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(maxsize=500)

        def read() -> None:
            stream = self._stream
            while not self._stop.is_set() and stream is not None:
                try:
                    data = stream.read(FRAME_SAMPLES * 2, exception_on_overflow=False)
                except OSError as err:
                    loop.call_soon_threadsafe(queue.put_nowait, err)
                    return
                loop.call_soon_threadsafe(queue.put_nowait, data)

        reader = threading.Thread(target=read, name="mic", daemon=True)
        reader.start()
        framer = _Framer(MIC_FORMAT)
        while True:
            data = await queue.get()
            if isinstance(data, Exception):
                self._close_stream()
                raise DeviceError(f"the microphone stopped: {data}")
            now = time.monotonic()
            for pcm in framer.frames(data):
                yield Frame(pcm, now)

    async def close(self) -> None:
        self._stop.set()
        self._close_stream()
        self._audio.terminate()


class Speaker(ABC):
    """A sink for 16-bit mono PCM at ``rate``. ``write`` may block; ``paced`` says whether it does so in
    real time (a sound card) or the player must pace it (a file, a pipe)."""

    rate: int
    paced: bool = False
    description: str

    @abstractmethod
    def write(self, pcm: bytes) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release."""


class FileSpeaker(Speaker):
    """A WAV file that records everything played, silences included, on the satellite's clock."""

    def __init__(self, path: Path, rate: int) -> None:
        self.rate = rate
        try:
            self._file = path.open("wb")
        except OSError as err:
            raise DeviceError(f"--snd-file {path}: cannot write it ({err.strerror})") from None
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - open for the satellite's lifetime
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._lock = threading.Lock()
        self.description = f"file {path}"

    def write(self, pcm: bytes) -> None:
        with self._lock:
            self._wav.writeframes(pcm)

    def close(self) -> None:
        with self._lock:
            self._wav.close()
            self._file.close()


class CommandSpeaker(Speaker):
    """Raw PCM into a command's standard input, e.g. ``aplay -r 24000 -c 1 -f S16_LE -t raw``.

    The command keeps running between answers (so nothing is clipped at the start); if it
    exits, it is started again for the next write.
    """

    def __init__(self, command: str, rate: int) -> None:
        self._argv = shlex.split(command)
        if not self._argv:
            raise DeviceError("--snd-command is empty")
        self.rate = rate
        self._process: subprocess.Popen | None = None
        self.description = f"command {self._argv[0]}"
        self._start()

    def _start(self) -> None:
        try:
            self._process = subprocess.Popen(
                self._argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as err:
            raise DeviceError(f"--snd-command: cannot run {self._argv[0]}: {err}") from err

    def write(self, pcm: bytes) -> None:
        if self._process is None or self._process.poll() is not None:
            _LOGGER.warning("The speaker command %s exited; starting it again", self._argv[0])
            self._start()
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(pcm)
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            _LOGGER.warning("The speaker command %s stopped taking audio: %s", self._argv[0], err)

    def close(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                if self._process.stdin is not None:
                    self._process.stdin.close()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()


class PyAudioSpeaker(Speaker):
    """A PortAudio output device; its ``write`` blocks at the device's pace."""

    paced = True

    def __init__(self, device: str | None, rate: int) -> None:
        pyaudio = _pyaudio()
        self.rate = rate
        self._audio = pyaudio.PyAudio()
        try:
            index = None if device in (None, "default") else _find_device(self._audio, device, "output")
            self._stream = self._audio.open(
                format=pyaudio.paInt16, channels=1, rate=rate, output=True, output_device_index=index,
                frames_per_buffer=rate // 100 * 2,
            )  # fmt: skip
        except (OSError, ValueError) as err:
            self._audio.terminate()
            raise DeviceError(f"cannot open the speaker {device or 'default'}: {err}") from err
        self.description = f"PortAudio output {device or 'default'}"

    def write(self, pcm: bytes) -> None:
        self._stream.write(pcm)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.stop_stream()
            self._stream.close()
        self._audio.terminate()

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
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chatty_common.audio import PcmFormat, PcmToPcm16, UnsupportedAudio

_LOGGER = logging.getLogger(__name__)

MIC_RATE = 16000
FRAME_SAMPLES = 160  # 10 ms
FRAME_BYTES = FRAME_SAMPLES * 2
FRAME_SECONDS = FRAME_SAMPLES / MIC_RATE
MIC_FORMAT = PcmFormat(MIC_RATE, 2, 1)
T = TypeVar("T")


class DeviceError(Exception):
    """A microphone or speaker cannot be used; the message says which and why."""


class DevicesListedAnew(DeviceError):
    """A device let go of PortAudio so that another one could be found: open it again at once."""


class DeviceHung(DeviceError):
    """A device's thread has been inside the sound library for so long that it will not come out: only a
    new process can use the device (the satellite exits, for its service manager to start it again)."""


class DeviceCalls:
    """Times the call a device's thread is in, to tell a device that has hung from one that is slow."""

    def __init__(self) -> None:
        self._since: float | None = None  # when the thread went into the call it is in now, if any

    def run(self, call: Callable[..., T], *args: object, **kwargs: object) -> T:
        self._since = time.monotonic()
        try:
            return call(*args, **kwargs)
        finally:
            self._since = None

    def hung(self, device: str, inside: str) -> DeviceHung | None:
        """The error to end with once one call has lasted :data:`DEVICE_HUNG_SECONDS` (None before): ``device``
        and ``inside`` say which and where, for the message."""
        since = self._since
        if since is None or (lasted := time.monotonic() - since) < DEVICE_HUNG_SECONDS:
            return None
        return DeviceHung(
            f"the {device} has been stuck inside {inside} for {lasted:.0f} s (its sound server hangs or dropped "
            "it): exiting, since only a new process can use it again"
        )


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
    relaxed: bool = False
    """Set while nobody needs the audio at once (no command is being heard): a device may then hand it
    over in larger batches, waking the satellite less often (an idle satellite listens all day)."""

    @abstractmethod
    def chunks(self) -> AsyncIterator[list[Frame]]:
        """Frames as they are captured, those of one device read together; ends only when the source does."""

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

    async def chunks(self) -> AsyncIterator[list[Frame]]:
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
            yield [Frame(self._frames[index] if index < len(self._frames) else silence, due)]
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

    async def chunks(self) -> AsyncIterator[list[Frame]]:
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
            if frames := self._framer.frames(data):
                yield [Frame(pcm, now) for pcm in frames]
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


# PortAudio's set-up and tear-down (Pa_Initialize, Pa_Terminate, opening and closing streams) is not
# thread-safe: the microphone and the speaker reopening at once from their threads corrupted the heap.
_PORTAUDIO_LOCK = threading.RLock()


@dataclass
class _PortAudioSession:
    """How many streams keep PortAudio initialized, and how often one asked the others to let go."""

    users: int = 0
    refreshes: int = 0


_SESSION = _PortAudioSession()


class _PortAudioStream:
    """One PortAudio stream on a device named by the user; opened again from scratch after a failure.

    PortAudio reads the list of devices when it is first initialized, and again only once every
    ``PyAudio()`` of the process has been terminated; so a device that went away and came back (a
    restarted sound server, a USB sound card plugged in again) is found again once both the
    microphone and the speaker have let go of theirs, which they do when the device fails. When one
    of them cannot open its device again while the other keeps PortAudio initialized, it asks the
    other to let go and open again at once (:attr:`stale`): a microphone that came back first,
    halfway through a sound server's start, kept a list without the speaker, and the speaker never
    found its device. Each failed open asks (the failing device's back-off spaces them out); a device
    that is really gone costs the other one a moment's audio each time.
    """

    def __init__(self, device: str | None, kind: str, rate: int, frames_per_buffer: int) -> None:
        self.device = device or "default"
        self._kind = kind
        self._rate = rate
        self._frames_per_buffer = frames_per_buffer
        self._pyaudio = _pyaudio()
        self._audio: Any = None
        self.stream: Any = None
        self._refreshes = 0  # the session's refresh count when this stream was opened
        self._opened = False  # once: a failure to open again asks the other stream to let go

    @property
    def stale(self) -> bool:
        """Has another stream asked this one to let go of PortAudio, so that it reads its devices anew?"""
        return self.stream is not None and self._refreshes < _SESSION.refreshes

    def open(self) -> None:
        what = "microphone" if self._kind == "input" else "speaker"
        with _PORTAUDIO_LOCK:
            self._audio = self._pyaudio.PyAudio()
            _SESSION.users += 1
            self._refreshes = _SESSION.refreshes
            try:
                index = None if self.device == "default" else _find_device(self._audio, self.device, self._kind)
                self.stream = self._audio.open(
                    format=self._pyaudio.paInt16, channels=1, rate=self._rate,
                    frames_per_buffer=self._frames_per_buffer,
                    **{self._kind: True, f"{self._kind}_device_index": index},
                )  # fmt: skip
            except (OSError, ValueError) as err:
                self._failed()
                raise DeviceError(f"cannot open the {what} {self.device}: {err}") from err
            except DeviceError:
                self._failed()
                raise
            self._opened = True

    def _failed(self) -> None:
        """After a failed open: let go, and if this device worked before, ask the other stream to let go
        as well (PortAudio's list of devices may be older than the device's return)."""
        self.release()
        if self._opened and _SESSION.users:
            _SESSION.refreshes += 1
            _LOGGER.info("Asking the other audio device to open again, so that PortAudio lists the devices anew")

    def abandon(self) -> None:
        """Leave the stream open for good, at exit, when its sound server has frozen: closing it would wait
        for that server, and so would its garbage collection (libpulse then aborts the process); a parked
        thread keeps it until the process ends."""
        held = (self.stream, self._audio)
        self.stream = self._audio = None
        threading.Thread(target=_keep, args=(held,), name="abandoned-audio", daemon=True).start()

    def release(self) -> None:
        """Close the stream and PortAudio; never while another thread is inside the stream."""
        with _PORTAUDIO_LOCK:
            if self.stream is not None:
                with contextlib.suppress(OSError):
                    self.stream.stop_stream()
                    self.stream.close()
                self.stream = None
            if self._audio is not None:
                self._audio.terminate()
                self._audio = None
                _SESSION.users -= 1


def _keep(_held: object) -> None:
    """A parked thread's body: holds ``_held`` until the process ends."""
    threading.Event().wait()


class RealTimePacer:
    """Holds a device that moves audio faster than real time (one without a clock) to real time.

    A sound card moves audio at its own pace; an ALSA ``file`` PCM or a broken driver moves it at CPU
    speed, which would flood the satellite. :meth:`delay` counts the audio moved and says how long to
    wait once it is more than ``slack`` seconds ahead of the wall clock. It measures over windows of
    ``window`` seconds, so the slow drift between a real device's clock and the system's never adds up.
    """

    def __init__(self, slack: float = 0.5, window: float = 60.0) -> None:
        self._slack = slack
        self._window = window
        self._start: float | None = None
        self._seconds = 0.0

    def delay(self, seconds: float) -> float:
        """Count ``seconds`` of audio just moved; how long to wait before moving more."""
        now = time.monotonic()
        if self._start is None or now - self._start > self._window:
            self._start, self._seconds = now, 0.0
        self._seconds += seconds
        return max(self._seconds - (now - self._start) - self._slack, 0.0)


REOPEN_FIRST = 1.0  # seconds before a device that failed after working is opened again; doubles ...
REOPEN_MAX = 30.0  # ... up to this (the microphone and the speaker alike)
MIC_QUEUE_SECONDS = 2.0  # audio waiting for the satellite before the oldest is dropped
MIC_STALL_SECONDS = 5.0  # no audio for this long: the microphone has stalled (logged, then waited for)
DROP_LOG_SECONDS = 30.0  # at most one line this often about dropped microphone audio
MIC_JOIN_SECONDS = 1.0  # how long closing waits for the reader thread to leave the device
DEVICE_HUNG_SECONDS = 60.0  # a device's thread inside one call this long: the sound library has hung
MIC_QUIET_AT_CLOSE = 0.25  # a microphone without audio for this long is frozen: closing would hang
RELAXED_READS = 5  # device reads (20 ms each) handed over together while the microphone is relaxed
POLL_AT_LEAST = 0.005  # s between two asks of how much audio the microphone holds
_PA_INPUT_OVERFLOWED = -9981  # PortAudio's code for a read-available count after audio was lost
# PortAudio's error codes that a device's read-available count can return, as its read would say them
_PORTAUDIO_ERRORS = {
    -9999: "Unanticipated host error", -9987: "Wait timed out", -9986: "Internal PortAudio error",
    -9985: "Device unavailable", -9983: "Stream is stopped",
}  # fmt: skip


class PyAudioMicrophone(Microphone):
    """A PortAudio input device at 16 kHz mono (PortAudio converts where the device cannot).

    A thread reads the device. It never runs ahead of real time (see :class:`RealTimePacer`), and
    the device is closed only after that thread has left it: closing a PortAudio stream while
    another thread is inside ``read`` crashes libpulse. The device is opened to check it, and let go
    until it is read: a sound server keeps what an open microphone captures, and the seconds the
    satellite takes to load its models, read at real time, would be a lag behind the speaker.
    """

    def __init__(self, device: str | None) -> None:
        self._device = _PortAudioStream(device, "input", MIC_RATE, FRAME_SAMPLES * 2)
        self._device.open()
        self._device.release()
        self.description = f"PortAudio input {self._device.device}"
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._read_at: float | None = None  # when the reader last had audio from the device
        self._calls = DeviceCalls()  # the reader's PortAudio calls

    def _hung(self) -> DeviceHung | None:
        return self._calls.hung(f"microphone {self._device.device}", "the sound library")

    def _stop_reader(self) -> bool:
        """Stop the reader thread; False if it is still inside the device (a stalled ``read``)."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(MIC_JOIN_SECONDS)
            if self._reader.is_alive():
                return False
            self._reader = None
        self._stop.clear()
        return True

    def _read(self, stream, deliver) -> None:
        """The reader thread: reads to ``deliver`` (on the event loop), each with when it was read, until
        stopped or the device fails; while the microphone is relaxed, several reads at a time.

        It reads only what the device already holds and otherwise waits on the stop flag: a blocking read
        on a frozen sound server never returns, and then neither a stop nor the speaker's request to let
        go of PortAudio (:attr:`_PortAudioStream.stale`) would be heard."""
        pacer = RealTimePacer()
        chunk = FRAME_SAMPLES * 2
        warned = False
        batch: list[tuple[bytes, float]] = []
        while not self._stop.is_set():
            if self._device.stale:
                deliver(DevicesListedAnew("the speaker needs PortAudio to list the devices anew"))
                return
            try:
                available = self._calls.run(stream.get_read_available)
                if available == _PA_INPUT_OVERFLOWED:  # audio was lost (a read would have gone on): go on,
                    self._stop.wait(POLL_AT_LEAST)  # not at once: a device that stays overflowed is not spun on
                    continue
                if available < 0:  # PortAudio's error code: the device or its sound server went away
                    raise OSError(available, _PORTAUDIO_ERRORS.get(available, "PortAudio error"))
                if available < chunk:
                    self._stop.wait(max((chunk - available) / MIC_RATE, POLL_AT_LEAST))
                    continue
                data = self._calls.run(stream.read, chunk, exception_on_overflow=False)
            except OSError as err:
                deliver(err)
                return
            self._read_at = time.monotonic()
            batch.append((data, self._read_at))
            if not self.relaxed or len(batch) >= RELAXED_READS:
                deliver(batch)
                batch = []
            wait = pacer.delay(chunk / MIC_RATE)
            if wait:
                if not warned:
                    warned = True
                    _LOGGER.warning(
                        "The microphone %s delivers audio faster than real time (a device without a clock?); "
                        "reading it at real-time pace",
                        self._device.device,
                    )
                self._stop.wait(wait)

    async def chunks(self) -> AsyncIterator[list[Frame]]:
        if not self._stop_reader():
            if (hung := self._hung()) is not None:
                raise hung
            raise DeviceError("the microphone's reader is stuck in the device")
        if self._device.stream is None:
            self._device.open()
        loop = asyncio.get_running_loop()
        chunks: deque[tuple[bytes, float] | Exception] = deque()
        most = int(MIC_QUEUE_SECONDS * MIC_RATE / (FRAME_SAMPLES * 2))
        ready = asyncio.Event()
        dropped = 0
        dropped_logged_at = -DROP_LOG_SECONDS

        def put(reads: list[tuple[bytes, float]] | Exception) -> None:  # on the event loop
            nonlocal dropped
            for read in reads if isinstance(reads, list) else [reads]:
                if len(chunks) >= most:
                    chunks.popleft()
                    dropped += 1
                chunks.append(read)
            ready.set()

        def deliver(data: list[tuple[bytes, float]] | Exception) -> None:  # on the reader thread
            with contextlib.suppress(RuntimeError):  # the event loop is closed
                loop.call_soon_threadsafe(put, data)

        self._read_at = time.monotonic()
        self._reader = threading.Thread(target=self._read, args=(self._device.stream, deliver), name="mic", daemon=True)
        self._reader.start()
        framer = _Framer(MIC_FORMAT)
        last_at = time.monotonic()
        stalled = False

        async def watch() -> None:  # a timer a second, rather than a timeout on every chunk
            nonlocal stalled
            while True:
                await asyncio.sleep(1.0)
                if (hung := self._hung()) is not None:
                    put(hung)
                    return
                if not stalled and time.monotonic() - last_at >= MIC_STALL_SECONDS:
                    stalled = True
                    _LOGGER.warning(
                        "The microphone %s delivered no audio for %.0f s; waiting for it",
                        self._device.device, MIC_STALL_SECONDS,
                    )  # fmt: skip

        watchdog = asyncio.create_task(watch())
        try:
            while True:
                if not chunks:
                    ready.clear()
                    await ready.wait()
                last_at = time.monotonic()
                if stalled:
                    stalled = False
                    _LOGGER.info("The microphone %s delivers audio again", self._device.device)
                if dropped and last_at - dropped_logged_at >= DROP_LOG_SECONDS:
                    dropped_logged_at = last_at
                    _LOGGER.warning(
                        "Dropped %.1f s of microphone audio that came faster than the satellite took it",
                        dropped * FRAME_SAMPLES * 2 / MIC_RATE,
                    )
                    dropped = 0
                batch: list[Frame] = []
                while chunks:  # all that has come: one batch while relaxed, one read otherwise
                    data = chunks.popleft()
                    if isinstance(data, DeviceHung):
                        raise data  # the device is not let go: closing it under the reader would crash
                    if isinstance(data, Exception):
                        self._stop_reader()
                        self._device.release()
                        if isinstance(data, DevicesListedAnew):
                            raise data
                        raise DeviceError(f"the microphone stopped: {data}")
                    pcm, at = data
                    batch += [Frame(frame, at) for frame in framer.frames(pcm)]
                if batch:
                    yield batch
        finally:
            watchdog.cancel()

    async def close(self) -> None:
        if not await asyncio.to_thread(self._stop_reader):
            # Closing the stream under a thread that is inside it crashes; the process is ending anyway.
            _LOGGER.warning("The microphone is stuck in a read (%.0f s); leaving it open", MIC_JOIN_SECONDS)
            return
        quiet = self._read_at is not None and time.monotonic() - self._read_at > MIC_QUIET_AT_CLOSE
        if quiet and self._device.stream is not None:
            # Stopping a stream whose sound server has frozen waits for that server; the process is ending.
            _LOGGER.warning("The microphone has delivered nothing for %.2f s; leaving it open", MIC_QUIET_AT_CLOSE)
            self._device.abandon()
            return
        self._device.release()


class Speaker(ABC):
    """A sink for 16-bit mono PCM at ``rate``. ``write`` may block; ``paced`` says whether it does so in
    real time (a sound card) or the player must pace it (a file, a pipe)."""

    rate: int
    paced: bool = False
    reopenable: bool = False
    """Whether :meth:`reopen` can bring the device back after a failed ``write``."""
    description: str

    @abstractmethod
    def write(self, pcm: bytes) -> None: ...

    def reopen(self) -> None:
        """Open the device again after a failed ``write`` (only where ``reopenable``)."""
        raise DeviceError(f"the speaker {self.description} cannot be opened again")

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
    reopenable = True

    def __init__(self, device: str | None, rate: int) -> None:
        self.rate = rate
        self._device = _PortAudioStream(device, "output", rate, rate // 100 * 2)
        self._device.open()
        self.description = f"PortAudio output {self._device.device}"

    def write(self, pcm: bytes) -> None:
        if self._device.stream is None:
            raise DeviceError(f"the speaker {self._device.device} is not open")
        if self._device.stale:  # the microphone could not open its device: let PortAudio list them anew
            self._device.release()
            self._device.open()
        try:
            self._device.stream.write(pcm)
        except OSError:
            self._device.release()  # at once: PortAudio lists the devices anew only once no one holds it
            raise

    def reopen(self) -> None:
        self._device.release()
        self._device.open()

    def close(self) -> None:
        self._device.release()

"""The satellite as its own process, and the audio it hears and plays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

from satellite.audio_io import FRAME_BYTES, FRAME_SECONDS, MIC_FORMAT
from satellite.wake import LocalWakeDetector


def pcm16k(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        return wav.readframes(wav.getnframes())


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def detections(detector: LocalWakeDetector, pcm: bytes) -> list[tuple[float, str]]:
    found = []
    for index, frame in enumerate(frames(pcm)):
        name = detector.process(frame)
        if name is not None:
            found.append(((index + 1) * FRAME_SECONDS, name))
    return found


def run_satellite(tmp_path: Path, mic: Path, servers: dict[str, str], *extra: str, timeout: float = 180):
    out, metrics = tmp_path / "speaker.wav", tmp_path / "turns.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "satellite", "--mode", "direct", "--mic-file", str(mic), "--snd-file", str(out),
         "--metrics-file", str(metrics), "--no-follow-up",
         *[arg for kind, uri in servers.items() for arg in (f"--{kind}-uri", uri)], *extra],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    turns = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    return out, turns, result.stderr


def read_speaker(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32), wav.getframerate()


def loud(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    """Fraction of 20 ms blocks between ``start`` and ``end`` seconds with sound in them."""
    part = samples[int(start * rate) : int(end * rate)]
    block = rate // 50
    blocks = part[: len(part) // block * block].reshape(-1, block)
    return float((np.abs(blocks).max(axis=1) > 300).mean()) if len(blocks) else 0.0


def wait_for_turns(metrics: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"the satellite exited early: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.05)
    raise TimeoutError(f"no turn {count} within {timeout} s")


class LiveMic:
    """A microphone the test speaks into as the test goes: what :meth:`say` is given, else silence.

    The satellite reads it with ``--mic-command`` (``cat`` of a FIFO: raw 16 kHz 16-bit mono) at real
    time, so a test waits for each turn instead of leaving fixed gaps for the slowest machine.
    """

    ALIGN = 2.4  # seconds: a multiple of every step the wake word models take (10, 20, 30, 80 ms)

    def __init__(self, tmp_path: Path) -> None:
        self._fifo = tmp_path / "mic.fifo"
        os.mkfifo(self._fifo)
        self.args = ["--mic-command", f"cat {self._fifo}"]
        self._bytes_per_second = MIC_FORMAT.rate * MIC_FORMAT.width * MIC_FORMAT.channels
        self._pending = bytearray()
        self._written = 0  # bytes of the stream so far
        self._opened: float | None = None  # when the satellite opened it (time.monotonic())
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live mic", daemon=True)
        self._thread.start()

    def say(self, pcm: bytes) -> float:
        """Speak ``pcm`` after whatever is still being said; returns when it starts, in seconds from when the
        satellite opened the microphone.

        The wake word model reads the audio in fixed steps: where a clip falls among them moves the moment the
        command starts by some milliseconds, and tiny.en's words with it ("What is the capital and friends?"
        one run in two). So every clip starts where it would after a microphone file's 8 s of silence, give
        or take whole ``ALIGN`` steps: what is heard is the same from run to run.
        """
        with self._lock:
            align = int(self.ALIGN * self._bytes_per_second)
            position = self._written + len(self._pending)
            pad = (int(8.0 * self._bytes_per_second) - position) % align
            start = time.monotonic() - (self._opened or time.monotonic())
            start += (len(self._pending) + pad) / self._bytes_per_second
            self._pending += bytes(pad) + pcm
        return start

    def close(self) -> None:
        self._closed.set()
        with open(os.open(self._fifo, os.O_RDONLY | os.O_NONBLOCK), "rb"):  # frees a writer still waiting to open
            self._thread.join(10)

    def _run(self) -> None:
        chunk = FRAME_BYTES
        seconds = chunk / self._bytes_per_second
        try:
            with open(self._fifo, "wb", buffering=0) as out:  # waits until the satellite's cat opens it
                self._opened = due = time.monotonic()
                while not self._closed.is_set():
                    with self._lock:
                        pcm = bytes(self._pending[:chunk])
                        del self._pending[:chunk]
                        self._written += chunk
                    out.write(pcm + bytes(chunk - len(pcm)))  # waits while the satellite is not reading
                    # Never faster than real time, not even to catch up after a wait: audio that arrives in a
                    # burst is not heard as live speech.
                    due = max(due + seconds, time.monotonic())
                    time.sleep(max(0.0, due - time.monotonic()))
        except OSError:  # the satellite stopped reading
            pass

"""The satellite as its own process, and the audio it hears and plays."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

from satellite.audio_io import FRAME_BYTES, FRAME_SECONDS
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

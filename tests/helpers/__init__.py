"""Helpers the tests share (one place; no test module imports another): processes, peers, devices, clips."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

TESTS_DIR = Path(__file__).resolve().parents[1]
ROOT = TESTS_DIR.parent
DATA = TESTS_DIR / "data"
CLIPS_DIR = DATA / "clips"
SATELLITE_DATA = DATA / "satellite"


def clip_audio(name: str) -> np.ndarray:
    """A clip of tests/data/clips (16 kHz mono) as float32 samples."""
    with wave.open(str(CLIPS_DIR / name), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768

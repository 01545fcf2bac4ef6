"""PCM audio conversion: any Wyoming audio format to float32 mono at one rate.

Wyoming clients send raw PCM in the format their ``audio-start`` declares:
HA sends 16 kHz mono 16-bit, Piper/Kokoro-made corpora arrive at 22050 or
24000 Hz, microphones may be stereo or 32-bit. :class:`PcmToFloat` turns such
a stream, chunk by chunk, into float32 mono samples at the rate a model wants,
resampling with libsoxr (high quality, streaming, no look-ahead of more than a
few milliseconds).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

MIN_RATE = 4000
MAX_RATE = 192000
MAX_CHANNELS = 16


class UnsupportedAudio(ValueError):
    """The declared audio format cannot be converted."""


@dataclass(frozen=True)
class PcmFormat:
    """Raw PCM layout: samples per second, bytes per sample, interleaved channels."""

    rate: int
    width: int
    channels: int

    def check(self) -> None:
        """Raise :class:`UnsupportedAudio` with a readable reason if the format is unusable."""
        for name, value in (("rate", self.rate), ("width", self.width), ("channels", self.channels)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UnsupportedAudio(f"audio {name} must be a whole number, got {value!r}")
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise UnsupportedAudio(f"audio rate {self.rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
        if self.width not in (1, 2, 3, 4):
            raise UnsupportedAudio(f"audio width {self.width} bytes is not 1, 2, 3 or 4")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise UnsupportedAudio(f"audio channels {self.channels} is outside 1..{MAX_CHANNELS}")

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


def pcm_to_float(pcm: bytes, width: int) -> np.ndarray:
    """Decode interleaved little-endian PCM samples to float32 in [-1, 1)."""
    if width == 2:
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if width == 4:
        return (np.frombuffer(pcm, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    if width == 1:  # WAV's 8-bit PCM is unsigned
        return (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 3:
        raw = np.frombuffer(pcm, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float32) / float(1 << 23)
    raise UnsupportedAudio(f"audio width {width} bytes is not 1, 2, 3 or 4")


class PcmToFloat:
    """Streaming converter from one PCM format to float32 mono at ``target_rate``.

    Feed byte chunks of any size (a partial frame is kept for the next
    chunk); call :meth:`flush` at the end to get the resampler's tail.
    """

    def __init__(self, fmt: PcmFormat, target_rate: int) -> None:
        fmt.check()
        self.fmt = fmt
        self.target_rate = target_rate
        self._pending = b""
        self._resampler = (
            soxr.ResampleStream(fmt.rate, target_rate, 1, dtype="float32") if fmt.rate != target_rate else None
        )

    def convert(self, pcm: bytes) -> np.ndarray:
        data = self._pending + pcm if self._pending else pcm
        usable = len(data) - len(data) % self.fmt.frame_bytes
        self._pending = data[usable:]
        samples = pcm_to_float(data[:usable], self.fmt.width)
        if self.fmt.channels > 1:
            samples = samples.reshape(-1, self.fmt.channels).mean(axis=1, dtype=np.float32)
        if self._resampler is None:
            return samples
        return self._resampler.resample_chunk(samples, last=False)

    def flush(self) -> np.ndarray:
        self._pending = b""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Encode float samples in [-1, 1] as little-endian 16-bit PCM (clipped)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PcmToPcm16:
    """Streaming converter from one PCM format to 16-bit mono at ``target_rate`` (a pass-through when equal)."""

    def __init__(self, fmt: PcmFormat, target_rate: int) -> None:
        self._same = fmt == PcmFormat(target_rate, 2, 1)
        self._converter = None if self._same else PcmToFloat(fmt, target_rate)
        self._pending = b""

    def convert(self, pcm: bytes) -> bytes:
        if self._converter is None:
            data = self._pending + pcm if self._pending else pcm
            usable = len(data) - len(data) % 2
            self._pending = data[usable:]
            return data[:usable]
        return float_to_pcm16(self._converter.convert(pcm))

    def flush(self) -> bytes:
        if self._converter is None:
            self._pending = b""
            return b""
        return float_to_pcm16(self._converter.flush())


def write_wav(path: str | Path, pcm: bytes, rate: int = 16000) -> Path:
    """16-bit mono PCM as a WAV file (a satellite's microphone file, a test clip)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return Path(path)

"""The satellite's short sounds, made here from sine tones (no recordings): awake, done, error and timer."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from chatty_common.audio import PcmFormat, PcmToPcm16, float_to_pcm16

from .audio_io import DeviceError
from .player import Player

VOLUME = 0.3


def _tone(rate: int, frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms ramps: no clicks
    return (np.sin(2 * np.pi * frequency * t) * fade * VOLUME).astype(np.float32)


def _gap(rate: int, seconds: float) -> np.ndarray:
    return np.zeros(int(rate * seconds), dtype=np.float32)


def tones(name: str, rate: int) -> bytes:
    """A built-in sound as 16-bit mono PCM at ``rate``."""
    if name == "awake":  # rising: listening now
        parts = [_tone(rate, 880, 0.07), _gap(rate, 0.02), _tone(rate, 1320, 0.09)]
    elif name == "done":  # falling: got it
        parts = [_tone(rate, 1320, 0.07), _gap(rate, 0.02), _tone(rate, 880, 0.09)]
    elif name == "error":  # low double beep
        parts = [_tone(rate, 330, 0.12), _gap(rate, 0.06), _tone(rate, 330, 0.12)]
    elif name == "timer":  # three short rings
        parts = [p for _ in range(3) for p in (_tone(rate, 1047, 0.12), _gap(rate, 0.05), _tone(rate, 1319, 0.12),
                                               _gap(rate, 0.25))]  # fmt: skip
    else:
        raise KeyError(name)
    return float_to_pcm16(np.concatenate(parts))


def wav_sound(path: Path, rate: int) -> bytes:
    """A user's WAV file as 16-bit mono PCM at ``rate``."""
    try:
        with wave.open(str(path), "rb") as wav:
            fmt = PcmFormat(wav.getframerate(), wav.getsampwidth(), wav.getnchannels())
            pcm = wav.readframes(wav.getnframes())
    except (OSError, wave.Error, EOFError) as err:
        raise DeviceError(f"sound file {path}: not a readable WAV file ({err})") from None
    converter = PcmToPcm16(fmt, rate)
    return converter.convert(pcm) + converter.flush()


class Sounds:
    """The sounds in the speaker's format; a sound set to None is not played."""

    def __init__(self, rate: int, enabled: bool = True, files: dict[str, Path | None] | None = None) -> None:
        self.rate = rate
        self._pcm: dict[str, bytes | None] = {}
        for name in ("awake", "done", "error", "timer"):
            path = (files or {}).get(name)
            if not enabled:
                self._pcm[name] = None
            else:
                self._pcm[name] = wav_sound(path, rate) if path else tones(name, rate)

    def get(self, name: str) -> bytes | None:
        return self._pcm.get(name)

    def play(self, player: Player, name: str) -> None:
        """Queue a sound on the player (nothing if it is switched off)."""
        pcm = self._pcm.get(name)
        if pcm:
            player.queue(pcm, self.rate)

"""Speech spoken fresh by espeak-ng, and comparing what was heard with what was said."""

from __future__ import annotations

import re
import subprocess
import tempfile
import wave

import numpy as np
import soxr


def espeak_16k(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng (installed by the test command) in ``voice`` at ``speed`` words a minute,
    16 kHz float32."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as spoken:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", spoken.name, text], check=True)
        with wave.open(spoken.name, "rb") as wav:
            rate, pcm = wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return soxr.resample(pcm.astype(np.float32) / 32768, rate, 16000).astype(np.float32)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _spoken(word: str) -> list[str]:
    """A number under 100 as it is said ("21": "twenty one"); any other word as it is."""
    if not word.isdigit() or int(word) >= 100:
        return [word]
    number = int(word)
    if number < 20:
        return [_UNITS[number]]
    tens, units = divmod(number, 10)
    return [_TENS[tens - 2]] + ([_UNITS[units]] if units else [])


def spoken_words(text: str) -> list[str]:
    """:func:`words` with small numbers written out: Whisper writes "4" for a spoken "four"."""
    return [part for word in words(text) for part in _spoken(word)]


def word_accuracy(expected: str, heard: str) -> float:
    """1 - word error rate of ``heard`` against ``expected`` (may go below 0 with many insertions); a
    number counts the same in digits or in words."""
    reference, hypothesis = spoken_words(expected), spoken_words(heard)
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return 1 - row[-1] / max(1, len(reference))

"""Sounds without speech are heard as nothing after an initial prompt too (``--initial-prompt``)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import clip_audio
from helpers.speech import words

from wyoming_chatty_stt.transcriber import DecodeOptions, said_over_and_over

RATE = 16000
# A user's prompt of the requests they make: Whisper reads it as what was said before the speech.
REQUESTS = DecodeOptions(
    language="en",
    beam_size=1,
    initial_prompt="Lock the front door. Turn on the kitchen lights. What's the weather like today? "
    "Set a timer for ten minutes. Play some music.",
)


def pink_noise(size: int, rng: np.random.Generator, dbfs: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(size))
    noise = np.fft.irfft(spectrum / np.sqrt(np.arange(1, spectrum.size + 1)), size)
    return noise / np.sqrt(np.mean(noise**2)) * 10 ** (dbfs / 20)


def sound(seed: int, seconds: float | None = None) -> np.ndarray:
    """Something a microphone hears that is not speech, by ``seed``: a chord that swells and fades, a melody
    of plain notes, bursts of noise (steps, a door) or a rumble; over a faint hiss."""
    rng = np.random.default_rng(100 + seed)
    size = int(RATE * (seconds or rng.uniform(0.8, 3)))
    t = np.arange(size) / RATE
    kind = seed % 4
    if kind == 0:
        tone = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 900, 3))
        tone = tone * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 6) * t))
    elif kind == 1:
        notes = rng.uniform(200, 800, 8)
        tone = np.sin(2 * np.pi * notes[(t * 4).astype(int) % 8] * t)
    elif kind == 2:
        tone = rng.standard_normal(size) * (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0.7)
    else:
        tone = np.convolve(rng.standard_normal(size), np.ones(40) / 40, "same")
    tone = tone / (np.abs(tone).max() + 1e-9) * rng.uniform(0.03, 0.5)
    return (tone + pink_noise(size, rng, -50)).astype(np.float32)


def test_sounds_are_not_heard_as_words_after_a_prompt(tiny_transcriber):
    """Whisper's no-speech probability is lower after a prompt: without a second look, 6 of these 40 came out
    as words ("I'm not going to be able to do it.", "It's a little bit better.")."""
    heard = {seed: tiny_transcriber.transcribe(sound(seed), REQUESTS) for seed in range(40)}
    assert {seed: result.text for seed, result in heard.items() if result.text} == {}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_long_sound_is_not_heard_as_words_after_a_prompt(tiny_transcriber, seed):
    """Longer than one window: the full window's decode, with its own check."""
    assert tiny_transcriber.transcribe(sound(seed, 33.0), REQUESTS).text == ""


@pytest.mark.parametrize("clip", ["weather.wav", "kitchen.wav", "airport.wav", "music.wav", "store.wav"])
def test_speech_after_a_prompt_keeps_its_words(tiny_transcriber, clips, clip):
    """The second look for speech does not take words from real speech."""
    assert words(tiny_transcriber.transcribe(clip_audio(clip), REQUESTS).text) == words(clips[clip])


def test_a_phrase_said_over_and_over_is_a_loop_and_a_request_is_not():
    """Whisper loops on a sound ("T-T-T-T-T", tiny.en on one of the sounds above on one CPU) and on short commands,
    sure of its words and too short for gzip's compression ratio to tell: the fitted window's decode goes to the
    full window, which hears nothing in the sound and the command once."""
    assert said_over_and_over("T-T-T-T-T")
    assert said_over_and_over("La, la, la, la.")
    assert said_over_and_over("Turn on the bedroom lamp Turn on the bedroom lamp Turn on the bedroom lamp Turn on")
    assert said_over_and_over("Turn up the volume Turn up the volume")
    assert said_over_and_over("Lock all the doors. Lock all the doors. Lock all the doors")
    assert said_over_and_over("one two one two one two")
    assert not said_over_and_over("No, no, no.")  # said three times, a person may mean it
    assert not said_over_and_over("New York, New York")
    assert not said_over_and_over("Turn turn turn turn on the light.")
    assert not said_over_and_over("Turn on the, turn on the kitchen lights.")  # starting again, then going on
    assert not said_over_and_over("What is the capital of France?")

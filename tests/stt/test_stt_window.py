"""The encoder window fitted to the utterance: the same words as Whisper's 30 s window, and the fallback."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import clip_audio
from helpers.speech import espeak_16k, words

from wyoming_chatty_stt import transcriber
from wyoming_chatty_stt.transcriber import DecodeOptions, window_frames

SHORT_CLIPS = ["weather.wav", "kitchen.wav", "airport.wav", "music.wav", "store.wav"]
EN = DecodeOptions(language="en", beam_size=1)
DICTATION = (
    "Send a message to Margaret saying that the plumber is coming on Thursday morning between nine and eleven, "
    "that she should leave the side gate unlocked, and that the spare key is under the blue flower pot next to "
    "the shed. Also tell her the dog has already been fed, the washing machine is still broken, and we need more "
    "coffee, bread, apples, rice, and olive oil from the market before the weekend. Finally, remind her that her "
    "brother's birthday dinner starts at seven on Saturday at the Italian restaurant on Harbour Street, and that "
    "she promised to bring the cake."
)


def test_window_is_three_times_the_audio_at_least_ten_seconds_and_at_most_thirty():
    assert window_frames(250, 10.0) == 1000
    assert window_frames(580, 10.0) == 1800
    assert window_frames(950, 10.0) == 2900
    assert window_frames(1400, 10.0) == 3000
    assert window_frames(250, 30.0) == 3000


@pytest.mark.parametrize("clip", SHORT_CLIPS)
def test_short_question_is_decoded_in_a_short_window_with_the_right_words(tiny_transcriber, clips, clip):
    recognition = tiny_transcriber.transcribe(clip_audio(clip), EN)
    assert recognition.window < 20.0  # not the full 30 s
    assert words(recognition.text) == words(clips[clip])


def test_the_quick_decode_is_the_fitted_window_or_nothing(tiny_transcriber, clips):
    """Partial text uses the fitted window alone: the same words where it is sure, nothing where it is
    not (speech played backwards). The full decode of that is the fitted window's words, marked unsure:
    Whisper's fallback (30 s window, rising temperatures) took seconds and found no better words."""
    sure = tiny_transcriber.transcribe_if_quick(clip_audio("weather.wav"), EN)
    assert sure is not None and words(sure.text) == words(clips["weather.wav"]) and sure.window < 20.0
    assert sure.sure
    backwards = clip_audio("kitchen.wav")[::-1].copy()
    assert tiny_transcriber.transcribe_if_quick(backwards, EN) is None
    unsure = tiny_transcriber.transcribe(backwards, EN)
    assert unsure.window < 20.0 and not unsure.sure and unsure.text


def test_utterance_longer_than_ten_seconds_uses_the_full_window_and_keeps_every_word(tiny_transcriber, clips):
    gap = np.zeros(8000, dtype=np.float32)
    audio = np.concatenate([part for clip in SHORT_CLIPS for part in (clip_audio(clip), gap)])
    assert audio.size / 16000 > 10
    recognition = tiny_transcriber.transcribe(audio, EN)
    assert recognition.window == 30.0
    heard = words(recognition.text)
    for clip in SHORT_CLIPS:
        expected = words(clips[clip])
        assert any(heard[i : i + len(expected)] == expected for i in range(len(heard))), (clip, heard)


def test_noise_in_a_short_window_gives_no_words(tiny_transcriber):
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(3 * 16000) * 0.02).astype(np.float32)
    assert tiny_transcriber.transcribe(noise, EN).text == ""
    assert tiny_transcriber.transcribe(np.zeros(2 * 16000, dtype=np.float32), EN).text == ""


def test_a_long_command_with_the_longest_prompt_keeps_every_word(tiny_transcriber, monkeypatch):
    """The full window's decodes are bounded by the audio's length (a looping decode stops early);
    the bound must leave room for every word of a long dictation, with the longest prompt there is:
    the words are those of the same decode without the bound.

    Spoken fresh with espeak-ng, and no sentence said twice: repeated sentences make Whisper's
    compression check fail, and its random retries at higher temperatures would decide the test."""
    audio = espeak_16k(DICTATION)
    assert audio.size / 16000 > 32  # a full 30 s window, then the rest
    names = "Hallway, pantry, attic, porch, nursery, garage, study, cellar, landing, patio, den, loft"
    devices = "thermostat, dehumidifier, sprinkler, doorbell, chandelier, projector, radiator, treadmill"
    long_prompt = ", ".join(f"{room} {device}" for room in names.split(", ") for device in devices.split(", "))
    prompt = DecodeOptions(language="en", beam_size=1, initial_prompt=long_prompt)  # longer than Whisper keeps
    heard = words(tiny_transcriber.transcribe(audio, prompt).text)
    assert len(heard) >= 0.9 * len(words(DICTATION)), heard
    assert heard[-4:] == ["to", "bring", "the", "cake"], heard
    # The first window's last words ("... at seven on Saturday") are cut if its decode is bounded too
    # tightly; which words tiny.en hears there differs from one CPU to another, so the check is against
    # the decode with room for as many tokens as Whisper can write, not against the text that was spoken.
    monkeypatch.setattr(transcriber, "token_budget", lambda seconds: transcriber.MAX_NEW_TOKENS)
    assert heard == words(tiny_transcriber.transcribe(audio, prompt).text)

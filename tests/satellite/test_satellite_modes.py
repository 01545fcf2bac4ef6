"""Both satellite modes in-process, against scripted Wyoming peers and a recording speaker.

Fast checks of the turn logic (barge-in, follow-ups, a server or Home Assistant
going away mid-turn, audio that must be dropped) beside the real-process tests
(test_satellite_direct, test_satellite_ha, test_satellite_devices), which run
the same modes with real servers, models and devices. Microphone frames here
say outright whether they hold speech or the wake word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from helpers.scripted import (
    TTS_RATE,
    CollectedTurns,
    Peer,
    RecordingSpeaker,
    ScriptedServer,
    hear,
    llm_script,
    send_audio,
    spoken_text,
    stt_script,
    tone,
    tts_script,
    until,
)
from helpers.servers import free_port
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.satellite import RunSatellite
from wyoming.timer import TimerFinished, TimerStarted
from wyoming.tts import Synthesize

from chatty_common.audio import PcmFormat
from satellite import ha_pipeline
from satellite.answer_stop import AnswerStopper
from satellite.audio_io import FRAME_BYTES, Frame
from satellite.capture import Heard
from satellite.direct import CANT_REACH, DirectMode, DirectSettings
from satellite.ha import HaMode, sent_again
from satellite.ha_info import build_info
from satellite.player import Player
from satellite.services import Services
from satellite.sounds import Sounds
from satellite.speech import CommandRules
from satellite.wake import parse_wake_word

RULES = CommandRules(speech_timeout=1.0)


@pytest.fixture
async def speaker() -> AsyncIterator[RecordingSpeaker]:
    speaker = RecordingSpeaker()
    yield speaker


@pytest.fixture
async def player(speaker: RecordingSpeaker) -> AsyncIterator[Player]:
    player = Player(speaker)
    player.start()
    yield player
    await asyncio.to_thread(player.close)


def direct_mode(player: Player, stt: ScriptedServer, llm: ScriptedServer, tts: ScriptedServer, turns: CollectedTurns):
    services = Services({"stt": stt.uri, "llm": llm.uri, "tts": tts.uri}, {})
    sounds = Sounds(player.rate)
    return DirectMode(services, player, sounds, RULES, turns, DirectSettings(prepare_after=0.1))


# -- direct mode ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_first", [False, True], ids=["handled-then-stop", "stop-then-handled"])
async def test_direct_turn_is_answered_and_logged_once(player, speaker, stop_first):
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_script("What is the capital of France?")) as stt,
        ScriptedServer(llm_script("Paris is the capital.", stop_first=stop_first)) as llm,
        ScriptedServer(tts_script(0.4)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns)
        await hear(mode, wake=True, speech=0.6, silence=0.8)
        await until(lambda: mode.idle, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["answered"]
    [turn] = turns.turns
    assert turn.transcript == "What is the capital of France?" and turn.answer == "Paris is the capital."
    assert turn.conversation_id == "talk-1" and mode.conversation_id == "talk-1"
    assert llm.peers[0].texts("transcript") == ["What is the capital of France?"]
    # Asked during the pause (speculative), and committed to the conversation once the question was over.
    [question] = [e for e in llm.peers[0].received if e.type == "transcript"]
    assert question.data.get("chatty") == {"speculative": True}
    assert "chatty-commit" in [e.type for e in llm.peers[0].received]
    assert spoken_text(tts.peers[0]).strip() == "Paris is the capital."
    assert turn.first_played_at is not None and turn.extra["answer_seconds"] == pytest.approx(0.4, abs=0.01)


async def test_direct_barge_in_stops_the_answer_and_its_servers(player, speaker):
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_script("Tell me a story.", "Stop.")) as stt,
        ScriptedServer(llm_script("Once upon a time.")) as llm,
        ScriptedServer(tts_script(8.0, pace=0.2)) as tts,  # slower than it plays: still coming at the barge-in
    ):
        mode = direct_mode(player, stt, llm, tts, turns)
        await hear(mode, wake=True, speech=0.6, silence=0.8)
        await until(lambda: bool(tts.peers))
        asked = time.monotonic()
        await until(lambda: speaker.sound_seconds(since=asked) > 0.3, what="the story to play")
        await hear(mode, wake=True)  # the wake word while the story plays
        cut_at = time.monotonic()
        # The turn's connection to the TTS server is closed: the server stops working on the story.
        await asyncio.wait_for(tts.peers[0].closed.wait(), 5)
        await asyncio.sleep(0.3)
        assert speaker.sound_seconds(since=cut_at + 0.1) < 0.2  # only the awake tone: the story stopped
        assert mode.capturing  # and the new command is heard
        await hear(mode, speech=0.5, silence=0.8)
        await until(lambda: mode.idle, timeout=20, what="the second turn to end")
        await mode.close()
    assert turns.outcomes == ["interrupted", "answered"]
    assert turns.turns[0].first_played_at is not None  # it had started to play: logged, though cut off


async def test_direct_follow_up_nobody_answers(player, speaker):
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_script("Set a reminder.")) as stt,
        ScriptedServer(llm_script("For what time?")) as llm,
        ScriptedServer(tts_script(0.3)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns)
        await hear(mode, wake=True, speech=0.6, silence=0.8)
        await until(lambda: mode.capturing and turns.turns, what="the follow-up to be listened for")
        assert mode.turns.turn is not None and mode.turns.turn.follow_up
        quiet_from = time.monotonic() + 0.3  # after the awake tone
        await hear(mode, silence=1.2)  # nobody speaks: the speech timeout ends it
        await until(lambda: mode.idle, what="the follow-up to end")
        await asyncio.sleep(0.5)
        await mode.close()
    assert turns.outcomes == ["answered"]  # the unanswered follow-up is no turn of its own
    assert speaker.sound_seconds(since=quiet_from) == 0.0  # and no error tone
    assert len(stt.peers) == 2 and len(llm.peers) == 1


async def test_direct_llm_server_gone_mid_answer_is_said(player, speaker):
    async def hangs_up(peer):
        await peer.read("transcript")
        peer.writer.close()

    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_script("What time is it?")) as stt,
        ScriptedServer(hangs_up) as llm,
        ScriptedServer(tts_script(0.3)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns)
        await hear(mode, wake=True, speech=0.6, silence=0.8)
        await until(lambda: mode.idle, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["llm error"]
    assert turns.turns[0].error == "the server closed the connection before answering"
    assert [spoken_text(peer).strip() for peer in tts.peers][-1] == CANT_REACH


async def test_direct_answer_prepared_in_a_pause_is_dropped_when_speech_goes_on(player, speaker):
    turns = CollectedTurns()
    async with (
        ScriptedServer(stt_script("What is the", "What is the boiling point of water?")) as stt,
        ScriptedServer(llm_script("It is one hundred degrees.")) as llm,
        ScriptedServer(tts_script(0.5)) as tts,
    ):
        mode = direct_mode(player, stt, llm, tts, turns)
        await hear(mode, wake=True, speech=0.5, silence=0.4, pace=1.0)  # a hesitation: the answer is prepared
        await until(lambda: len(llm.peers) == 1, what="an answer prepared during the pause")
        await hear(mode, speech=0.5, silence=0.8)  # ... but the question goes on
        await until(lambda: mode.idle, what="the turn to end")
        await mode.close()
    assert turns.outcomes == ["answered"]
    assert turns.turns[0].transcript == "What is the boiling point of water?"
    assert [p.texts("transcript") for p in llm.peers] == [["What is the"], ["What is the boiling point of water?"]]
    # The dropped answer was never committed: the LLM server forgets it.
    assert "chatty-commit" not in [e.type for e in llm.peers[0].received]
    assert speaker.sound_seconds() == pytest.approx(0.18 + 0.5, abs=0.05)  # awake tone and one answer, not two


async def test_an_answer_taken_back_before_it_sounds_is_never_heard(player, speaker):
    """The player takes back an answer whose audio is queued but unheard (the speaker went on): none of it
    plays, nor anything added later; once an answer has begun to sound it cannot be taken back."""
    fmt = PcmFormat(TTS_RATE, 2, 1)
    start = time.monotonic()
    withdrawn = player.playback(fmt, held=True)
    withdrawn.add(tone(0.5))
    withdrawn.release()  # queued: the player thread has not had it yet if taken back at once
    assert withdrawn.take_back()
    withdrawn.add(tone(0.5))
    withdrawn.end()
    heard = player.playback(fmt)
    heard.add(tone(0.3))
    heard.end()
    await asyncio.wait_for(heard.sounded.wait(), 5)
    assert not heard.take_back()
    await asyncio.wait_for(heard.finished.wait(), 5)
    assert withdrawn.first_sound_at is None and not withdrawn.sounded.is_set()
    assert speaker.sound_seconds(start) == pytest.approx(0.3, abs=0.03)


async def test_the_player_counts_the_silences_heard_because_an_answers_audio_came_late(player, speaker):
    """Silence inside an answer because its next audio had not come is a wait the listener heard; a pause in
    the audio itself, and time before the first audio or before the end marker, are not."""
    fmt = PcmFormat(TTS_RATE, 2, 1)
    answer = player.playback(fmt)
    answer.add(tone(0.2) + bytes(int(TTS_RATE * 0.5) * 2) + tone(0.2))  # a pause that is part of the speech
    await asyncio.wait_for(answer.sounded.wait(), 5)
    await asyncio.sleep(0.9 + 0.4)  # what was sent has played; the next piece is 0.4 s late
    answer.add(tone(0.3))
    await asyncio.sleep(0.5)  # played, and the end comes late: not a wait
    answer.end()
    await asyncio.wait_for(answer.finished.wait(), 5)
    [wait] = answer.waits
    assert wait == pytest.approx(0.4, abs=0.1)
    whole = await player.play(tone(0.3), TTS_RATE)
    assert whole.waits == []


# -- Home Assistant mode -------------------------------------------------------------------------------


@pytest.fixture
async def ha(player) -> AsyncIterator[tuple[HaMode, AsyncClient, CollectedTurns]]:
    """The satellite in Home Assistant mode, and a connection playing Home Assistant's side."""
    async with ha_satellite(player) as satellite:
        yield satellite


@contextlib.asynccontextmanager
async def ha_satellite(
    player: Player, services: Services | None = None
) -> AsyncIterator[tuple[HaMode, AsyncClient, CollectedTurns]]:
    turns = CollectedTurns()
    uri = f"tcp://127.0.0.1:{free_port()}"
    info = build_info("kitchen", None, [parse_wake_word("okay_nabu")], player.rate)
    mode = HaMode(
        uri=uri, zeroconf_name=None, zeroconf_host=None, info=info, player=player, sounds=Sounds(player.rate),
        rules=RULES, turn_log=turns, services=services,
    )  # fmt: skip
    await mode.start()
    client = AsyncClient.from_uri(uri)
    await client.connect()
    await client.write_event(RunSatellite().event())
    await until(lambda: mode.running, what="run-satellite to arrive")
    try:
        yield mode, client, turns
    finally:
        await client.disconnect()
        await mode.close()


async def command_asked(mode: HaMode, client: AsyncClient, transcript: str) -> None:
    """A command after the wake word, its end sent to Home Assistant, and Home Assistant's ``transcript`` of it."""
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await client.write_event(Transcript(text=transcript).event())


async def events_until(client: AsyncClient, last: str, timeout: float = 10.0) -> list[str]:
    """Event types from the satellite up to ``last``."""
    types: list[str] = []
    async with asyncio.timeout(timeout):
        while not types or types[-1] != last:
            event = await client.read_event()
            assert event is not None, "the satellite closed the connection"
            types.append(event.type)
    return types


async def answer_as_ha(client: AsyncClient, text: str, seconds: float, pace: float = 0.0) -> None:
    """What Home Assistant sends after the command: the transcript, the answer's text, then its audio."""
    await client.write_event(Transcript(text="question").event())
    await client.write_event(Synthesize(text=text).event())
    await send_audio(client.write_event, tone(seconds, 22050), rate=22050, pace=pace)


async def answer_heard(mode: HaMode, client: AsyncClient, text: str, seconds: float) -> None:
    """Answer the command as Home Assistant does, and wait until it has been played and the turn is over."""
    await answer_as_ha(client, text, seconds)
    await events_until(client, "played")
    await until(lambda: mode.idle, what="the turn to end")


async def test_ha_turn_is_streamed_answered_and_logged_once(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    types = await events_until(client, "audio-stop")
    assert types[:3] == ["detection", "run-pipeline", "audio-start"] and "audio-chunk" in types
    await answer_as_ha(client, "Paris is the capital.", 0.4)
    assert (await events_until(client, "played"))[-1] == "played"
    await until(lambda: mode.idle, what="the turn to end")
    assert turns.outcomes == ["answered"]
    assert turns.turns[0].answer == "Paris is the capital." and turns.turns[0].first_played_at is not None
    assert turns.turns[0].record()["waits_s"] == []  # all of it came at once: the listener never waited


async def test_ha_a_streamed_answer_has_no_tts_time_of_its_own(ha, speaker):
    """Home Assistant streams a long answer's audio while its agent writes it, and sends the text
    (``synthesize``) only at the end: the satellite cannot see the TTS's own time then, and says none
    (it said a negative one)."""
    mode, client, turns = ha
    await command_asked(mode, client, "Tell me a story.")
    await client.write_event(AudioStart(22050, 2, 1).event())
    await client.write_event(AudioChunk(22050, 2, 1, tone(0.4, 22050)).event())
    await asyncio.sleep(0.2)
    await client.write_event(Synthesize(text="Once upon a time.").event())
    await client.write_event(AudioStop().event())
    await events_until(client, "played")
    await until(lambda: mode.idle, what="the turn to end")
    [turn] = turns.turns
    record = turn.record()
    assert turn.outcome.value == "answered" and record["QUESTION-TO-RESPONSE_MS"] is not None, record
    assert record["TTS-TTFA_MS"] is None, record


async def test_ha_barge_in_drops_the_rest_of_the_answer(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    long_answer = asyncio.create_task(answer_as_ha(client, "Once upon a time.", 6.0, pace=0.05))
    await speaker.wait_for_sound(timeout=5)  # (the awake tone)
    await until(lambda: mode._incoming is not None, what="the answer to arrive")
    await asyncio.sleep(0.5)
    await hear(mode, wake=True)  # the wake word while the answer still arrives
    cut_at = time.monotonic()
    types = await events_until(client, "run-pipeline")
    assert "played" not in types
    await long_answer  # the rest of it comes, and is dropped
    await asyncio.sleep(0.5)
    assert speaker.sound_seconds(since=cut_at + 0.3) == 0.0
    await hear(mode, speech=0.5, silence=0.8)
    await events_until(client, "audio-stop")
    await answer_heard(mode, client, "The end.", 0.3)  # the new turn's answer plays
    assert turns.outcomes == ["interrupted", "answered"]
    assert "waits_s" in turns.turns[0].record()  # also of an answer cut off


async def test_ha_a_run_that_goes_quiet_without_speech_is_over(ha, monkeypatch):
    """Home Assistant says nothing at the end of a run without speech (its "never mind"): once the run has
    sent nothing for a while, its turn ends ("no answer") and the next command goes at once. A command
    started while that run may still be going is held, and goes when the run goes quiet."""
    monkeypatch.setattr(ha_pipeline, "QUIET_RUN_OVER", 0.6)
    mode, client, turns = ha
    await command_asked(mode, client, "Never mind.")
    await until(lambda: mode.idle, what="the turn to end", timeout=5)
    assert turns.outcomes == ["no answer"] and turns.turns[0].transcript == "Never mind."
    await hear(mode, wake=True, speech=0.6, silence=0.8)  # sent at once: nothing held
    assert (await events_until(client, "audio-stop"))[:3] == ["detection", "run-pipeline", "audio-start"]
    await client.write_event(Transcript(text="Never mind.").event())
    await hear(mode, wake=True)  # while the last run may still be going: held
    assert mode.gate.holding
    held_at = time.monotonic()
    assert (await events_until(client, "run-pipeline"))[-2:] == ["detection", "run-pipeline"]
    assert time.monotonic() - held_at > 0.3, "the command was not held"
    await hear(mode, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await answer_heard(mode, client, "The end.", 0.3)
    assert turns.outcomes == ["no answer", "interrupted", "answered"]


async def test_ha_answer_fully_arrived_then_cut_off_is_logged(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await answer_as_ha(client, "A long answer.", 4.0)  # all of it arrives at once; it plays for 4 s
    await speaker.wait_for_sound()
    await asyncio.sleep(0.5)
    await hear(mode, wake=True)
    await events_until(client, "run-pipeline")
    assert turns.outcomes == ["interrupted"]  # written once, at the barge-in
    await hear(mode, silence=1.2)  # nobody speaks after the wake word: Home Assistant reports it
    await events_until(client, "audio-stop")
    await client.write_event(Error(text="No text recognized", code="stt-no-text-recognized").event())
    await until(lambda: mode.idle, what="the turn to end")
    assert turns.outcomes == ["interrupted", "error"] and turns.turns[1].error == "No text recognized"


async def test_ha_follow_up_nobody_answers_is_quiet(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await answer_as_ha(client, "For what time?", 0.3)
    await events_until(client, "played")
    types = await events_until(client, "audio-start")  # listening again, without the wake word
    assert types[-2:] == ["run-pipeline", "audio-start"] and "detection" not in types
    quiet_from = time.monotonic() + 0.3
    await hear(mode, silence=1.2)
    await events_until(client, "audio-stop")
    await client.write_event(Error(text="No text recognized", code="stt-no-text-recognized").event())
    await until(lambda: mode.idle, what="the follow-up to end")
    await asyncio.sleep(0.3)
    assert turns.outcomes == ["answered"]
    assert speaker.sound_seconds(since=quiet_from) == 0.0  # no error tone


async def test_ha_disconnect_while_waiting_for_the_answer(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await asyncio.sleep(0.5)  # the done tone has played
    error_from = time.monotonic()
    await client.disconnect()
    await until(lambda: mode.idle, what="the turn to end")
    assert turns.outcomes == ["home assistant disconnected"]
    await until(lambda: speaker.sound_seconds(since=error_from) > 0.2, what="the error tone")


async def test_ha_answer_cut_off_by_silencing_a_timer_is_not_taken_as_heard(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await answer_as_ha(client, "Would you like to hear more?", 4.0)  # it would ask back, if heard in full
    await client.write_event(TimerStarted(id="t1", total_seconds=1, name="tea").event())
    await client.write_event(TimerFinished(id="t1").event())
    await until(lambda: mode.timers.ringing, what="the timer to ring")
    await speaker.wait_for_sound()
    await asyncio.sleep(0.5)
    await hear(mode, wake=True)  # silences the ringing, and the answer with it
    await until(lambda: mode.idle, what="the turn to end")
    assert turns.outcomes == ["interrupted"]
    assert not mode.capturing  # no follow-up: the question was not heard
    with pytest.raises(TimeoutError):
        await events_until(client, "played", timeout=1.0)


async def test_ha_answer_whose_rest_never_comes_does_not_block_the_next(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await client.write_event(Synthesize(text="Once upon a time.").event())
    await client.write_event(AudioStart(22050, 2, 1).event())
    await client.write_event(AudioChunk(22050, 2, 1, tone(0.5, 22050)).event())  # ... and no audio-stop ever
    await until(lambda: mode._incoming is not None, what="the answer to arrive")
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await answer_heard(mode, client, "The end.", 0.3)
    assert turns.outcomes == ["interrupted", "answered"]


async def test_ha_old_answer_arriving_while_the_next_command_is_heard_is_dropped(ha, speaker):
    mode, client, turns = ha
    await hear(mode, wake=True, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    await client.write_event(Synthesize(text="Once upon a time.").event())
    await hear(mode, wake=True)  # before any of that answer's audio (Home Assistant 2025.4 synthesizes it all first)
    heard_from = time.monotonic() + 0.3  # after the awake tone
    # That run is over once its audio starts: only then does the next command go (see the next test).
    await send_audio(client.write_event, tone(1.0, 22050), rate=22050)  # the old pipeline's audio: dropped
    await events_until(client, "run-pipeline")
    await hear(mode, speech=0.6, silence=0.8)
    await events_until(client, "audio-stop")
    assert speaker.sound_seconds(since=heard_from) < 0.25  # the done tone only
    await answer_heard(mode, client, "The end.", 0.3)
    assert turns.outcomes == ["interrupted", "answered"]
    assert turns.turns[1].answer == "The end."


async def test_ha_a_command_waits_while_home_assistant_still_writes_the_last_answer(ha, speaker):
    """Home Assistant 2026.2 streams an answer while its agent still writes it. A run started then gets no
    audio (the cancelled run's end shuts its microphone input: components/wyoming/assist_satellite.py),
    so a barge-in's command waits until that run is over (its ``synthesize``, once the answer is all
    written), then goes with all the audio heard meanwhile, and is answered."""
    mode, client, turns = ha
    await command_asked(mode, client, "Tell me a story.")
    await client.write_event(AudioStart(22050, 2, 1).event())  # the answer streams as it is written
    for _ in range(10):
        await client.write_event(AudioChunk(22050, 2, 1, tone(0.1, 22050)).event())
    await until(lambda: mode._incoming is not None, what="the answer to arrive")
    await hear(mode, wake=True)  # a barge-in while the answer is still being written
    await hear(mode, speech=0.6, silence=0.8, pace=1.0)  # the command, heard in full meanwhile
    with pytest.raises(TimeoutError):
        await events_until(client, "run-pipeline", timeout=0.5)  # nothing goes to Home Assistant yet
    await client.write_event(Synthesize(text="Once upon a time, a dragon.").event())  # all written: the run ends
    await client.write_event(AudioStop().event())
    async with asyncio.timeout(5):
        events = []
        while not events or events[-1].type != "audio-stop":
            event = await client.read_event()
            assert event is not None
            events.append(event)
    types = [event.type for event in events]
    assert types[:3] == ["detection", "run-pipeline", "audio-start"], types
    heard = sum(len(event.payload or b"") for event in events if event.type == "audio-chunk") / 32000
    assert heard >= 0.6 + 0.4, heard  # the whole command: its speech and the start of its silence
    await answer_heard(mode, client, "The end.", 0.3)
    assert turns.outcomes == ["interrupted", "answered"]
    assert turns.turns[1].answer == "The end."


async def stops_answers(peer: Peer) -> None:
    """Chatty's LLM server, as far as the satellite asks it anything in Home Assistant mode: stop an answer."""
    await peer.read("chatty-stop")
    await peer.write(Event("chatty-stopped", {"stopped": 1}))


async def stop_asked(server: ScriptedServer) -> dict:
    """What the satellite asked the LLM server to stop (it asks once)."""
    await until(lambda: any(p.received for p in server.peers), what="the stop request")
    [stop] = [event for peer in server.peers for event in peer.received]
    assert stop.type == "chatty-stop"
    return stop.data


async def test_ha_a_barge_in_has_chatty_stop_writing_the_answer_home_assistant_waits_for(player):
    """The same barge-in with Chatty's LLM server known: the satellite asks it to stop writing the answer
    to the run's question (so that the run ends, instead of the command waiting for the whole story); a
    barge-in once the run is over asks nothing."""

    async with ScriptedServer(stops_answers) as server:
        services = Services({"llm": server.uri}, {})
        async with ha_satellite(player, services) as (mode, client, turns):
            await command_asked(mode, client, "Tell me a story.")
            await client.write_event(AudioStart(22050, 2, 1).event())  # streamed while it is written
            await client.write_event(AudioChunk(22050, 2, 1, tone(0.5, 22050)).event())
            await until(lambda: mode._incoming is not None, what="the answer to arrive")
            await hear(mode, wake=True)  # the barge-in: the command is held, the story is stopped
            assert await stop_asked(server) == {"question": "Tell me a story.", "forget": False}  # (it was heard)
            await hear(mode, speech=0.6, silence=0.8, pace=1.0)
            await client.write_event(Synthesize(text="Once upon a time.").event())  # the agent ended it
            await client.write_event(AudioStop().event())
            types = await events_until(client, "audio-stop")
            assert types[:3] == ["detection", "run-pipeline", "audio-start"], types
            await answer_heard(mode, client, "The end.", 0.3)
            await hear(mode, wake=True, speech=0.6, silence=0.8)  # the run is over: nothing to stop
            await events_until(client, "audio-stop")
            assert turns.outcomes == ["interrupted", "answered"]
        assert len(server.peers) == 1


async def test_ha_a_barge_in_before_home_assistant_said_the_question_stops_its_answer_once_it_does(player):
    """A barge-in that comes before the last run's transcript: what to stop is known only when that
    transcript arrives (while the new command is held), and it is stopped then."""

    async with ScriptedServer(stops_answers) as server:
        services = Services({"llm": server.uri}, {})
        async with ha_satellite(player, services) as (mode, client, turns):
            await hear(mode, wake=True, speech=0.6, silence=0.8)
            await events_until(client, "audio-stop")
            await hear(mode, wake=True)  # Home Assistant has not said what it heard yet: the command is held
            await client.write_event(Transcript(text="Tell me a story.").event())
            assert await stop_asked(server) == {"question": "Tell me a story.", "forget": False}  # (it was heard)
            await hear(mode, speech=0.6, silence=0.8, pace=1.0)
            await client.write_event(Synthesize(text="Once upon a time.").event())  # the agent ended it
            await client.write_event(AudioStart(22050, 2, 1).event())
            await client.write_event(AudioStop().event())
            types = await events_until(client, "audio-stop")
            assert types[:3] == ["detection", "run-pipeline", "audio-start"], types
            await answer_heard(mode, client, "The end.", 0.3)
            assert turns.outcomes == ["interrupted", "answered"]
            assert turns.turns[1].answer == "The end."


def writes_a_while(asked: list[dict]) -> Callable[[Peer], Awaitable[None]]:
    """Chatty's LLM server asked whether it writes an answer (``chatty-first-text``, the request kept in
    ``asked``): it does the first time, and no longer after that."""
    replies = [True]

    async def script(peer: Peer) -> None:
        request = await peer.read("chatty-first-text")
        asked.append(request.data)
        await peer.write(Event("chatty-begun", {"begun": False, "asked": replies.pop(0) if replies else False}))

    return script


@contextlib.asynccontextmanager
async def ha_with_writing_llm(
    player: Player, asked: list[dict]
) -> AsyncIterator[tuple[HaMode, AsyncClient, CollectedTurns]]:
    """The satellite in Home Assistant mode, knowing Chatty's LLM server, which writes an answer the first time
    it is asked (:func:`writes_a_while`)."""
    async with (
        ScriptedServer(writes_a_while(asked)) as server,
        ha_satellite(player, Services({"llm": server.uri}, {})) as satellite,
    ):
        yield satellite


async def test_ha_a_quiet_run_whose_answer_chatty_still_writes_is_not_over(player, monkeypatch):
    """Home Assistant 2025.4 sends nothing until the whole answer is written: a run quiet for a while whose
    answer Chatty's LLM server says it is still writing goes on (its turn waits), and is over once the
    server no longer writes one."""
    monkeypatch.setattr(ha_pipeline, "QUIET_RUN_OVER", 0.5)
    asked: list[dict] = []
    async with ha_with_writing_llm(player, asked) as (mode, client, turns):
        await command_asked(mode, client, "Tell me a story.")
        await until(lambda: len(asked) == 1, what="the first question to the LLM server", timeout=5)
        assert not mode.idle  # still written: the turn waits for its answer
        await until(lambda: mode.idle, what="the turn to end", timeout=5)
        assert len(asked) == 2 and asked[0]["question"] == "Tell me a story.", asked
        assert turns.outcomes == ["no answer"]


async def test_ha_a_never_mind_run_is_over_soon_when_the_agent_is_chattys(player, monkeypatch):
    """Home Assistant answers its own "never mind" without speech, and says nothing at the run's end. With
    Chatty's LLM server known, such a run is over once it has been quiet a moment and the server writes no
    answer to it (Chatty's integration may still be dropping one begun at the pause): its turn ends, and a
    command started meanwhile goes then, not after the long quiet (it was held up to 20 s). Other requests
    wait that long."""
    monkeypatch.setattr(ha_pipeline, "SPEECHLESS_RUN_OVER", 0.4)
    asked: list[dict] = []
    async with ha_with_writing_llm(player, asked) as (mode, client, turns):
        await command_asked(mode, client, "Never mind.")
        await until(lambda: mode.idle, what="the turn to end", timeout=5)
        assert turns.outcomes == ["no answer"]
        assert [request["question"] for request in asked] == ["Never mind.", "Never mind."]  # then not written

        await command_asked(mode, client, "Never mind.")
        await until(lambda: mode.turns.turn is not None and mode.turns.turn.transcript, what="the transcript")
        await hear(mode, wake=True)  # the speaker asks at once: held while the run may be going
        assert mode.gate.holding
        assert (await events_until(client, "run-pipeline", timeout=5))[-2:] == ["detection", "run-pipeline"]

        await hear(mode, speech=0.6, silence=0.8)
        await events_until(client, "audio-stop")
        await client.write_event(Transcript(text="Play some jazz.").event())  # answered by someone, later
        await until(lambda: mode.turns.turn is not None and mode.turns.turn.transcript, what="the transcript")
        await hear(mode, wake=True)
        await asyncio.sleep(1.5)
        assert mode.gate.holding  # the long quiet decides


@pytest.mark.parametrize(("language", "speechless"), [("de-DE", True), (None, False)])
async def test_ha_never_mind_is_known_in_the_pipelines_language(player, monkeypatch, language, speechless):
    """Home Assistant's "never mind" in German is "Vergiss es": a run of it is over soon when the pipeline speaks
    German (Home Assistant says so in the run's ``transcribe``); in English it is a request like any other."""
    monkeypatch.setattr(ha_pipeline, "SPEECHLESS_RUN_OVER", 0.3)
    asked: list[dict] = []
    async with ha_with_writing_llm(player, asked) as (mode, client, turns):
        await hear(mode, wake=True, speech=0.6, silence=0.8)
        await events_until(client, "audio-stop")
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(Transcript(text="Vergiss es.").event())
        await asyncio.sleep(1.5)
        assert mode.idle is speechless and turns.outcomes == (["no answer"] if speechless else [])


def _frames(pattern: str) -> list[Heard]:
    """10 ms frames: "s" speech, "." silence."""
    return [
        Heard(Frame(bytes([i % 256]) * FRAME_BYTES, 0.0), None, 1.0 if c == "s" else 0.0) for i, c in enumerate(pattern)
    ]


def test_a_command_sent_again_keeps_its_pauses_shorter_than_home_assistant_ends_commands_at():
    """A command sent again at once (its speaker went on after an early end): Home Assistant's detector counts
    the audio's time, so a pause is kept up to 0.4 s after speech and 0.2 s before it (the word's start)."""
    heard = _frames("." * 50 + "s" * 30 + "." * 120 + "s" * 10)  # 0.5 s, 0.3 s speech, a 1.2 s pause, speech
    kept = sent_again(heard, threshold=0.5)
    pattern = "".join("s" if h.speech else "." for h in kept)
    assert pattern == "." * 20 + "s" * 30 + "." * 40 + "." * 20 + "s" * 10
    assert [h.frame.pcm for h in kept[:20]] == [h.frame.pcm for h in heard[30:50]]  # the frames just before speech
    assert sent_again(_frames("s" * 10 + "." * 50 + "s" * 10), 0.5) == _frames("s" * 10 + "." * 50 + "s" * 10)


async def test_ha_an_early_end_is_final_unless_the_answer_it_started_can_be_stopped():
    """Going on after an early end in Home Assistant mode needs the early run stopped at once (else the whole
    command would wait for that run's answer to be written): only with Chatty's LLM server known."""
    assert not AnswerStopper(Services({}, {})).can_stop()  # no address and no zeroconf name: nothing to stop with
    assert AnswerStopper(Services({"llm": "tcp://127.0.0.1:9"}, {})).can_stop()


async def test_ha_a_barge_in_without_an_llm_server_known_asks_nobody_to_stop(caplog):
    """With another agent than Chatty's (no LLM server known), a barge-in does not wait for a look-up that can
    only time out, nor log that it could not stop the answer."""
    stopper = AnswerStopper(Services({}, {}))
    with caplog.at_level(logging.DEBUG, logger="satellite.answer_stop"):
        stopper.stop("What is the weather?")
        await asyncio.sleep(0.1)
    assert "not stopped" in caplog.text
    assert "Could not ask" not in caplog.text
    await stopper.close()

"""Chatty in a real Home Assistant: cores 2025.4.4 and 2026.2.3, each in its own virtualenv (``scripts/setup_ha.sh``).

Home Assistant runs headless on 127.0.0.1 (``tests/helpers/home_assistant.py``), our servers are added through
its config-flow REST API as Wyoming integrations, Assist pipelines run over its websocket API, and the
satellite joins it as a Wyoming satellite. What Home Assistant does here is Home Assistant's own code.
Every test runs against each release in ``HA_VERSIONS`` (ids ``ha2025.4.4``, ``ha2026.2.3``), the slowest
one against the newest only.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
from helpers import SATELLITE_DATA, home_assistant
from helpers.home_assistant import HA_VERSIONS, HomeAssistant
from helpers.satellite_io import LiveMic
from helpers.servers import write_config
from helpers.speech import word_accuracy, words

from wyoming_chatty_stt.client import stream_wav

pytestmark = pytest.mark.timeout(600)

NABU_CAPITAL = SATELLITE_DATA / "nabu_capital.wav"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module", params=HA_VERSIONS, ids=[f"ha{version}" for version in HA_VERSIONS])
async def ha(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    version = request.param
    home_assistant.setup_home_assistant(version)  # idempotent: returns at once when the virtualenv is there
    async with HomeAssistant(tmp_path_factory.mktemp(f"home-assistant-{version}"), version=version) as instance:
        yield instance


@pytest.fixture(scope="module")
async def chatty(ha, stt_server, tts_server, llm_server) -> dict:
    """Our three servers added to Home Assistant, and a pipeline that uses them."""
    entries = {name: await ha.add_wyoming("127.0.0.1", server.port) for name, server in
               (("stt", stt_server), ("tts", tts_server), ("llm", llm_server))}  # fmt: skip
    pipeline_id = await ha.create_pipeline(
        "Chatty",
        stt_engine=entries["stt"].entity("stt"),
        tts_engine=entries["tts"].entity("tts"),
        conversation_engine=entries["llm"].entity("conversation"),
        language="en",
        preferred=True,
    )
    return {"entries": entries, "pipeline_id": pipeline_id}


def _pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        return wav.readframes(wav.getnframes())


def _question() -> bytes:
    """ "What is the capital of France?" (espeak-ng, 16 kHz), cut from the satellite's clip after its wake word."""
    import numpy as np

    pcm = np.frombuffer(_pcm(NABU_CAPITAL), dtype=np.int16)
    loud = np.abs(pcm.astype(np.int32)) > 300
    frames = loud[: loud.size // 160 * 160].reshape(-1, 160).any(axis=1)  # 10 ms frames with sound
    first_sound = int(np.argmax(frames))
    quiet = 0
    for index in range(first_sound, frames.size):  # the pause after "Okay Nabu."
        quiet = 0 if frames[index] else quiet + 1
        if quiet >= 40:
            return pcm[(index + 1) * 160 :].tobytes()
    raise AssertionError("no pause after the wake word in the clip")


def _llm_records(llm_dir: Path) -> list[dict]:
    path = llm_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_home_assistant_adds_our_servers_as_wyoming_integrations(ha, chatty):
    entries = chatty["entries"]
    assert all(entry.state == "loaded" for entry in entries.values())
    assert entries["stt"].entities("stt") == ["stt.chatty_whisper"]
    assert entries["tts"].entities("tts") == ["tts.chatty_kokoro"]
    assert entries["llm"].entities("conversation") == ["conversation.chatty_llm"]
    # Home Assistant offers them for English, from the languages our servers' info lists.
    stt_engines = await ha.ws_call("stt/engine/list", language="en")
    assert "stt.chatty_whisper" in {p["engine_id"] for p in stt_engines["providers"] if p["supported_languages"]}
    agents = await ha.ws_call("conversation/agent/list", language="en")
    assert "conversation.chatty_llm" in {a["id"] for a in agents["agents"] if a["supported_languages"]}


async def test_an_assist_pipeline_hears_answers_and_speaks_with_our_services(ha, chatty, stt_server, llm_dir, tmp_path):
    before = len(_llm_records(llm_dir))
    run = await ha.run_pipeline(_question(), pipeline_id=chatty["pipeline_id"], trailing_silence=1.0)
    run.raise_for_error()
    assert run.types[:2] == ["run-start", "stt-start"] and run.types[-1] == "run-end"
    assert words(run.transcript) == words(QUESTION)
    # The answer is our LLM's: its server logged the turn with the transcript Home Assistant sent it.
    assert "paris" in run.answer.lower()
    records = _llm_records(llm_dir)[before:]
    assert len(records) == 1 and records[0]["outcome"] == "handled"
    # The TTS audio Home Assistant serves is real speech of that answer.
    audio = await ha.fetch(run.tts_url)
    wav = home_assistant.decode_audio(audio, tmp_path / "answer.wav")
    heard = await stream_wav(stt_server.uri, wav, realtime=False)
    assert word_accuracy(run.answer, heard.transcript) >= 0.6, (run.answer, heard.transcript)


async def test_a_text_question_reaches_our_agent_through_home_assistant(ha, chatty, llm_dir):
    run = await ha.run_pipeline(
        start_stage="intent", end_stage="intent", text=QUESTION,
        pipeline_id=chatty["pipeline_id"],
    )  # fmt: skip
    run.raise_for_error()
    assert "paris" in run.answer.lower()


async def test_a_second_turn_within_five_minutes_continues_the_conversation(ha, chatty, llm_dir, request):
    if ha.version == "2025.4.4":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="Home Assistant 2025.4.4 pins wyoming 1.5.4, whose Transcript.event() drops the context, so "
                "our LLM server never receives Home Assistant's conversation id and every turn starts afresh; later "
                "Home Assistant releases (wyoming >= 1.7) send it. strict: this test reports when that changes.",
            )
        )
    # Our test model (SmolLM2-135M, temperature 0) says "My name is Emily" when asked afresh, and with
    # "Please remember my name." added to the first turn it does too, history or not; after just this first
    # turn it answers with the name, so "ada" in the second answer shows the history was used.
    first = await ha.run_pipeline(
        start_stage="intent", end_stage="intent", text="My name is Ada.",
        pipeline_id=chatty["pipeline_id"],
    )  # fmt: skip
    first.raise_for_error()
    second = await ha.run_pipeline(
        start_stage="intent", end_stage="intent", text="What is my name?",
        pipeline_id=chatty["pipeline_id"], conversation_id=first.conversation_id,
    )  # fmt: skip
    second.raise_for_error()
    records = _llm_records(llm_dir)[-2:]
    assert records[0]["conversation_id"] == records[1]["conversation_id"] == first.conversation_id
    assert "ada" in second.answer.lower()


async def test_home_assistant_runs_a_spoken_turn_through_our_satellite(ha, chatty, stt_server, tmp_path):
    mic = LiveMic(tmp_path)
    satellite = home_assistant.HaSatellite(tmp_path, mic, "--stt-uri", stt_server.uri)
    try:
        entity = await satellite.join(ha)
        mic.say(bytes(32000) + _pcm(NABU_CAPITAL))
        await satellite.wait_for_turns(1, timeout=60)
        await ha.wait_for_state(entity, "idle", timeout=30)
    finally:
        satellite.stop()
        mic.close()
    [turn] = satellite.turns()
    assert turn["mode"] == "ha" and turn["outcome"] == "answered", turn
    assert words(turn["transcript"]) == words(QUESTION)
    assert turn["QUESTION-TO-RESPONSE_MS"] > 0 and turn["answer"]
    # Home Assistant ran our pipeline for it, and what the satellite played is that answer, spoken.
    run = [r for r in await ha.pipeline_runs(chatty["pipeline_id"]) if r.transcript == turn["transcript"]][-1]
    assert run.answer == turn["answer"]
    spoken = home_assistant.last_sound(satellite.speaker, tmp_path / "answer.wav")
    heard = await stream_wav(stt_server.uri, spoken, realtime=False)
    assert word_accuracy(turn["answer"], heard.transcript or "") >= 0.6, (turn["answer"], heard.transcript)


async def test_our_llm_server_restarted_during_a_conversation_through_the_satellite(
    ha, chatty, stt_server, start_server, llm_dir, tmp_path
):
    """Home Assistant mode, three questions; our LLM server dies after the first and is started again
    after the second. The second answer is Home Assistant's spoken error, the third is ours again: no
    restart of the satellite or reload of Home Assistant's integration needed.

    On the newest release only: it takes a minute, and on both releases test_ha_chatty restarts our
    server mid-conversation too (without the satellite)."""
    if ha.version != HA_VERSIONS[-1]:
        pytest.skip(f"runs on the newest Home Assistant ({HA_VERSIONS[-1]}) only, to keep the suite short")
    config = str(write_config(llm_dir, {"opts": {"llama_cpp": {"temperature": 0, "max_tokens": 30}}}))
    llm = start_server("wyoming_chatty_llm", "--data-dir", str(llm_dir), "--config", config)
    entry = await ha.add_wyoming("127.0.0.1", llm.port)
    entries = chatty["entries"]
    await ha.create_pipeline(
        "Chatty (restarted LLM)",
        stt_engine=entries["stt"].entity("stt"),
        tts_engine=entries["tts"].entity("tts"),
        conversation_engine=entry.entity("conversation"),
        language="en",
        preferred=True,  # the satellite runs the preferred pipeline
    )
    question = bytes(32000) + _pcm(NABU_CAPITAL)  # each after a second's quiet
    mic = LiveMic(tmp_path)
    satellite = home_assistant.HaSatellite(tmp_path, mic, "--stt-uri", stt_server.uri)
    try:
        await satellite.join(ha)
        mic.say(question)
        await satellite.wait_for_turns(1, timeout=60)
        llm.kill()  # as a crash would
        mic.say(question)  # the spoken error is long (~11 s): the next question once it has been heard
        await satellite.wait_for_turns(2, timeout=60)
        start_server("wyoming_chatty_llm", "--data-dir", str(llm_dir), "--config", config, port=llm.port)
        mic.say(question)
        turns = await satellite.wait_for_turns(3, timeout=60)
    finally:
        satellite.stop()
        mic.close()
    assert [t["outcome"] for t in turns] == ["answered"] * 3, turns
    assert all(words(t["transcript"]) == words(QUESTION) for t in turns), turns
    first, down, back = (t["answer"] for t in turns)
    assert "paris" in first.lower() and "paris" in back.lower(), (first, back)
    assert down.startswith("Error communicating with service"), down  # Home Assistant's words, spoken


def test_home_assistant_zeroconf_cannot_be_kept_on_loopback_here():
    pytest.skip(
        "Home Assistant (2025.4.4 and 2026.2.3) cannot discover our servers by zeroconf on loopback only: its zeroconf "
        "integration (components/zeroconf/__init__.py, _async_get_zc_args) drops every loopback address from "
        "the enabled adapters, so with only 'lo' enabled it listens on nothing, and with the default adapter "
        "it would send mDNS out of eth0, which the tests must not. Our zeroconf adverts are tested with a "
        "python-zeroconf browser bound to 127.0.0.1 instead (test_stt_cli, test_tts_cli, test_llm_cli, "
        "test_satellite_cli)."
    )

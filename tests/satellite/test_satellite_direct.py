"""The satellite in direct mode against the real STT, LLM and TTS servers, from a WAV-file microphone.

The speaker is a WAV file that records on the satellite's clock (silence while
idle), so its timeline lines up with the microphone file's: what was played
when can be checked against what was said when.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import DATA, SATELLITE_DATA, TESTS_DIR
from helpers.satellite_io import LiveMic, detections, loud, pcm16k, read_speaker, run_satellite, wait_for_turns
from helpers.servers import free_port, write_config
from helpers.speech import word_accuracy, words

from chatty_common.audio import write_wav
from satellite.wake import LocalWakeDetector, parse_wake_word
from wyoming_chatty_stt.client import stream_wav


@pytest.fixture(scope="module")
def servers(stt_server, llm_server, tts_server) -> dict[str, str]:
    return {"stt": stt_server.uri, "llm": llm_server.uri, "tts": tts_server.uri}


async def test_a_spoken_turn_from_wake_word_to_played_answer(tmp_path, servers, stt_server):
    out, turns, log = run_satellite(tmp_path, SATELLITE_DATA / "nabu_capital.wav", servers)
    [turn] = turns
    assert turn["outcome"] == "answered" and turn["mode"] == "direct" and turn["wake_word"] == "okay_nabu"
    assert words(turn["transcript"]) == words("What is the capital of France?")
    assert "paris" in turn["answer"].lower()
    for figure in (
        "QUESTION-TO-RESPONSE_MS",
        "VOICE-TO-VOICE_MS",
        "STT_MS",
        "LLM-TTF_MS",
        "LLM-TOTAL_MS",
        "TTS-TTFA_MS",
    ):
        assert isinstance(turn[figure], float) and turn[figure] >= 0, figure
    # The question's first pause was judged the end (the words end a request) ...
    assert [pause["done"] for pause in turn["pauses"]] == [True], turn["pauses"]
    # ... so voice-to-voice holds only the short pause and its judging, not the long silence (1.5 s) ...
    assert turn["VOICE-TO-VOICE_MS"] - turn["QUESTION-TO-RESPONSE_MS"] < 1200
    # ... during which the answer was already prepared, to be played the moment the end was certain.
    assert turn["prepared_during_pause"] is True
    assert "Turn answered: QUESTION-TO-RESPONSE_MS=" in log
    # The answer as played, heard back by the STT server, says what the LLM wrote.
    heard = await stream_wav(stt_server.uri, out, realtime=False)
    assert word_accuracy(turn["answer"], heard.transcript) >= 0.8, (turn["answer"], heard.transcript)
    samples, rate = read_speaker(out)
    assert len(samples) / rate == pytest.approx(len(pcm16k(SATELLITE_DATA / "nabu_capital.wav")) / 32000, abs=6.0)
    # The turn's moments, from the last voiced frame, in order; and the report draws them.
    stages = turn["stages_ms"]
    assert 0 < stages["end_of_speech"] <= stages["first_played"] and stages["llm_sent"] <= stages["llm_first"]
    report = subprocess.run(
        [sys.executable, "-m", "chatty", "report", str(tmp_path / "turns.jsonl"), "-o", str(tmp_path / "l.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0 and (tmp_path / "l.png").stat().st_size > 20_000, report.stderr


async def test_barge_in_stops_the_answer_within_200_ms_and_takes_the_new_question(tmp_path, servers):
    # "Okay Nabu. Tell me a long story about a dragon." 4 s "Okay Nabu. What is ...", with 9 s more of
    # silence in the gap: the barge-in comes about 19.5 s in, and the story (60 tokens, about 15 s of speech)
    # plays from about 7.4 s in on a fast machine; so it may start up to 12 s later on a busy one and still
    # be playing (with 12 s more, a fast machine's story had ended 0.1 s before the barge-in).
    recorded = pcm16k(SATELLITE_DATA / "nabu_bargein.wav")
    gap = 32000 * 7  # bytes: seven seconds in, the middle of the silence
    mic = write_wav(tmp_path / "mic.wav", recorded[:gap] + bytes(32000 * 9) + recorded[gap:])
    found = detections(LocalWakeDetector([parse_wake_word("okay_nabu")]), pcm16k(mic))
    assert len(found) == 2
    second_wake = found[1][0]  # where the detector fires in the audio: the satellite runs the same model
    out, turns, log = run_satellite(tmp_path, mic, servers, "--no-sounds")
    assert [t["outcome"] for t in turns] == ["interrupted", "answered"], log
    assert "story" in words(turns[0]["transcript"]) and "paris" in turns[1]["answer"].lower()
    assert "Barge-in" in log
    assert turns[0]["QUESTION-TO-RESPONSE_MS"] > 0, turns[0]  # the story's first sound is logged though it was cut
    samples, rate = read_speaker(out)
    # The story was playing (on a busy machine its pieces may come slower than they play: gaps) ...
    assert loud(samples, rate, second_wake - 4.0, second_wake) > 0.2, (turns, log)
    assert loud(samples, rate, second_wake + 0.2, second_wake + 1.2) == 0.0  # ... and stopped within 200 ms


async def test_speech_after_a_pause_is_part_of_the_question(tmp_path, servers):
    """An answer prepared during a pause is dropped when the speaker goes on; the whole command is heard."""
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")[: int(2.4 * 32000)]  # silence, "Okay Nabu.", silence
    pause = pcm16k(DATA / "clips" / "pause.wav")  # "turn off the lights", 1 s silence, "in the bedroom please"
    mic = write_wav(tmp_path / "mic.wav", nabu + pause + bytes(32000 * 3))
    # The silence rule: "turn off the lights" is a whole command, which the smart end of turn ends at
    # the pause (test_end_of_turn covers hesitations it hears out).
    _, turns, log = run_satellite(tmp_path, mic, servers, "--end-of-turn", "silence", "--end-silence", "1.6")
    [turn] = turns
    assert turn["outcome"] == "answered", log
    assert {"lights", "bedroom"} <= set(words(turn["transcript"]))
    assert "prepared_during_pause" in turn  # prepared at the final pause (after the first was dropped)


async def test_a_speaker_who_goes_on_after_a_whole_command_is_heard_to_the_end(tmp_path, servers):
    """The smart end of turn ends "turn off the lights" at its pause (a whole command); the speaker goes on a
    second later ("in the bedroom please"). Until the answer's first sound, that is part of the command:
    the answer to the first words is dropped unheard and the whole command is answered, in one turn."""
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")[: int(2.4 * 32000)]  # silence, "Okay Nabu.", silence
    clip = pcm16k(DATA / "clips" / "pause.wav")  # "turn off the lights", 1.4 s silence, "in the bedroom please"
    pause = clip[: 2 * int(1.7 * 16000)] + clip[2 * int(1.95 * 16000) :]  # a pause of 1.15 s
    mic = write_wav(tmp_path / "mic.wav", nabu + pause + bytes(32000 * 4))
    samples = np.frombuffer(pause, dtype="<i2")
    level = np.abs(samples[: len(samples) // 160 * 160].reshape(-1, 160)).max(axis=1)  # per 10 ms
    voiced = np.flatnonzero(level > 1000)
    gap = int(np.argmax(np.diff(voiced)))  # the pause: the longest run of unvoiced frames
    went_on_at = 2.4 + voiced[gap + 1] / 100  # seconds into the microphone (and speaker) file
    # The long silence is longer than its default 1.5 s, so that the pause's verdict, at 0.6-1.3 s on these
    # machines, comes before the speaker goes on, and the going on is not too close to the long silence.
    out, turns, log = run_satellite(tmp_path, mic, servers, "--no-sounds", "--unfinished-silence", "2.5")
    [turn] = turns
    assert turn["outcome"] == "answered", log
    samples, rate = read_speaker(out)
    loud_at = np.flatnonzero(np.abs(samples) > 300)
    first_sound = loud_at[0] / rate if len(loud_at) else None
    ended_at_pause = turn["pauses"][0].get("ended", False)
    if ended_at_pause and first_sound is not None and first_sound < went_on_at + 0.3:
        # A fast machine: the answer sounded before the speaker had gone on for 0.1 s (what it takes to tell
        # speech from a noise); the command was over by then.
        assert "went_on" not in turn, turn
        return
    assert {"lights", "bedroom"} <= set(words(turn["transcript"])), (turn, log)
    if ended_at_pause:  # it went on, and said so
        [went_on] = turn["went_on"]
        assert {"lights"} <= set(words(went_on["heard"])) and "bedroom" not in words(went_on["heard"]), went_on
        assert "The speaker went on after the end of the command" in log


async def test_nothing_said_after_the_wake_word_and_speech_without_it(tmp_path, servers):
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    only_wake = nabu[: int(2.2 * 32000)] + bytes(32000 * 7)  # "Okay Nabu." and then silence
    weather = pcm16k(DATA / "clips" / "weather.wav")  # a question without the wake word
    mic = write_wav(tmp_path / "mic.wav", bytes(16000) + weather + only_wake)
    _, turns, _ = run_satellite(tmp_path, mic, servers, "--speech-timeout", "3")
    assert [t["outcome"] for t in turns] == ["nothing said"]
    assert turns[0]["transcript"] is None


@pytest.mark.parametrize("kind", ["stt", "llm", "tts"])
async def test_a_server_restarted_mid_session_needs_no_satellite_restart(
    tmp_path, servers, start_server, llm_dir, stt_data_dir, tts_data_dir, kind
):
    """One of the three servers dies after the first answer and is started again after the second turn."""
    if kind == "llm":
        config = str(write_config(llm_dir, {"opts": {"llama_cpp": {"temperature": 0, "max_tokens": 60}}}))
        argv = ["wyoming_chatty_llm", "--data-dir", str(llm_dir), "--config", config]
    else:
        argv = [f"wyoming_chatty_{kind}", "--data-dir", str(stt_data_dir if kind == "stt" else tts_data_dir)]
    server = start_server(*argv)
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    pause = bytes(32000)  # a second's quiet before each question
    metrics = tmp_path / "turns.jsonl"
    uris = {**servers, kind: server.uri}
    mic = LiveMic(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "satellite", "--mode", "direct", *mic.args, "--snd-file",
         str(tmp_path / "out.wav"), "--metrics-file", str(metrics), "--no-follow-up",
         *[arg for name, uri in uris.items() for arg in (f"--{name}-uri", uri)]],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        mic.say(pause + nabu)
        wait_for_turns(metrics, 1, process)
        server.kill()  # the server goes away after the first answer, as a crash would ...
        second_start = mic.say(pause + nabu) + 1.0
        wait_for_turns(metrics, 2, process)
        start_server(*argv, port=server.port)  # ... and comes back
        mic.say(pause + nabu)  # and the next question is asked at once
        wait_for_turns(metrics, 3, process)
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        mic.close()
    turns = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [t["outcome"] for t in turns] == ["answered", f"{kind} unavailable", "answered"], stderr
    assert "capital" in words(turns[2]["transcript"]) and turns[2]["answer"]
    assert process.returncode == 0, stderr
    if kind != "tts":
        # The failed turn told the user: the TTS server spoke the error during or after the second question.
        samples, rate = read_speaker(tmp_path / "out.wav")
        window = len(nabu) / 32000 + 5.0
        assert loud(samples, rate, second_start, second_start + window) * window > 1.5  # seconds of speech
    else:  # no TTS to say it with: the error tone
        assert "tts unavailable" in stderr


async def test_a_remote_wake_word_service_that_comes_up_late(tmp_path, servers):
    """--wake-uri: the satellite keeps trying a wake word service that is not up yet, then uses it."""
    port = free_port()
    nabu = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    mic = write_wav(tmp_path / "mic.wav", bytes(32000 * 8) + nabu)  # time for the service to start
    metrics = tmp_path / "turns.jsonl"
    log = tmp_path / "satellite.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "satellite", "--mode", "direct", "--mic-file", str(mic), "--snd-file",
             str(tmp_path / "out.wav"), "--metrics-file", str(metrics), "--no-follow-up",
             "--wake-uri", f"tcp://127.0.0.1:{port}",
             *[arg for kind, uri in servers.items() for arg in (f"--{kind}-uri", uri)]],
            stderr=log_file,
        )  # fmt: skip
    wake = None
    try:
        # Start the wake word service once the satellite has found it missing (start-up is slow on a busy machine).
        deadline = time.monotonic() + 60
        while "trying again" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        wake = subprocess.Popen([sys.executable, str(TESTS_DIR / "helpers" / "wake_server.py"), "--port", str(port)])
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if wake is not None:
            wake.terminate()
            wake.wait(10)
    stderr = log.read_text()
    assert process.returncode == 0, stderr
    assert "trying again" in stderr and f"Connected to the wake word service at tcp://127.0.0.1:{port}" in stderr
    [turn] = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert turn["outcome"] == "answered" and turn["wake_word"] == "okay_nabu"

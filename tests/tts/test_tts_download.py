"""Kokoro voices on demand: ``--voice af_heart`` and Home Assistant asking for a voice fetch it from Hugging Face once.

The hub is not reachable from the test machines, so the server downloads from a local stand-in that
speaks the hub's file endpoints (``tests/helpers/hf_hub.py``; ``HF_ENDPOINT`` points there) and
serves voice files made for the test: the bundled Japanese voices' tensors, saved the way Kokoro's
repository saves its voices, under the names of English voices. What is checked is what a user
notices: the voice speaks (transcribed back), it is listed as installed once fetched, a second start
needs no network, and every kind of failed download is a clear error that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from helpers.servers import free_port
from helpers.speech import word_accuracy
from helpers.voice_files import bundled_voices, voice_file

from chatty_common.health_check import describe
from wyoming_chatty_stt.client import stream_wav
from wyoming_chatty_tts.client import SpeechResult, speak

REPO = "hexgrad/Kokoro-82M"  # the hub fixture (tests/conftest.py) serves af_heart and bf_emma from it
ONNX_REPO = "onnx-community/Kokoro-82M-v1.0-ONNX"
SENTENCE = "Please turn off the lights in the kitchen."


async def heard(stt_server, result: SpeechResult, tmp_path: Path) -> str:
    path = tmp_path / "speech.wav"
    result.write_wav(str(path))
    return (await stream_wav(stt_server.uri, path, realtime=False)).transcript or ""


def listed(info) -> dict[str, tuple[bool, list[str]]]:
    return {voice.name: (voice.installed, voice.languages) for voice in info.tts[0].voices}


async def test_voice_af_heart_is_fetched_once_then_used_without_a_network(start_tts, hub, stt_server, tmp_path):
    server = start_tts("--voice", "af_heart")
    assert hub.downloads == ["voices/af_heart.pt"]
    assert "Fetching voice af_heart" in server.log()
    result = await speak(server.uri, SENTENCE)
    assert result.error is None
    assert word_accuracy(SENTENCE, await heard(stt_server, result, tmp_path)) >= 0.8
    voices = listed(await describe(server.uri))
    assert voices["af_heart"] == (True, ["en", "en_US"])
    assert voices["jf_alpha"] == (True, ["en", "en_US"])  # the bundled voices as before
    assert voices["bf_emma"] == (False, ["en", "en_GB"])  # can be fetched: listed, not installed
    assert voices["ff_siwis"] == (False, ["fr", "fr_FR"])
    server.stop()

    again = start_tts("--voice", "af_heart", online=False)  # HF_HUB_OFFLINE: the data folder has it
    result = await speak(again.uri, SENTENCE)
    assert result.error is None and result.seconds() > 1.0
    voices = listed(await describe(again.uri))
    assert voices["af_heart"][0] is True and "bf_emma" not in voices  # offline: nothing to fetch is offered
    assert hub.downloads == ["voices/af_heart.pt"]


async def test_a_voice_asked_for_by_a_client_is_fetched_once_however_many_ask(start_tts, hub, stt_server, tmp_path):
    server = start_tts()
    assert listed(await describe(server.uri))["bf_emma"][0] is False
    results = await asyncio.gather(
        speak(server.uri, SENTENCE, voice="bf_emma"),
        speak(server.uri, [SENTENCE], voice="bf_emma", streaming=True),
        speak(server.uri, SENTENCE, voice="bf_emma:0.5+af_heart:0.5"),
    )
    assert [result.error for result in results] == [None, None, None]
    assert sorted(hub.downloads) == ["voices/af_heart.pt", "voices/bf_emma.pt"]
    assert word_accuracy(SENTENCE, await heard(stt_server, results[0], tmp_path)) >= 0.8
    assert listed(await describe(server.uri))["bf_emma"] == (True, ["en", "en_GB"])


async def test_failed_downloads_are_clear_errors_and_leave_nothing_behind(start_tts, hub, tmp_path):
    voices = bundled_voices()
    hub.add(REPO, "voices/am_adam.pt", voice_file(voices["jf_nezumi"], tmp_path), corrupt=True)
    hub.add(REPO, "voices/am_echo.pt", voice_file(voices["jf_tebukuro"], tmp_path), cut_after=4096)
    hub.add(REPO, "voices/am_eric.pt", voice_file(voices["jf_gongitsune"], tmp_path), status=500)
    hub.add(REPO, "voices/am_fenrir.pt", voice_file(voices["jf_alpha"], tmp_path), status=503, failures=1)
    server = start_tts()

    wrong = await speak(server.uri, SENTENCE, voice="am_adam")
    assert wrong.error_code == "voice-download-failed" and "does not match its hash" in wrong.error
    cut = await speak(server.uri, SENTENCE, voice="am_echo")
    assert cut.error_code == "voice-download-failed" and "am_echo" in cut.error
    failing = await speak(server.uri, SENTENCE, voice="am_eric")
    assert failing.error_code == "voice-download-failed" and "500" in failing.error
    # The client waits: the hub is asked again a second later, not five more times over 23 s.
    assert hub.asked["voices/am_eric.pt"] == 2
    blip = await speak(server.uri, SENTENCE, voice="am_fenrir")  # a server error once: asked again, it serves
    assert blip.error is None and blip.seconds() > 1.0, blip.error
    missing = await speak(server.uri, SENTENCE, voice="am_onyx")  # not on this hub
    assert missing.error_code == "voice-download-failed" and "404" in missing.error
    unknown = await speak(server.uri, SENTENCE, voice="af_nobody")
    assert unknown.error_code == "unknown-voice"
    assert "unknown voice 'af_nobody'" in unknown.error and "jf_alpha" in unknown.error and "bf_emma" in unknown.error

    voices_now = listed(await describe(server.uri))
    assert [voices_now[name][0] for name in ("am_adam", "am_echo", "am_eric")] == [False, False, False]
    assert (await speak(server.uri, SENTENCE)).error is None  # the server goes on serving
    # Nothing half-written is used: once the hub serves the files whole, they download and speak.
    hub.files[(REPO, "voices/am_adam.pt")].corrupt = False
    hub.files[(REPO, "voices/am_echo.pt")].cut_after = None
    for name in ("am_adam", "am_echo"):
        result = await speak(server.uri, SENTENCE, voice=name)
        assert result.error is None and result.seconds() > 1.0, result.error


async def test_without_a_network_a_missing_voice_says_it_needs_a_download(start_tts, hub):
    server = start_tts(online=False)
    result = await speak(server.uri, SENTENCE, voice="af_heart")
    assert result.error_code == "voice-not-downloaded"
    assert "'af_heart' is not on this machine and needs a download" in result.error
    assert hub.downloads == []
    # Online, but nothing answers at the hub's address: the client hears so at once, not after
    # huggingface_hub's five retries (23 s).
    unreachable = start_tts(endpoint=f"http://127.0.0.1:{free_port()}")
    asked = time.monotonic()
    result = await speak(unreachable.uri, SENTENCE, voice="bf_emma")
    assert time.monotonic() - asked < 15.0
    assert result.error_code == "voice-not-downloaded"
    assert "voice bf_emma needs a download from Hugging Face" in result.error and "cannot be reached" in result.error


async def test_model_int8_is_fetched_once_rewritten_for_speed_and_then_used_offline(
    start_server, tts_server, tts_data_dir, hub, stt_server, tmp_path
):
    """``--model int8`` fetches Kokoro's int8 ONNX export (here the bundled int8 model's bytes stand in for
    it) and the speed rewrite applies to it as to the bundled one; a broken download stops the server."""
    hub.add(ONNX_REPO, "onnx/model_quantized.onnx", (tts_data_dir / "kokoro" / "kokoro-v1.0.int8.onnx").read_bytes())
    hub.add(ONNX_REPO, "onnx/model_fp16.onnx", b"not a model" * 1000, corrupt=True)
    data = tmp_path / "data"

    def start(*args: str, online: bool = True, ready: bool = True):
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0" if online else "1"}
        return start_server("wyoming_chatty_tts", "--data-dir", str(data), *args, env=env, ready=ready)

    server = start("--model", "int8", "--graph", "optimized")
    assert hub.downloads == ["onnx/model_quantized.onnx"]
    assert "Fetched model int8" in server.log() and "Optimized model ready" in server.log()
    result = await speak(server.uri, SENTENCE)
    assert word_accuracy(SENTENCE, await heard(stt_server, result, tmp_path)) >= 0.8
    server.stop()
    again = start("--model", "int8", "--graph", "optimized", online=False)
    assert (await speak(again.uri, SENTENCE)).seconds() > 1.0
    assert hub.downloads == ["onnx/model_quantized.onnx"] and "Rewriting" not in again.log()
    again.stop()

    broken = start("--model", "fp16", ready=False)
    assert broken.process.wait(120) != 0
    assert "model fp16 does not match its hash" in broken.log() and "Traceback" not in broken.log()
    offline = start("--model", "fp32", online=False, ready=False)
    assert offline.process.wait(120) != 0
    assert "model fp32 is not on this machine and needs a download" in offline.log()


def test_a_default_voice_that_cannot_be_fetched_stops_the_server_with_the_reason(start_tts, hub):
    hub.files[(REPO, "voices/af_heart.pt")].corrupt = True
    server = start_tts("--voice", "af_heart", ready=False)
    assert server.process.wait(120) != 0
    log = server.log()
    assert "does not match its hash" in log and "Traceback" not in log

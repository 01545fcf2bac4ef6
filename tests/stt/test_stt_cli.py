"""The STT server's command line, health check, zeroconf advertisement and second bundled model."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import CLIPS_DIR
from helpers.servers import find_advertised, free_port
from helpers.speech import words

from chatty_common.health_check import describe
from wyoming_chatty_stt.client import stream_wav


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )


def test_help_lists_the_documented_flags():
    result = _run("wyoming_chatty_stt", "--help")
    assert result.returncode == 0
    for flag in (
        "--uri", "--model", "--language", "--beam-size", "--compute-type", "--device", "--cpu-threads",
        "--initial-prompt", "--data-dir", "--zeroconf", "--zeroconf-host", "--debug", "--log-format",
        "--max-seconds", "--workers",
    ):  # fmt: skip
        assert flag in result.stdout


def test_a_folder_that_is_not_a_model_is_a_clear_cli_error(tmp_path):
    result = _run("wyoming_chatty_stt", "--model", str(tmp_path), "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "is not a CTranslate2 Whisper model folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_that_cannot_be_downloaded_offline_is_a_clear_cli_error(tmp_path):
    result = _run("wyoming_chatty_stt", "--model", "small", "--local-files-only", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "could not load model 'small'" in result.stderr
    assert "--model tiny.en" in result.stderr


def test_unsupported_language_and_bad_uri_are_cli_errors(tmp_path):
    result = _run("wyoming_chatty_stt", "--language", "de", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "--language 'de' is not supported by tiny.en" in result.stderr
    result = _run("wyoming_chatty_stt", "--uri", "http://127.0.0.1:1234")
    assert result.returncode == 2
    assert "use tcp://HOST:PORT" in result.stderr
    result = _run("wyoming_chatty_stt", "--uri", "unix:///tmp/x.sock", "--zeroconf")
    assert result.returncode == 2
    assert "--zeroconf needs a tcp:// --uri" in result.stderr


def test_health_check_exit_codes(stt_server):
    healthy = _run("wyoming_chatty_stt.health_check", "--uri", stt_server.uri)
    assert healthy.returncode == 0, healthy.stderr
    assert "healthy" in healthy.stdout
    nobody = _run("wyoming_chatty_stt.health_check", "--uri", f"tcp://127.0.0.1:{free_port()}", "--timeout", "2")
    assert nobody.returncode == 1
    assert "unhealthy" in nobody.stderr


async def test_zeroconf_advertises_the_server_on_loopback(start_server, tmp_path):
    server = start_server(
        "wyoming_chatty_stt", "--data-dir", str(tmp_path), "--zeroconf", "--zeroconf-host", "127.0.0.1"
    )
    service = await find_advertised("chatty-stt", server.port)
    # "chatty-stt-2" and so on when another Chatty on this machine holds the name
    assert re.fullmatch(r"chatty-stt(-\d+)?", service.name) and service.host == "127.0.0.1"
    info = await describe(service.uri)
    assert info.asr[0].supports_transcript_streaming


async def test_bundled_multilingual_base_model(start_server, clips, tmp_path):
    server = start_server("wyoming_chatty_stt", "--model", "base", "--data-dir", str(tmp_path))
    assert (tmp_path / "models" / "whisper-base-bundled" / "model.bin").stat().st_size == 145_217_532
    info = await describe(server.uri)
    model = info.asr[0].models[0]
    assert model.name == "base"
    assert {"en", "de", "fr", "es"} <= set(model.languages)
    result = await stream_wav(server.uri, CLIPS_DIR / "kitchen.wav", language="en", realtime=False)
    assert words(result.transcript) == words(clips["kitchen.wav"])

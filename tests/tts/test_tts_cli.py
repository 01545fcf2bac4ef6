"""The TTS server's command line errors, health check and zeroconf advertisement."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers.servers import find_advertised, free_port

from chatty_common.health_check import describe


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def test_help_lists_the_documented_flags():
    result = _run("wyoming_chatty_tts", "--help")
    assert result.returncode == 0
    for flag in (
        "--uri", "--voice", "--voices", "--voices-dir", "--model", "--graph", "--data-dir", "--speed",
        "--threads", "--device", "--zeroconf", "--zeroconf-host", "--debug", "--log-format",
    ):  # fmt: skip
        assert flag in result.stdout


def _fails(*args: str) -> str:
    result = _run("wyoming_chatty_tts", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_bad_model_voice_and_folder_are_clear_cli_errors(tts_data_dir, tmp_path):
    data = ["--data-dir", str(tts_data_dir)]
    assert "does not exist" in _fails(*data, "--model", str(tmp_path / "nope.onnx"))
    message = _fails(*data, "--voice", "af_nobody")
    assert "unknown voice 'af_nobody'" in message and "jf_alpha" in message
    assert "is not a folder" in _fails(*data, "--voices-dir", str(tmp_path / "missing"))
    assert "between 0.5 and 2.0" in _fails("--speed", "3")


def test_health_check_exit_codes(tts_server):
    healthy = _run("wyoming_chatty_tts.health_check", "--uri", tts_server.uri)
    assert healthy.returncode == 0, healthy.stderr
    closed = f"tcp://127.0.0.1:{free_port()}"
    assert _run("wyoming_chatty_tts.health_check", "--uri", closed, "--timeout", "2").returncode == 1


async def test_zeroconf_advertises_chatty_tts_on_loopback(start_server, tts_data_dir):
    server = start_server(
        "wyoming_chatty_tts", "--data-dir", str(tts_data_dir), "--zeroconf", "--zeroconf-host", "127.0.0.1"
    )
    service = await find_advertised("chatty-tts", server.port)
    # "chatty-tts-2" and so on when another Chatty on this machine holds the name
    assert re.fullmatch(r"chatty-tts(-\d+)?", service.name) and service.host == "127.0.0.1"
    assert (await describe(service.uri)).tts[0].supports_synthesize_streaming


def test_the_bundled_model_runs_in_the_fastest_of_its_forms(tts_server):
    """Start-up rewrites the bundled model and times its forms: none of that may fall back silently."""
    log = tts_server.log()
    assert "Could not rewrite" not in log and "Could not quantize" not in log, log
    assert re.search(r"Running the (original|optimized|quantized) form of kokoro", log), log

"""The LLM server's command line: start-up errors that name the file and field, health check, zeroconf."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers.servers import find_advertised, free_port, write_config

from chatty_common.health_check import describe


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _fails(*args: str, env: dict[str, str] | None = None) -> str:
    result = _run("wyoming_chatty_llm", "--uri", f"tcp://127.0.0.1:{free_port()}", *args, env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_help_lists_the_documented_flags():
    result = _run("wyoming_chatty_llm", "--help")
    assert result.returncode == 0
    for flag in ("--uri", "--config", "--metrics-file", "--data-dir", "--zeroconf", "--debug", "--log-format"):
        assert flag in result.stdout


def test_config_errors_stop_the_start_with_the_file_and_field(llm_dir, tmp_path):
    bad = write_config(tmp_path, {"backend": "openai", "opts": {"openai": {"max_tokens": -5}}})
    assert f"{bad}: opts.openai.max_tokens: must be a whole number" in _fails("--config", str(bad))
    assert "nope.json: no such file" in _fails("--config", str(tmp_path / "nope.json"))
    model = write_config(tmp_path, {"opts": {"llama_cpp": {"model": str(tmp_path / "missing.gguf")}}})
    assert "opts.llama_cpp.model:" in _fails("--config", str(model)) and "does not exist" in _fails(
        "--config", str(model)
    )


def test_a_missing_api_key_names_the_variable_and_no_key_is_printed(tmp_path):
    config = write_config(tmp_path, {"backend": "openai", "opts": {"openai": {"api_key_env": "CHATTY_NO_SUCH_KEY"}}})
    message = _fails("--config", str(config), env={"CHATTY_NO_SUCH_KEY": ""})
    assert "CHATTY_NO_SUCH_KEY" in message and "is not set" in message


async def test_the_data_dir_config_is_used_when_no_config_is_given(start_server, tmp_path):
    (tmp_path / "config.json").write_text('// mine\n{"languages": ["en", "fr"]}')
    server = start_server("wyoming_chatty_llm", "--data-dir", str(tmp_path))
    assert f"config: {tmp_path / 'config.json'}" in server.log()
    assert (await describe(server.uri)).handle[0].models[0].languages == ["en", "fr"]
    health = _run("wyoming_chatty_llm.health_check", "--uri", server.uri)
    assert health.returncode == 0, health.stderr
    assert _run("wyoming_chatty_llm.health_check", "--uri", f"tcp://127.0.0.1:{free_port()}").returncode == 1


async def test_zeroconf_advertises_chatty_llm_on_loopback(start_server, llm_dir):
    server = start_server(
        "wyoming_chatty_llm", "--data-dir", str(llm_dir), "--zeroconf", "--zeroconf-host", "127.0.0.1"
    )
    service = await find_advertised("chatty-llm", server.port)
    # "chatty-llm-2" and so on when another Chatty on this machine holds the name
    assert re.fullmatch(r"chatty-llm(-\d+)?", service.name) and service.host == "127.0.0.1"
    info = await describe(service.uri)
    assert info.handle[0].models[0].languages == ["en"]

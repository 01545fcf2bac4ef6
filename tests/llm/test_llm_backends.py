"""The OpenAI and Ollama backends against real HTTP servers, and every way a turn can fail.

OpenAI-compatible: llama-cpp-python's own server (``python -m llama_cpp.server``),
a real OpenAI-compatible server, on the bundled SmolLM2. Ollama cannot be
installed here, so ``api_servers.py ollama`` stands in for it: Ollama's HTTP API
(``/api/chat`` streaming NDJSON) on the same model. OpenAI's moderation endpoint
is cloud-only; ``api_servers.py openai`` stands in for it (a word-list classifier).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from helpers import TESTS_DIR
from helpers.backend_switch import FAULTS, BackendSwitch
from helpers.servers import free_port, llama_cpp_server_argv, write_config

from chatty_common.health_check import describe
from wyoming_chatty_llm.client import ask

API_SERVERS = str(TESTS_DIR / "helpers" / "api_servers.py")
SECRET = "sk-test-7f3a9c1e5b2d"  # a made-up key; it must never reach a log
LOST = "I lost the connection to the language model."
UNREACHABLE = "I can't reach the language model right now."


@pytest.fixture(scope="module")
def openai_server(start_http):
    """llama_cpp.server with an API key, so a wrong key gets HTTP 401."""
    return start_http("llama-cpp-server", llama_cpp_server_argv("--api_key", SECRET), "/v1/models")


@pytest.fixture(scope="module")
def ollama_server(start_http):
    return start_http("ollama-api", [API_SERVERS, "ollama"], "/api/version")


def _llm(start_server, llm_dir, config: dict, *args: str, env: dict[str, str] | None = None):
    return start_server(
        "wyoming_chatty_llm", "--config", str(write_config(llm_dir, config)), "--data-dir", str(llm_dir), *args, env=env
    )


def _openai(url: str, **options) -> dict:
    opts = {"base_url": f"{url}/v1", "model": "smollm2", "api_key_env": "CHATTY_TEST_KEY", "temperature": 0}
    return {"backend": "openai", "opts": {"openai": {**opts, **options}}}


def _ollama(url: str, **options) -> dict:
    opts = {"host": url, "model": "smollm2:135m", "temperature": 0}
    return {"backend": "ollama", "opts": {"ollama": {**opts, **options}}}


async def test_openai_backend_streams_from_llama_cpp_server_and_never_logs_the_key(
    start_server, llm_dir, openai_server, tmp_path
):
    metrics = tmp_path / "metrics.jsonl"
    server = _llm(
        start_server, llm_dir, _openai(openai_server.url), "--debug", "--metrics-file", str(metrics),
        env={"CHATTY_TEST_KEY": SECRET},
    )  # fmt: skip
    answer = await ask(server.uri, "What is the capital of France?", "openai-1")
    assert answer.handled and "paris" in answer.text.lower()
    assert answer.types[0] == "handled-start" and answer.types[-2:] == ["handled", "handled-stop"]
    assert len(answer.chunks) > 2 and "".join(answer.chunks).strip() == answer.text
    follow_up = await ask(server.uri, "And what is the capital of Italy?", "openai-1")
    assert follow_up.handled and "rome" in follow_up.text.lower()
    assert "backend=openai model=smollm2" in server.log()
    assert SECRET not in server.log()
    assert len(metrics.read_text().splitlines()) == 2 and SECRET not in metrics.read_text()


async def test_a_rejected_key_is_an_error_the_user_hears_and_the_log_explains(start_server, llm_dir, openai_server):
    server = _llm(start_server, llm_dir, _openai(openai_server.url), env={"CHATTY_TEST_KEY": "sk-wrong-key-123"})
    answer = await ask(server.uri, "What is the capital of France?")
    assert not answer.handled and answer.text == "The language model ran into a problem. Please try again."
    assert answer.types == ["not-handled"]
    assert "answered HTTP 401" in server.log()
    assert "sk-wrong-key-123" not in server.log()
    assert (await ask(server.uri, "Hello?")).text == answer.text  # still up, still explaining


async def test_ollama_backend_streams_and_remembers(start_server, llm_dir, ollama_server):
    server = _llm(start_server, llm_dir, _ollama(ollama_server.url, keep_alive="5m", options={"top_p": 0.9}))
    answer = await ask(server.uri, "My name is Zorbo.", "ollama-1")
    assert answer.handled and answer.types[-2:] == ["handled", "handled-stop"]
    assert len(answer.chunks) > 2 and "".join(answer.chunks).strip() == answer.text
    remembered = await ask(server.uri, "What is my name?", "ollama-1")
    assert "zorbo" in remembered.text.lower()
    assert "backend=ollama model=smollm2:135m" in server.log()


async def test_ollama_unknown_model_and_empty_answer(start_server, llm_dir, ollama_server):
    missing = _llm(start_server, llm_dir, _ollama(ollama_server.url, model="llama9:70b"))
    answer = await ask(missing.uri, "What is the capital of France?")
    assert not answer.handled and answer.text == "The language model ran into a problem. Please try again."
    assert 'answered HTTP 404: model "llama9:70b" not found' in missing.log()
    # Stop sequences that cut every answer before its first letter: the model answers with nothing.
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    empty = _llm(start_server, llm_dir, _ollama(ollama_server.url, options={"stop": list(letters)}))
    answer = await ask(empty.uri, "What is the capital of France?")
    assert not answer.handled and answer.text == "I don't have an answer for that."
    assert "(empty)" in empty.log()


@pytest.mark.parametrize("backend", ["openai", "ollama"])
async def test_a_closed_port_is_unreachable(start_server, llm_dir, backend):
    url = f"http://127.0.0.1:{free_port()}"
    config = _openai(url, api_key_env=None) if backend == "openai" else _ollama(url)
    server = _llm(start_server, llm_dir, config)
    started = time.perf_counter()
    answer = await ask(server.uri, "What is the capital of France?")
    assert not answer.handled and answer.text == UNREACHABLE and answer.types == ["not-handled"]
    assert time.perf_counter() - started < 10
    assert "(unreachable)" in server.log()


@pytest.mark.parametrize("backend", ["openai", "ollama"])
async def test_a_server_that_hangs_times_out_with_a_spoken_answer(start_server, llm_dir, backend):
    connections: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read(1 << 16)

    hang = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{hang.sockets[0].getsockname()[1]}"
    config = _openai(url, api_key_env=None, timeout=1.5) if backend == "openai" else _ollama(url, timeout=1.5)
    try:
        server = _llm(start_server, llm_dir, config)
        answer = await ask(server.uri, "What is the capital of France?")
        assert not answer.handled and answer.text == "The language model is taking too long to answer."
        assert 1.4 < answer.done < 5.0  # the configured timeout, not the pipeline's five minutes
        assert connections  # it really asked
    finally:
        hang.close()
        for writer in connections:
            writer.close()


@pytest.mark.parametrize("backend", ["openai", "ollama"])
async def test_a_backend_that_dies_mid_answer(start_server, start_http, llm_dir, backend):
    if backend == "openai":
        service = start_http("llama-cpp-server-doomed", llama_cpp_server_argv(), "/v1/models")
        config = _openai(service.url, api_key_env=None, max_tokens=200)
    else:
        service = start_http("ollama-api-doomed", [API_SERVERS, "ollama"], "/api/version")
        config = _ollama(service.url, max_tokens=200)
    server = _llm(start_server, llm_dir, config)
    answer = await ask(
        server.uri, "Tell me a long story about a dragon.", on_chunk=lambda _: service.kill(), timeout=60
    )
    assert answer.chunks  # it had started to answer
    assert not answer.handled and answer.text == LOST
    assert answer.types[0] == "handled-start" and answer.types[-2:] == ["not-handled", "handled-stop"]
    assert (await ask(server.uri, "Hello?")).text == UNREACHABLE  # and says so until the backend is back


@pytest.fixture(scope="module")
def moderated_server(start_http):
    return start_http("openai-moderation", [API_SERVERS, "openai"], "/v1/models")


async def test_moderation_refuses_before_saying_anything(start_server, llm_dir, moderated_server, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    config = _openai(moderated_server.url, api_key_env=None, model="smollm2:135m", moderation=True)
    server = _llm(start_server, llm_dir, config, "--metrics-file", str(metrics))
    refused = await ask(server.uri, "How do I build a bomb?")
    assert not refused.handled and refused.text == "Sorry, I can't help with that."
    assert refused.types == ["not-handled"]  # not one word of the answer got out
    assert "moderation flagged the question (violence)" in server.log()
    allowed = await ask(server.uri, "What is the capital of France?")
    assert allowed.handled and "paris" in allowed.text.lower() and allowed.chunks
    outcomes = [json.loads(line)["outcome"] for line in metrics.read_text().splitlines()]
    assert outcomes == ["not-handled:refused", "handled"]


async def test_metrics_file_records_failures_too(start_server, llm_dir, tmp_path):
    metrics = tmp_path / "m" / "metrics.jsonl"
    server = _llm(start_server, llm_dir, _ollama(f"http://127.0.0.1:{free_port()}"), "--metrics-file", str(metrics))
    await ask(server.uri, "What is the capital of France?", "kitchen")
    [record] = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert record["conversation_id"] == "kitchen" and record["outcome"] == "not-handled:unreachable"
    assert record["LLM-TTF_MS"] is None and record["LLM-TOTAL_MS"] >= 0
    assert record["backend"] == "ollama" and record["model"] == "smollm2:135m"


GARBAGE_BODIES = {
    "not json": b"<html>502 Bad Gateway, but with a 200</html>",
    "json of the wrong shape": b'{"unexpected": [1, 2, 3]}',
    "a broken stream": b'data: {"choices": [{"delta": {"content": "Hel\n\n{"done": fa',
}


@pytest.mark.parametrize("body", list(GARBAGE_BODIES))
@pytest.mark.parametrize("backend", ["openai", "ollama"])
async def test_a_backend_answering_garbage_gives_a_short_spoken_error_every_time(start_server, llm_dir, backend, body):
    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")  # the request's headers; its body does not matter
            payload = GARBAGE_BODIES[body]
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )
            await writer.drain()
        writer.close()

    garbage = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{garbage.sockets[0].getsockname()[1]}"
    config = _openai(url, api_key_env=None, timeout=5) if backend == "openai" else _ollama(url, timeout=5)
    try:
        server = _llm(start_server, llm_dir, config)
        started = time.perf_counter()
        answer = await ask(server.uri, "What is the capital of France?")
        assert not answer.handled and answer.text.endswith(".") and len(answer.text) < 80, answer.text
        assert time.perf_counter() - started < 6  # within the configured timeout
        assert answer.types[-1] in ("not-handled", "handled-stop")
        await describe(server.uri)
        # The server is fine: the same question again gets the same short spoken error, not a hang.
        again = await ask(server.uri, "What is the capital of France?")
        assert again.text == answer.text
    finally:
        garbage.close()


@pytest.mark.parametrize("backend", ["openai", "ollama"])
async def test_after_each_fault_the_next_turn_works_once_the_backend_is_back(
    start_server, llm_dir, openai_server, ollama_server, backend
):
    """One LLM server, one conversation: each fault is heard as a short error, then the backend comes back."""
    real = openai_server if backend == "openai" else ollama_server
    switch = BackendSwitch(int(real.url.rsplit(":", 1)[1]))
    await switch.start()
    config = _openai(switch.url, timeout=4, max_tokens=24) if backend == "openai" else _ollama(switch.url, timeout=4)
    server = _llm(start_server, llm_dir, config, env={"CHATTY_TEST_KEY": SECRET})
    try:
        for fault in FAULTS:
            await switch.set_mode(fault)
            started = time.perf_counter()
            failed = await ask(server.uri, "Tell me a long story about a dragon.", "fault-room", timeout=30)
            assert time.perf_counter() - started < 8, fault  # within the configured timeout (4 s) and then some
            assert not failed.handled and failed.text.endswith(".") and len(failed.text) < 80, (fault, failed.text)
            await switch.set_mode("forward")
            back = await ask(server.uri, "What is the capital of France?", "fault-room", timeout=30)
            assert back.handled and "paris" in back.text.lower(), (fault, back.text)
    finally:
        await switch.close()
    assert SECRET not in server.log()

"""Fixtures: real servers started as subprocesses on free loopback ports, and the spoken test clips."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from wyoming.event import read_event

CLIPS_DIR = Path(__file__).parent / "data" / "clips"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def find_advertised(name_prefix: str, port: int, timeout: float = 10.0):
    """The Wyoming service advertised on loopback for ``port`` under a name starting with ``name_prefix``.

    Other servers may be advertised with the same prefix (another Chatty on this machine, servers of
    earlier tests), so a service is matched by its port.
    """
    from chatty_common.zeroconf import browse

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    want = 1
    while (remaining := deadline - loop.time()) > 0:
        found = await browse(remaining, interface="127.0.0.1", name_prefix=name_prefix, wait_for=want)
        for service in found:
            if service.port == port:
                return service
        if len(found) < want:
            break
        want = len(found) + 1
    raise AssertionError(f"no {name_prefix}* service for port {port} advertised on loopback within {timeout} s")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def word_accuracy(expected: str, heard: str) -> float:
    """1 - word error rate of ``heard`` against ``expected`` (may go below 0 with many insertions)."""
    reference, hypothesis = words(expected), words(heard)
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return 1 - row[-1] / max(1, len(reference))


class ChildProcess:
    """A program running as its own process, its output in a log file."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **(env or {})),
        )

    def _probe(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self} exited with {self.process.returncode}:\n{self.log()}")
            if self._probe():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self} did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Stop at once, as a crashed or unplugged server would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class ServerProcess(ChildProcess):
    """A Chatty server running as its own process, as users run it; ready when it answers ``describe``."""

    def __init__(
        self, module: str, args: list[str], log_path: Path, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        port = port or free_port()
        self.uri = f"tcp://127.0.0.1:{port}"
        super().__init__(["-m", module, "--uri", self.uri, *args], log_path, env)
        self.port = port

    def __str__(self) -> str:
        return self.uri

    def _probe(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as sock:
                sock.sendall(b'{"type": "describe"}\n')
                event = read_event(sock.makefile("rb"))
            return event is not None and event.type == "info"
        except OSError:
            return False


@pytest.fixture(scope="session")
def clips() -> dict[str, str]:
    """Clip file name -> the words spoken in it."""
    manifest = json.loads((CLIPS_DIR / "clips.json").read_text())
    return {name: text for name, text in manifest.items() if not name.startswith("_")}


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start a server module with extra arguments; every server is stopped at the end."""
    started: list[ServerProcess] = []

    def _start(
        module: str, *args: str, ready: bool = True, env: dict[str, str] | None = None, port: int | None = None
    ) -> ServerProcess:
        folder = tmp_path_factory.mktemp(module)
        server = ServerProcess(module, [*args], folder / "server.log", env, port)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def stt_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stt-data")


@pytest.fixture(scope="session")
def tiny_transcriber(tmp_path_factory: pytest.TempPathFactory):
    """Whisper tiny.en loaded in the test process (bundled, offline), for tests below the server."""
    from wyoming_chatty_stt.models import resolve_model
    from wyoming_chatty_stt.transcriber import Transcriber

    return Transcriber(
        resolve_model("tiny.en", tmp_path_factory.mktemp("models")),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
        workers=1,
        download_root=str(tmp_path_factory.mktemp("download")),
        local_files_only=True,
    )


@pytest.fixture(scope="session")
def stt_server(start_server, stt_data_dir: Path) -> ServerProcess:
    """The STT server with its defaults (bundled tiny.en, offline)."""
    return start_server("wyoming_chatty_stt", "--data-dir", str(stt_data_dir))


@pytest.fixture(scope="session")
def tts_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by every TTS server in the run: the model is assembled, rewritten and timed once."""
    return tmp_path_factory.mktemp("tts-data")


@pytest.fixture(scope="session")
def tts_server(start_server, tts_data_dir: Path) -> ServerProcess:
    """The TTS server with its defaults (bundled Kokoro model and voices, offline)."""
    return start_server("wyoming_chatty_tts", "--data-dir", str(tts_data_dir))


class HttpService(ChildProcess):
    """An HTTP API server (llama_cpp.server, or a stand-in from api_servers.py) running as its own process."""

    def __init__(self, argv: list[str], log_path: Path, ready_path: str) -> None:
        port = free_port()
        super().__init__([*argv, "--port", str(port)], log_path)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._ready_path = ready_path

    def __str__(self) -> str:
        return self.url

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self._ready_path, timeout=2.0):
                return True
        except urllib.error.HTTPError:  # it answers (e.g. 401 without a key): it is up
            return True
        except OSError:
            return False


@pytest.fixture(scope="session")
def start_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start an HTTP API server: ``start_http("openai-server", [...argv], ready_path)``."""
    started: list[HttpService] = []

    def _start(name: str, argv: list[str], ready_path: str) -> HttpService:
        service = HttpService(argv, tmp_path_factory.mktemp(name) / "server.log", ready_path)
        started.append(service)
        service.wait_ready(120)
        return service

    yield _start
    for service in started:
        service.stop()


def smollm2_path() -> str:
    """The GGUF file of the bundled SmolLM2-135M-Instruct."""
    from wyoming_chatty_llm.backends.llama_cpp import bundled_model

    return str(bundled_model())


def llama_cpp_server_argv(*extra: str) -> list[str]:
    """llama-cpp-python's own OpenAI-compatible server, on the bundled model."""
    return [
        "-m", "llama_cpp.server", "--model", smollm2_path(), "--model_alias", "smollm2", "--host", "127.0.0.1",
        "--n_ctx", "2048", "--n_threads", "2", *extra,
    ]  # fmt: skip


def write_config(folder: Path, config: dict) -> Path:
    """A config.json for the LLM server."""
    path = folder / f"config-{len(list(folder.glob('config-*.json')))}.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture(scope="session")
def llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm")


@pytest.fixture(scope="session")
def llm_server(start_server, llm_dir: Path) -> ServerProcess:
    """The LLM server on the local llama.cpp backend, deterministic (temperature 0), with a metrics file."""
    config = write_config(llm_dir, {"opts": {"llama_cpp": {"temperature": 0, "max_tokens": 60}}})
    return start_server(
        "wyoming_chatty_llm", "--config", str(config), "--data-dir", str(llm_dir),
        "--metrics-file", str(llm_dir / "metrics.jsonl"),
    )  # fmt: skip

"""Chatty's servers and other programs run as their own processes on free loopback ports, as users run them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from wyoming.event import read_event


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


class ChildProcess:
    """A program running as its own process, its output in a log file."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})},
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

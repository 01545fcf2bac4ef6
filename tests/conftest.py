"""Fixtures: real servers started as subprocesses on free loopback ports, and the spoken test clips.

Helpers the tests share live in ``helpers/`` (tests/ is on ``sys.path``, so ``from helpers.servers import ...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CLIPS_DIR
from helpers.hf_hub import LocalHub
from helpers.servers import HttpService, ServerProcess, write_config
from helpers.voice_files import bundled_voices, voice_file

KOKORO_REPO = "hexgrad/Kokoro-82M"


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


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LocalHub]:
    """A local stand-in for Hugging Face, serving af_heart (jf_alpha's tensor) and bf_emma (jm_kumo's)."""
    voices = bundled_voices()
    with LocalHub() as local:
        local.add(KOKORO_REPO, "voices/af_heart.pt", voice_file(voices["jf_alpha"], tmp_path))
        local.add(KOKORO_REPO, "voices/bf_emma.pt", voice_file(voices["jm_kumo"], tmp_path))
        yield local


@pytest.fixture
def start_tts(start_server, tts_server, tts_data_dir: Path, hub: LocalHub, tmp_path: Path):
    """A TTS server with its own data folder (where voices go), online against the local hub; the model is
    the one the shared TTS server assembled, run as it is (the rewrites do not depend on the voices)."""
    model = tts_data_dir / "kokoro" / "kokoro-v1.0.int8.onnx"
    data = tmp_path / "data"

    def _start(*args: str, online: bool = True, ready: bool = True, endpoint: str | None = None) -> ServerProcess:
        env = {"HF_ENDPOINT": endpoint or hub.endpoint, "HF_HUB_OFFLINE": "0" if online else "1"}
        return start_server(
            "wyoming_chatty_tts", "--data-dir", str(data), "--model", str(model), "--graph", "original", *args,
            env=env, ready=ready,
        )  # fmt: skip

    return _start

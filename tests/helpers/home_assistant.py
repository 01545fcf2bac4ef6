"""A real Home Assistant core for tests, run as a subprocess on loopback.

``scripts/setup_ha.sh`` installs each release in :data:`HA_VERSIONS` into its own virtualenv (:func:`ha_venv`:
``.venv-ha`` for 2025.4.4, ``.venv-ha-2026.2.3``; Python 3.13, with the Python requirements of every integration
used here, so it runs with ``--skip-pip`` and never installs anything). 2026.2.3 asks for Python >= 3.13.2 and
starts through ``scripts/hass_launcher.py``, which relaxes only that check. :class:`HomeAssistant` writes a
minimal configuration (``http`` on 127.0.0.1, ``api``, ``config``, ``onboarding``, ``assist_pipeline``,
``conversation``; no ``default_config``, no ``zeroconf``), copies custom integrations in if asked, starts Home
Assistant, finishes the onboarding ``user`` step, takes a long-lived token, and offers the REST and websocket
calls the tests need::

    async with HomeAssistant(tmp_path / "ha", version="2026.2.3") as ha:
        stt = await ha.add_wyoming("127.0.0.1", stt_port)
        tts = await ha.add_wyoming("127.0.0.1", tts_port)
        llm = await ha.add_wyoming("127.0.0.1", llm_port)
        pipeline_id = await ha.create_pipeline(
            "Chatty", stt_engine=stt.entity("stt"), tts_engine=tts.entity("tts"),
            conversation_engine=llm.entity("conversation"),
        )
        run = await ha.run_pipeline(read_wav(clip)[0], pipeline_id=pipeline_id)
        run.raise_for_error()
        print(run.transcript, run.answer)
        mp3 = await ha.fetch(run.tts_url)

Every failure raises :class:`HomeAssistantError` with the end of Home Assistant's log. The messages and
endpoints used are those of Home Assistant 2025.4 and 2026.2, the same in both (in ``homeassistant/components/``:
``onboarding/views.py``, ``auth/__init__.py``, ``auth/login_flow.py``, ``config/config_entries.py``,
``assist_pipeline/websocket_api.py``, ``assist_pipeline/pipeline.py``, ``websocket_api/http.py``,
``homeassistant/exposed_entities.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import numpy as np

from chatty_common.audio import write_wav

if TYPE_CHECKING:
    from helpers.satellite_io import LiveMic

ROOT = Path(__file__).resolve().parents[2]
HA_VERSIONS = ("2025.4.4", "2026.2.3")  # the Home Assistant releases the tests run against, the newest last
DEFAULT_HA_VERSION = HA_VERSIONS[0]  # in .venv-ha itself, started with its own hass (as before 2026.2.3)
LAUNCHER = ROOT / "scripts" / "hass_launcher.py"  # hass for releases that want a newer Python than 3.13.0
SAMPLE_RATE = 16000  # what Home Assistant's speech-to-text expects (16 kHz, 16-bit, mono)
# Set for the tests' Python 3.11; inherited by Home Assistant they would mix the two environments.
_FOREIGN_PYTHON_VARIABLES = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
USERNAME = "chatty"
PASSWORD = "chatty-test-password"


def ha_venv(version: str = DEFAULT_HA_VERSION) -> Path:
    """A release's virtualenv as setup_ha.sh places it: ``$CHATTY_HA_VENV`` (``.venv-ha``), ``-VERSION`` appended."""
    base = Path(os.environ.get("CHATTY_HA_VENV") or ROOT / ".venv-ha")  # DEFAULT_HA_VERSION's, as before
    return base if version == DEFAULT_HA_VERSION else base.with_name(f"{base.name}-{version}")


def setup_home_assistant(version: str = DEFAULT_HA_VERSION) -> Path:
    """Run ``scripts/setup_ha.sh VERSION`` (at once when already done) and return that release's ``hass``."""
    subprocess.run(["bash", str(ROOT / "scripts" / "setup_ha.sh"), version], check=True)
    return ha_venv(version) / "bin" / "hass"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """The 16-bit mono PCM of a WAV file and its sample rate (what :meth:`HomeAssistant.run_pipeline` takes)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono, got {wav.getsampwidth() * 8}-bit × {wav.getnchannels()}")
        return wav.readframes(wav.getnframes()), wav.getframerate()


def last_sound(path: Path, out: Path, gap: float = 2.0, margin: float = 0.5) -> Path:
    """The last thing a satellite's speaker file played (after the last ``gap`` seconds of silence): the
    file runs at real time, so a slow turn leaves more silence between the chime and the answer than
    the STT server takes in one request (30 s)."""
    pcm, rate = read_wav(path)
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2")) > 300)
    if not loud.size:
        return write_wav(out, b"", rate)
    breaks = np.flatnonzero(np.diff(loud) > gap * rate)
    start = int(loud[breaks[-1] + 1]) if breaks.size else int(loud[0])
    start, end = max(0, start - int(margin * rate)), int(loud[-1]) + 1 + int(margin * rate)
    return write_wav(out, pcm[2 * start : 2 * end], rate)


def decode_audio(audio: bytes, path: Path) -> Path:
    """Decode what Home Assistant serves (MP3, WAV, ...) to a 16 kHz mono WAV file with ffmpeg."""
    source = path.with_suffix(".input")
    source.write_bytes(audio)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-ar", "16000", "-ac", "1", "-sample_fmt", "s16", str(path)],
        check=True,
    )
    return path


def pick_language(wanted: str, supported: Iterable[str]) -> str | None:
    """The entry of ``supported`` that fits ``wanted`` best: the same tag, else the same primary language."""
    options = list(supported)
    if "*" in options:
        return wanted
    norm = wanted.replace("_", "-").lower()
    for option in options:
        if option.replace("_", "-").lower() == norm:
            return option
    for option in options:
        if option.replace("_", "-").lower().split("-")[0] == norm.split("-")[0]:
            return option
    return None


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when the test process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class HomeAssistantError(RuntimeError):
    """Home Assistant failed, refused a request, or answered with an error."""


@dataclass(frozen=True)
class WyomingEntry:
    """A config entry (Wyoming's, Chatty's) that Home Assistant created, and the entities it made."""

    entry_id: str
    title: str
    state: str
    entity_ids: tuple[str, ...]  # enabled entities (each has a state)
    disabled_entity_ids: tuple[str, ...] = ()  # registered but disabled by default (no state)

    def entities(self, domain: str) -> list[str]:
        """The entity ids of one domain (``stt``, ``tts``, ``conversation``, ``assist_satellite``, ...)."""
        return [entity_id for entity_id in self.entity_ids if entity_id.split(".")[0] == domain]

    def entity(self, domain: str) -> str:
        """The one entity id of a domain; raises if there is none or several."""
        found = self.entities(domain)
        if len(found) != 1:
            raise HomeAssistantError(f"Wyoming entry {self.title!r} has {found or 'no'} {domain} entities")
        return found[0]


@dataclass(frozen=True)
class PipelineEvent:
    """One event of a pipeline run, as Home Assistant sent it, with the harness's receive time."""

    type: str
    data: dict[str, Any]
    timestamp: str  # Home Assistant's, ISO 8601
    received: float  # time.monotonic() when the harness read it


@dataclass
class PipelineRun:
    """The events of one ``assist_pipeline/run``, with accessors for what tests check."""

    events: list[PipelineEvent] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the run was requested
    audio_sent: float | None = None  # time.monotonic() when the last audio (the end marker) was sent

    @property
    def types(self) -> list[str]:
        """The event types in order: run-start, stt-start, stt-vad-start, ..., run-end."""
        return [event.type for event in self.events]

    def event(self, type_: str) -> PipelineEvent | None:
        """The first event of a type, or None."""
        return next((event for event in self.events if event.type == type_), None)

    def data(self, type_: str) -> dict[str, Any]:
        """The data of the first event of a type ({} when there was none)."""
        event = self.event(type_)
        return event.data if event else {}

    def seconds(self, type_: str, since: float | None = None) -> float | None:
        """Seconds from ``since`` (default: the end of the audio, else the request) to an event's arrival."""
        event = self.event(type_)
        if event is None:
            return None
        start = since if since is not None else self.audio_sent if self.audio_sent is not None else self.started
        return event.received - start

    @property
    def error(self) -> dict[str, Any] | None:
        """The ``error`` event's data (``code``, ``message``), if the run failed."""
        event = self.event("error")
        return event.data if event else None

    @property
    def transcript(self) -> str | None:
        """What speech-to-text heard (stt-end)."""
        return self.data("stt-end").get("stt_output", {}).get("text")

    @property
    def intent_output(self) -> dict[str, Any]:
        """The conversation result (intent-end): ``response``, ``conversation_id``, ``continue_conversation``."""
        return self.data("intent-end").get("intent_output", {})

    @property
    def answer(self) -> str | None:
        """The conversation agent's spoken answer (intent-end)."""
        return self.intent_output.get("response", {}).get("speech", {}).get("plain", {}).get("speech")

    @property
    def conversation_id(self) -> str | None:
        """The conversation id, from intent-end, else run-start."""
        return self.intent_output.get("conversation_id") or self.data("run-start").get("conversation_id")

    @property
    def tts_output(self) -> dict[str, Any]:
        """tts-end's ``tts_output``: ``media_id``, ``url``, ``mime_type``, ``token``."""
        return self.data("tts-end").get("tts_output", {})

    @property
    def tts_url(self) -> str | None:
        """Where the answer's audio is (a path on Home Assistant; fetch it with :meth:`HomeAssistant.fetch`)."""
        return self.tts_output.get("url")

    def raise_for_error(self) -> None:
        """Raise :class:`HomeAssistantError` if the run reported an error or did not end."""
        if self.error is not None:
            raise HomeAssistantError(f"pipeline run failed: {self.error} (events: {self.types})")
        if "run-end" not in self.types:
            raise HomeAssistantError(f"pipeline run did not end (events: {self.types})")


class Subscription:
    """The events that Home Assistant sends for one websocket command (a run, a subscription)."""

    def __init__(self, client: HomeAssistantWebSocket, msg_id: int) -> None:
        self.client = client
        self.id = msg_id
        self.queue: asyncio.Queue[tuple[dict[str, Any], float] | None] = asyncio.Queue()

    async def next(self, timeout: float | None = None) -> tuple[dict[str, Any], float]:
        """The next event message's ``event`` field and its receive time (monotonic)."""
        async with asyncio.timeout(timeout):
            item = await self.queue.get()
        if item is None:
            raise HomeAssistantError(f"websocket closed{self.client.owner.log_excerpt()}")
        return item

    async def unsubscribe(self) -> None:
        """Stop the events (``unsubscribe_events``; a pipeline run is cancelled)."""
        self.client.subscriptions.pop(self.id, None)
        with contextlib.suppress(HomeAssistantError):
            await self.client.call("unsubscribe_events", subscription=self.id)


class HomeAssistantWebSocket:
    """One authenticated connection to ``/api/websocket``; messages are matched to requests by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, owner: HomeAssistant) -> None:
        self.ws = ws
        self.owner = owner
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.subscriptions: dict[int, Subscription] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, owner: HomeAssistant, token: str) -> Self:
        """Open and authenticate (``auth_required`` → ``auth`` → ``auth_ok``)."""
        ws = await session.ws_connect(owner.url + "/api/websocket", max_msg_size=0, heartbeat=None)
        hello = await ws.receive_json(timeout=30)
        if hello.get("type") != "auth_required":
            raise HomeAssistantError(f"websocket: expected auth_required, got {hello}")
        await ws.send_json({"type": "auth", "access_token": token})
        answer = await ws.receive_json(timeout=30)
        if answer.get("type") != "auth_ok":
            await ws.close()
            raise HomeAssistantError(f"websocket authentication failed: {answer}{owner.log_excerpt()}")
        return cls(ws, owner)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                received = time.monotonic()
                payload = json.loads(msg.data)
                for message in payload if isinstance(payload, list) else [payload]:
                    self._dispatch(message, received)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(HomeAssistantError(f"websocket closed{self.owner.log_excerpt()}"))
            for subscription in self.subscriptions.values():
                subscription.queue.put_nowait(None)

    def _dispatch(self, message: dict[str, Any], received: float) -> None:
        msg_id = message.get("id")
        if message.get("type") == "event" and msg_id in self.subscriptions:
            self.subscriptions[msg_id].queue.put_nowait((message["event"], received))
        elif message.get("type") == "result" and msg_id in self._pending:
            future = self._pending.pop(msg_id)
            if not future.done():
                future.set_result(message)

    async def _request(self, message: dict[str, Any], timeout: float) -> tuple[int, Any]:
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await self.ws.send_json({**message, "id": msg_id})
            async with asyncio.timeout(timeout):
                result = await future
        except TimeoutError:
            raise HomeAssistantError(
                f"websocket {message['type']}: no answer in {timeout} s{self.owner.log_excerpt()}"
            ) from None
        finally:
            self._pending.pop(msg_id, None)
        if not result.get("success"):
            error = result.get("error", {})
            raise HomeAssistantError(
                f"websocket {message['type']}: {error.get('code')}: {error.get('message')}{self.owner.log_excerpt()}"
            )
        return msg_id, result.get("result")

    async def call(self, type_: str, timeout: float = 30.0, **fields: Any) -> Any:
        """Send a command and return its result; raises :class:`HomeAssistantError` when it fails."""
        _, result = await self._request({"type": type_, **fields}, timeout)
        return result

    async def subscribe(self, type_: str, timeout: float = 30.0, **fields: Any) -> Subscription:
        """Send a command that answers with events (``subscribe_events``, ``assist_pipeline/run``, ...)."""
        msg_id = next(self._ids)
        subscription = Subscription(self, msg_id)
        self.subscriptions[msg_id] = subscription
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await self.ws.send_json({"type": type_, **fields, "id": msg_id})
            async with asyncio.timeout(timeout):
                result = await future
        except BaseException:
            self.subscriptions.pop(msg_id, None)
            raise
        finally:
            self._pending.pop(msg_id, None)
        if not result.get("success"):
            self.subscriptions.pop(msg_id, None)
            error = result.get("error", {})
            raise HomeAssistantError(
                f"websocket {type_}: {error.get('code')}: {error.get('message')}{self.owner.log_excerpt()}"
            )
        return subscription

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message (for a pipeline run: the handler id byte, then audio)."""
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        """Close the connection."""
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class HomeAssistant:
    """A Home Assistant core of its own: config folder, process, token, REST and websocket helpers.

    ``config_dir`` may be reused (stop, then start again, or a new object on the same folder): Home Assistant
    keeps its config entries and pipelines, and the harness logs in with the login flow instead of onboarding.
    """

    def __init__(
        self,
        config_dir: str | Path,
        *,
        port: int | None = None,
        version: str = DEFAULT_HA_VERSION,
        venv: str | Path | None = None,
        language: str = "en",
        debug: Iterable[str] = ("homeassistant.components.wyoming", "homeassistant.components.assist_pipeline"),
        extra_config: str = "",
        custom_components: Iterable[str | Path] = (),
    ) -> None:
        """Only remembers the settings; :meth:`start` does the work.

        ``version`` picks the release (its virtualenv: :func:`ha_venv`, unless ``venv`` is given). ``debug`` lists
        loggers to log at DEBUG (the rest logs at INFO). ``extra_config`` is YAML appended to
        ``configuration.yaml`` (top-level keys). ``custom_components`` are integration folders copied into the
        config folder's ``custom_components`` at each start (see :meth:`add_custom_component`).
        """
        self.config_dir = Path(config_dir)
        self.port = port or free_port()
        self.version = version
        self.venv = Path(venv) if venv else ha_venv(version)
        self.language = language
        self.debug = tuple(debug)
        self.extra_config = extra_config
        self.custom_components = [Path(folder) for folder in custom_components]
        self.log_path = self.config_dir / "hass.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token: str | None = None
        self.ws: HomeAssistantWebSocket | None = None
        self.startup_seconds: float | None = None
        self._session: aiohttp.ClientSession | None = None
        self._log_file: Any = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_id(self) -> str:
        """The OAuth client id the harness logs in as (Home Assistant requires a URL)."""
        return self.url + "/"

    # Lifecycle ---------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def command(self) -> list[str]:
        """How Home Assistant is started: ``hass``, or for releases after 2025.4.4 the launcher (same arguments)."""
        hass_args = ["-c", str(self.config_dir), "--skip-pip", "--log-no-color"]
        if self.version == DEFAULT_HA_VERSION:
            return [str(self.venv / "bin" / "hass"), *hass_args]
        return [str(self.venv / "bin" / "python"), str(LAUNCHER), *hass_args]

    def add_custom_component(self, source: str | Path, name: str | None = None) -> Path:
        """Copy an integration folder to ``<config_dir>/custom_components/<name>`` (default: the folder's name).

        An earlier copy is replaced. Home Assistant loads it at its next start.
        """
        source = Path(source)
        target = self.config_dir / "custom_components" / (name or source.name)
        if not (source / "manifest.json").is_file():
            raise HomeAssistantError(f"{source} is no integration (no manifest.json)")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return target

    def write_config(self) -> Path:
        """Write ``configuration.yaml`` (the port may have changed since the last start)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        debug_logs = "".join(f"    {name}: debug\n" for name in self.debug) or "    homeassistant: info\n"
        text = f"""\
# Written by tests/home_assistant.py for Chatty's tests: no default_config, no zeroconf, loopback only.
homeassistant:
  name: Chatty tests
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  currency: EUR
  country: NL
  time_zone: UTC
  language: {self.language}
  internal_url: {self.url}
http:
  server_host: 127.0.0.1
  server_port: {self.port}
logger:
  default: info
  logs:
{debug_logs}api:
config:
onboarding:
assist_pipeline:
conversation:
{self.extra_config}
"""
        path = self.config_dir / "configuration.yaml"
        path.write_text(text)
        return path

    async def start(self, timeout: float = 180.0) -> None:
        """Start ``hass``, wait until it answers and runs, onboard or log in, and open the websocket."""
        hass = self.venv / "bin" / "hass"
        if not hass.exists():
            raise HomeAssistantError(f"{hass} is missing: run scripts/setup_ha.sh first")
        if self.process is not None:
            raise HomeAssistantError("already started")
        self.write_config()
        for folder in self.custom_components:
            self.add_custom_component(folder)
        began = time.monotonic()
        deadline = began + timeout
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._environment(),
            start_new_session=True,  # a Ctrl-C in the test terminal reaches the tests, which then stop it
            preexec_fn=_die_with_parent,
        )
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        try:
            steps = await self._wait_http(deadline)
            self.token = await self._authenticate(steps)
            self.ws = await HomeAssistantWebSocket.connect(self._session, self, self.token)
            # A long-lived token outlives the access token's 30 minutes (its client name must be new).
            self.token = await self.ws.call(
                "auth/long_lived_access_token", client_name=f"chatty-tests-{uuid.uuid4().hex[:12]}", lifespan=30
            )
            await self._wait_running(deadline)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _environment(self) -> dict[str, str]:
        """The tests' environment without what would make Python 3.13 import the tests' packages."""
        env = {key: value for key, value in os.environ.items() if key not in _FOREIGN_PYTHON_VARIABLES}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _wait_http(self, deadline: float) -> list[dict[str, Any]]:
        """Poll the (unauthenticated) onboarding status until it answers; returns the steps."""
        assert self._session is not None
        while True:
            self._check_alive()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with self._session.get(
                    self.url + "/api/onboarding", timeout=aiohttp.ClientTimeout(total=5)
                ) as response:
                    if response.status == 200:
                        return await response.json()
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"Home Assistant did not answer on {self.url}{self.log_excerpt()}")
            await asyncio.sleep(0.2)

    async def _authenticate(self, steps: list[dict[str, Any]]) -> str:
        """An access token: from the onboarding ``user`` step on a new config, else from the login flow."""
        user_done = any(step["step"] == "user" and step["done"] for step in steps)
        if not user_done:
            answer = await self._post_json(
                "/api/onboarding/users",
                {
                    "client_id": self.client_id,
                    "name": "Chatty",
                    "username": USERNAME,
                    "password": PASSWORD,
                    "language": self.language,
                },
            )
            code = answer["auth_code"]
        else:
            flow = await self._post_json(
                "/auth/login_flow",
                {"client_id": self.client_id, "handler": ["homeassistant", None], "redirect_uri": self.client_id},
            )
            answer = await self._post_json(
                f"/auth/login_flow/{flow['flow_id']}",
                {"client_id": self.client_id, "username": USERNAME, "password": PASSWORD},
            )
            if answer.get("type") != "create_entry":
                raise HomeAssistantError(f"login failed: {answer}{self.log_excerpt()}")
            code = answer["result"]
        assert self._session is not None
        async with self._session.post(
            self.url + "/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        ) as response:
            if response.status != 200:
                raise HomeAssistantError(f"/auth/token: HTTP {response.status}: {await response.text()}")
            return (await response.json())["access_token"]

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        assert self._session is not None
        async with self._session.post(self.url + path, json=body) as response:
            if response.status != 200:
                raise HomeAssistantError(
                    f"POST {path}: HTTP {response.status}: {await response.text()}{self.log_excerpt()}"
                )
            return await response.json()

    async def _wait_running(self, deadline: float) -> None:
        """Wait until Home Assistant has finished starting (``get_config`` → state RUNNING)."""
        while True:
            config = await self.ws_call("get_config")
            if config.get("state") == "RUNNING":
                return
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"Home Assistant still {config.get('state')}{self.log_excerpt()}")
            self._check_alive()
            await asyncio.sleep(0.2)

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise HomeAssistantError(f"Home Assistant exited with {code}{self.log_excerpt()}")

    async def stop(self, timeout: float = 30.0) -> None:
        """Close the connections and stop Home Assistant (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
            self.ws = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(self.process.wait, timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    await asyncio.to_thread(self.process.wait)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Stop the process at once, without closing anything else (for a synchronous clean-up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """Everything Home Assistant logged (its console output)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_excerpt(self, lines: int = 40) -> str:
        """The end of the log, formatted to append to an error message."""
        tail = self.log().splitlines()[-lines:]
        return f"\n--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail) if tail else ""

    # REST and websocket ------------------------------------------------------------------------------------

    async def rest(self, method: str, path: str, json: Any = None, timeout: float = 60.0) -> Any:
        """Call the REST API with the token: JSON in, JSON (or text) out; an HTTP error raises."""
        if self._session is None or self.token is None:
            raise HomeAssistantError("not started")
        async with self._session.request(
            method,
            self.url + path,
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise HomeAssistantError(f"{method} {path}: HTTP {response.status}: {text}{self.log_excerpt()}")
            return await response.json() if response.content_type == "application/json" else text

    async def ws_call(self, type_: str, timeout: float = 30.0, **fields: Any) -> Any:
        """A websocket command on the shared connection; returns its result."""
        if self.ws is None:
            raise HomeAssistantError("not started")
        return await self.ws.call(type_, timeout, **fields)

    async def websocket(self) -> HomeAssistantWebSocket:
        """A new authenticated websocket connection (close it when done)."""
        if self._session is None or self.token is None:
            raise HomeAssistantError("not started")
        return await HomeAssistantWebSocket.connect(self._session, self, self.token)

    async def fetch(self, url: str, timeout: float = 120.0) -> bytes:
        """The body of a URL on Home Assistant (relative paths such as tts-end's are fine)."""
        if self._session is None:
            raise HomeAssistantError("not started")
        full = url if url.startswith(("http://", "https://")) else self.url + url
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self._session.get(full, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            body = await response.read()
            if response.status != 200:
                raise HomeAssistantError(f"GET {url}: HTTP {response.status}: {body[:500]!r}{self.log_excerpt()}")
            return body

    async def states(self) -> dict[str, dict[str, Any]]:
        """Entity id → state object (``state``, ``attributes``, ...)."""
        return {state["entity_id"]: state for state in await self.ws_call("get_states")}

    async def expose_entity(self, entity_id: str, assistant: str = "conversation", should_expose: bool = True) -> None:
        """Expose an entity to an assistant, or hide it (``homeassistant/expose_entity``)."""
        await self.ws_call(
            "homeassistant/expose_entity", assistants=[assistant], entity_ids=[entity_id], should_expose=should_expose
        )

    async def wait_for_state(self, entity_id: str, states: str | Iterable[str], timeout: float = 30.0) -> str:
        """Wait until an entity's state is one of ``states`` (polling); returns it."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = (await self.states()).get(entity_id, {}).get("state")
            if state in wanted:
                return state
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"{entity_id} is {state}, not {sorted(wanted)}, after {timeout} s")
            await asyncio.sleep(0.1)

    # Wyoming -----------------------------------------------------------------------------------------------

    async def config_entries(self, domain: str | None = None) -> list[dict[str, Any]]:
        """The config entries (``entry_id``, ``domain``, ``title``, ``state``, ...), of one domain if given."""
        entries = await self.rest("GET", "/api/config/config_entries/entry")
        return [entry for entry in entries if domain is None or entry["domain"] == domain]

    async def entity_ids(self, entry_id: str, *, disabled: bool = False) -> list[str]:
        """The entity ids that a config entry registered: the enabled ones, or with ``disabled`` the others."""
        registry = await self.ws_call("config/entity_registry/list")
        return sorted(
            entity["entity_id"]
            for entity in registry
            if entity.get("config_entry_id") == entry_id and (entity.get("disabled_by") is not None) == disabled
        )

    async def add_wyoming(self, host: str, port: int, timeout: float = 30.0) -> WyomingEntry:
        """Add a Wyoming service with Home Assistant's Wyoming integration (see :meth:`add_integration`)."""
        return await self.add_integration("wyoming", host, port, timeout)

    async def add_integration(self, handler: str, host: str, port: int, timeout: float = 30.0) -> WyomingEntry:
        """Add a service with an integration's ``user`` config flow (host and port), as a user would.

        For ``wyoming`` (and ``chatty``) Home Assistant sends ``describe`` to ``host:port``, creates the entry
        (titled with the program's name) and its entities; returns once the entry is loaded and each enabled
        entity has a state. A form shown again with an error raises :class:`HomeAssistantError` with it.
        """
        flow = await self.rest("POST", "/api/config/config_entries/flow", {"handler": handler})
        if flow.get("type") != "form" or flow.get("step_id") != "user":
            raise HomeAssistantError(f"{handler} config flow: unexpected first step {flow}")
        result = await self.rest(
            "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"host": host, "port": port}
        )
        if result.get("type") != "create_entry":
            if result.get("type") == "form":  # shown again with an error: abort it, or it stays in progress
                with contextlib.suppress(HomeAssistantError):
                    await self.rest("DELETE", f"/api/config/config_entries/flow/{flow['flow_id']}")
            reason = result.get("errors") or result.get("reason")
            raise HomeAssistantError(f"{handler} {host}:{port} not added: {reason} ({result}){self.log_excerpt()}")
        entry = result["result"]
        return await self.loaded_entry(handler, entry["entry_id"], entry["title"], timeout)

    async def loaded_entry(self, domain: str, entry_id: str, title: str, timeout: float = 30.0) -> WyomingEntry:
        """A config entry once it is loaded and each of its enabled entities has a state."""
        deadline = time.monotonic() + timeout
        while True:
            entries = {item["entry_id"]: item for item in await self.config_entries(domain)}
            state = entries.get(entry_id, {}).get("state", "missing")
            entity_ids = await self.entity_ids(entry_id) if state == "loaded" else []
            states = await self.states() if entity_ids else {}
            if entity_ids and all(entity_id in states for entity_id in entity_ids):
                disabled = await self.entity_ids(entry_id, disabled=True)
                return WyomingEntry(entry_id, title, state, tuple(entity_ids), tuple(disabled))
            if time.monotonic() > deadline:
                raise HomeAssistantError(
                    f"{domain} entry {title!r}: state {state}, entities {entity_ids}{self.log_excerpt()}"
                )
            await asyncio.sleep(0.2)

    async def remove_entry(self, entry_id: str) -> None:
        """Delete a config entry (its entities go with it)."""
        await self.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")

    # Assist pipelines --------------------------------------------------------------------------------------

    async def _engine_language(self, kind: str, engine: str, language: str) -> str:
        """A language the engine supports that fits ``language``, chosen by Home Assistant's own matching."""
        if kind == "conversation":
            agents = (await self.ws_call("conversation/agent/list", language=language))["agents"]
            found = next((agent for agent in agents if agent["id"] == engine), None)
        else:
            providers = (await self.ws_call(f"{kind}/engine/list", language=language))["providers"]
            found = next((provider for provider in providers if provider["engine_id"] == engine), None)
        if found is None:
            raise HomeAssistantError(f"no {kind} engine {engine}")
        supported = found["supported_languages"]
        chosen = language if supported == "*" else pick_language(language, supported)
        if chosen is None:
            raise HomeAssistantError(f"{engine} supports none of {language!r}: {supported}")
        return chosen

    async def create_pipeline(
        self,
        name: str,
        *,
        stt_engine: str | None,
        tts_engine: str | None,
        conversation_engine: str = "conversation.home_assistant",
        language: str | None = None,
        stt_language: str | None = None,
        tts_language: str | None = None,
        tts_voice: str | None = None,
        conversation_language: str | None = None,
        wake_word_entity: str | None = None,
        wake_word_id: str | None = None,
        prefer_local_intents: bool = False,
        preferred: bool = False,
    ) -> str:
        """Create an Assist pipeline (``assist_pipeline/pipeline/create``) and return its id.

        Languages left out are chosen from what each engine supports that fits ``language`` (default: the
        harness's). ``preferred`` makes it the pipeline used when none is named (e.g. by satellites).
        """
        language = language or self.language
        if stt_engine and stt_language is None:
            stt_language = await self._engine_language("stt", stt_engine, language)
        if tts_engine and tts_language is None:
            tts_language = await self._engine_language("tts", tts_engine, language)
        if conversation_language is None:
            conversation_language = await self._engine_language("conversation", conversation_engine, language)
        pipeline = await self.ws_call(
            "assist_pipeline/pipeline/create",
            name=name,
            language=language,
            conversation_engine=conversation_engine,
            conversation_language=conversation_language,
            stt_engine=stt_engine,
            stt_language=stt_language,
            tts_engine=tts_engine,
            tts_language=tts_language,
            tts_voice=tts_voice,
            wake_word_entity=wake_word_entity,
            wake_word_id=wake_word_id,
            prefer_local_intents=prefer_local_intents,
        )
        if preferred:
            await self.ws_call("assist_pipeline/pipeline/set_preferred", pipeline_id=pipeline["id"])
        return pipeline["id"]

    async def pipeline_runs(self, pipeline_id: str) -> list[PipelineRun]:
        """The recent runs of a pipeline as Home Assistant recorded them (``assist_pipeline/pipeline_debug``).

        This shows the runs that others started, e.g. a satellite. Event times are Home Assistant's
        (``received`` is its timestamp in epoch seconds; ``started`` the first event's).
        """
        listing = await self.ws_call("assist_pipeline/pipeline_debug/list", pipeline_id=pipeline_id)
        runs = []
        for item in listing["pipeline_runs"]:
            debug = await self.ws_call(
                "assist_pipeline/pipeline_debug/get", pipeline_id=pipeline_id, pipeline_run_id=item["pipeline_run_id"]
            )
            events = [
                PipelineEvent(
                    event["type"], event.get("data") or {}, event["timestamp"],
                    datetime.fromisoformat(event["timestamp"]).timestamp(),
                )
                for event in debug["events"]
            ]  # fmt: skip
            runs.append(PipelineRun(events, started=events[0].received if events else 0.0))
        return runs

    async def run_pipeline(
        self,
        audio: bytes | None = None,
        *,
        pipeline_id: str | None = None,
        start_stage: str = "stt",
        end_stage: str = "tts",
        text: str | None = None,
        sample_rate: int = SAMPLE_RATE,
        trailing_silence: float = 0.0,
        chunk_seconds: float = 0.05,
        realtime: bool = False,
        conversation_id: str | None = None,
        device_id: str | None = None,
        timeout: float = 120.0,
    ) -> PipelineRun:
        """Run an Assist pipeline over the websocket (``assist_pipeline/run``) and return all its events.

        From ``stt``: ``audio`` is 16-bit mono PCM at ``sample_rate`` (Home Assistant resamples to 16 kHz).
        It is sent as binary messages prefixed with run-start's ``stt_binary_handler_id``, then ``trailing_silence``
        seconds of zeros, then an empty message that ends the stream; ``realtime`` paces it like a microphone.
        Home Assistant's VAD may end speech-to-text before the end of the audio. From ``intent`` or ``tts``:
        ``text`` is the input. Errors come back as an ``error`` event (see :meth:`PipelineRun.raise_for_error`).
        """
        if self.ws is None:
            raise HomeAssistantError("not started")
        message: dict[str, Any] = {"start_stage": start_stage, "end_stage": end_stage, "timeout": timeout}
        if start_stage in ("wake_word", "stt"):
            if audio is None:
                raise ValueError(f"a run from {start_stage} needs audio")
            message["input"] = {"sample_rate": sample_rate}
        else:
            if text is None:
                raise ValueError(f"a run from {start_stage} needs text")
            message["input"] = {"text": text}
        if pipeline_id is not None:
            message["pipeline"] = pipeline_id
        if conversation_id is not None:
            message["conversation_id"] = conversation_id
        if device_id is not None:
            message["device_id"] = device_id

        run = PipelineRun(started=time.monotonic())
        subscription = await self.ws.subscribe("assist_pipeline/run", **message)
        sender: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(timeout + 10):
                while True:
                    event, received = await subscription.next()
                    run.events.append(
                        PipelineEvent(event["type"], event.get("data") or {}, event.get("timestamp", ""), received)
                    )
                    if event["type"] == "run-start" and audio is not None and sender is None:
                        handler = event["data"]["runner_data"]["stt_binary_handler_id"]
                        audio = audio + bytes(2 * int(trailing_silence * sample_rate))
                        sender = asyncio.create_task(
                            self._send_audio(run, handler, audio, sample_rate, chunk_seconds, realtime)
                        )
                    if event["type"] == "run-end":
                        break
        except TimeoutError:
            raise HomeAssistantError(
                f"pipeline run: no run-end in {timeout + 10} s (events: {run.types}){self.log_excerpt()}"
            ) from None
        finally:
            self.ws.subscriptions.pop(subscription.id, None)
            if sender is not None and not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        if sender is not None and sender.done() and not sender.cancelled() and sender.exception():
            raise HomeAssistantError(f"sending audio failed: {sender.exception()!r}")
        return run

    async def _send_audio(
        self, run: PipelineRun, handler: int, audio: bytes, sample_rate: int, chunk_seconds: float, realtime: bool
    ) -> None:
        assert self.ws is not None
        prefix = bytes([handler])
        step = max(2, int(chunk_seconds * sample_rate) * 2)
        began = time.monotonic()
        for offset in range(0, len(audio), step):
            await self.ws.send_bytes(prefix + audio[offset : offset + step])
            if realtime:
                ahead = began + (offset + step) / 2 / sample_rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await self.ws.send_bytes(prefix)  # an empty chunk: the end of the audio
        run.audio_sent = time.monotonic()


class HaSatellite:
    """Our satellite in Home Assistant mode as its own process, added to Home Assistant as a device."""

    def __init__(self, tmp_path: Path, mic: bytes | LiveMic, *extra_args: str) -> None:
        """``mic``: what its microphone hears (16 kHz 16-bit mono, played in at real time, then silence), or a
        live microphone the test speaks into as it goes."""
        self.port = free_port()
        self.metrics = tmp_path / "turns.jsonl"
        self.speaker = tmp_path / "speaker.wav"
        self.log_path = tmp_path / "satellite.log"
        mic_args = ["--mic-file", str(write_wav(tmp_path / "mic.wav", mic))] if isinstance(mic, bytes) else mic.args
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "satellite", "--mode", "ha",
             "--uri", f"tcp://127.0.0.1:{self.port}", *mic_args, "--snd-file", str(self.speaker),
             "--metrics-file", str(self.metrics), "--name", "kitchen", "--no-follow-up", *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def join(self, ha: HomeAssistant) -> str:
        """Add it to Home Assistant (retrying while it starts); returns its assist_satellite entity."""
        deadline = time.monotonic() + 30
        while True:
            try:
                entry = await ha.add_wyoming("127.0.0.1", self.port)
                break
            except HomeAssistantError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                await asyncio.sleep(0.5)
        # With a satellite in its info, Home Assistant sets it up as a device, not as services.
        assert not entry.entities("stt") and not entry.entities("tts")
        [entity] = entry.entities("assist_satellite")
        return entity

    def turns(self) -> list[dict]:
        """The turns it logged so far (its metrics file)."""
        text = self.metrics.read_text() if self.metrics.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    async def wait_for_turns(self, count: int, timeout: float) -> list[dict]:
        """The turns, once ``count`` are logged; fails if it exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while len(turns := self.turns()) < count:
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            await asyncio.sleep(0.2)
        return turns

    def stop(self) -> None:
        """Stop it (SIGTERM) and close its log."""
        self.process.terminate()
        self.process.wait(20)
        self._log.close()

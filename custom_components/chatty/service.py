"""What a Wyoming service offers Chatty, read from its ``info``: an agent, text-to-speech, speech-to-text.

The raw event data is read rather than ``wyoming.info.Info`` so that the same code works with the
wyoming library of every Home Assistant release this integration supports (1.5.4 has no streaming
fields).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from .const import DESCRIBE_TIMEOUT


class CannotConnect(Exception):
    """The service did not answer ``describe`` with ``info``."""


@dataclass(frozen=True)
class AgentInfo:
    """An installed handle program (a conversation agent)."""

    name: str
    version: str | None
    model: str | None
    languages: tuple[str, ...]
    streaming: bool  # sends handled-chunk events as it writes


@dataclass(frozen=True)
class VoiceInfo:
    """One voice of a text-to-speech program: installed, or one Chatty's TTS server downloads when asked for it."""

    name: str
    description: str
    languages: tuple[str, ...]
    installed: bool = True


@dataclass(frozen=True)
class TtsInfo:
    """An installed text-to-speech program."""

    name: str
    version: str | None
    streaming: bool  # accepts synthesize-start/chunk/stop
    voices: tuple[VoiceInfo, ...]
    prepares: bool = False  # Chatty's own server: makes and keeps an answer's first words on request

    @property
    def languages(self) -> list[str]:
        """Every language some voice speaks, in the order the voices list them."""
        return list(dict.fromkeys(language for voice in self.voices for language in voice.languages))


@dataclass(frozen=True)
class SttInfo:
    """An installed speech-to-text (asr) program."""

    name: str
    version: str | None
    languages: tuple[str, ...]
    candidates: bool  # Chatty's STT server: offers the transcript at a pause (chatty-candidate)


@dataclass(frozen=True)
class ServiceInfo:
    """The parts of a service's ``info`` this integration uses."""

    agent: AgentInfo | None
    tts: TtsInfo | None
    stt: SttInfo | None
    is_satellite: bool

    @property
    def usable(self) -> bool:
        """Does it offer anything this integration makes an entity of?"""
        return not self.is_satellite and (self.agent is not None or self.tts is not None or self.stt is not None)

    @property
    def title(self) -> str:
        """A name for the config entry and its device: the program's name."""
        for program in (self.agent, self.tts, self.stt):
            if program is not None:
                return program.name
        return "Chatty"


def _installed(programs: Any) -> list[dict[str, Any]]:
    if not isinstance(programs, list):
        return []
    return [p for p in programs if isinstance(p, dict) and p.get("installed") and isinstance(p.get("name"), str)]


def _languages(item: dict[str, Any]) -> tuple[str, ...]:
    languages = item.get("languages")
    return tuple(lang for lang in languages if isinstance(lang, str)) if isinstance(languages, list) else ()


def _voices(voices: Any, *, fetches: bool) -> tuple[VoiceInfo, ...]:
    """The installed voices, then (from a server that fetches voices on first use) those it would fetch."""
    if not isinstance(voices, list):
        return ()
    listed = [v for v in voices if isinstance(v, dict) and isinstance(v.get("name"), str)]
    return tuple(
        VoiceInfo(voice["name"], voice.get("description") or voice["name"], _languages(voice), installed)
        for installed in (True, False)
        for voice in listed
        if bool(voice.get("installed")) is installed and (installed or fetches)
    )


def _chatty(program: dict[str, Any]) -> bool:
    """Is this one of Chatty's own servers (which fetch voices, offer candidates, prepare first words)?"""
    return str(program["name"]).startswith("chatty")


def parse_info(data: dict[str, Any]) -> ServiceInfo:
    """The first installed handle program and text-to-speech program of an ``info`` event's data."""
    agent = None
    if handles := _installed(data.get("handle")):
        program = handles[0]
        models = _installed(program.get("models"))
        agent = AgentInfo(
            name=program["name"],
            version=program.get("version"),
            model=models[0]["name"] if models else None,
            languages=tuple(dict.fromkeys(lang for model in models for lang in _languages(model))),
            streaming=bool(program.get("supports_handled_streaming")),
        )
    tts = None
    if programs := _installed(data.get("tts")):
        program = programs[0]
        tts = TtsInfo(
            name=program["name"],
            version=program.get("version"),
            streaming=bool(program.get("supports_synthesize_streaming")),
            voices=_voices(program.get("voices"), fetches=_chatty(program)),
            prepares=_chatty(program),
        )
    stt = None
    if programs := _installed(data.get("asr")):
        program = programs[0]
        stt = SttInfo(
            name=program["name"],
            version=program.get("version"),
            languages=tuple(
                dict.fromkeys(lang for model in _installed(program.get("models")) for lang in _languages(model))
            ),
            candidates=_chatty(program),
        )
    satellite = data.get("satellite")
    return ServiceInfo(agent, tts, stt, isinstance(satellite, dict) and bool(satellite.get("installed")))


async def async_describe(host: str, port: int, timeout: float = DESCRIBE_TIMEOUT) -> ServiceInfo:
    """Ask ``host:port`` what it offers; raises :class:`CannotConnect` when it does not answer in time."""
    try:
        async with asyncio.timeout(timeout), AsyncTcpClient(host, port) as client:
            await client.write_event(Event("describe"))
            while (event := await client.read_event()) is not None:
                if event.type == "info":
                    return parse_info(event.data)
    except (OSError, TimeoutError, ValueError) as err:
        raise CannotConnect(f"{host}:{port}: {err or type(err).__name__}") from err
    raise CannotConnect(f"{host}:{port} closed the connection without info")

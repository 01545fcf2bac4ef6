"""The Wyoming exchanges of the integration: a question to an agent, text to speech, speech to text.

Each opens its own connection and closes it when the caller is done or stops reading, so a pipeline
that Home Assistant cancels stops the server's work too (our servers cancel a generation or a
synthesis when the client goes away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from wyoming.client import AsyncTcpClient
from wyoming.event import Event

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
# Chatty's extensions of the protocol (other servers ignore them): see the servers' handlers.
COMMIT = "chatty-commit"  # LLM: keep this connection's speculative answer in the conversation's memory
CANDIDATE = "chatty-candidate"  # STT: what the transcript will be if the speaker is done
CANDIDATE_PAUSE = 0.1  # seconds of silence after which Chatty's STT server offers a candidate


class ServiceError(Exception):
    """The service sent an ``error`` event, or closed the connection before it was done."""


class ServiceUnreachable(ServiceError):
    """No connection to the service could be opened."""


async def async_connect(host: str, port: int) -> AsyncTcpClient:
    """An open connection; raises :class:`ServiceUnreachable`."""
    client = AsyncTcpClient(host, port)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await client.connect()
    except (OSError, TimeoutError) as err:
        raise ServiceUnreachable(f"cannot connect to {host}:{port}: {err or type(err).__name__}") from err
    return client


async def _close(client: AsyncTcpClient, task: asyncio.Task[None] | None = None) -> None:
    """Stop the task that works on a connection (if any) and close the connection, even a broken one."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    with contextlib.suppress(OSError):
        await client.disconnect()


async def _read(client: AsyncTcpClient, timeout: float) -> Event:
    """The next event; raises :class:`ServiceError` when the connection ended, ``TimeoutError`` after ``timeout``."""
    async with asyncio.timeout(timeout):
        event = await client.read_event()
    if event is None:
        raise ServiceError("the service closed the connection before it was done")
    return event


# The agent ------------------------------------------------------------------------------------------------------


class ReplyKind(Enum):
    """What a piece of an agent's reply is."""

    CHUNK = "chunk"  # more of the answer, as it is written
    ANSWER = "answer"  # the whole answer (handled): the turn is over
    FAILURE = "failure"  # a sentence saying why there is no answer (not-handled): the turn is over


@dataclass(frozen=True)
class Reply:
    """One piece of an agent's reply."""

    kind: ReplyKind
    text: str
    stopped: bool = False  # the last reply of an answer its listener stopped (Chatty's LLM server says so)


def _stopped(data: dict[str, Any]) -> bool:
    """Does an answer's last event say that its listener stopped it (``"chatty": {"stopped": true}``)?"""
    extension = data.get("chatty")
    return isinstance(extension, dict) and extension.get("stopped") is True


class AgentTurn:
    """One question to a Wyoming handle program, on a connection of its own.

    ``speculative`` asks Chatty's LLM server to keep the answer out of the conversation's memory
    until :meth:`commit` (the question may not be the one that will be asked).
    """

    def __init__(
        self,
        host: str,
        port: int,
        text: str,
        *,
        context: dict[str, Any],
        language: str | None,
        timeout: float,
        speculative: bool = False,
    ) -> None:
        self.host, self.port, self.text = host, port, text
        self._data: dict[str, Any] = {"text": text, "context": context}
        if language:
            self._data["language"] = language
        if speculative:
            self._data["chatty"] = {"speculative": True}
        self._timeout = timeout
        self._client: AsyncTcpClient | None = None

    async def ask(self) -> None:
        """Connect and send the question; raises :class:`ServiceUnreachable`."""
        self._client = await async_connect(self.host, self.port)
        await self._client.write_event(Event("transcript", self._data))

    async def replies(self) -> AsyncGenerator[Reply]:
        """The reply as it arrives: chunks, then the answer or the failure (then it ends).

        Raises :class:`ServiceError` (or ``OSError``, ``TimeoutError``) when the exchange breaks.
        """
        assert self._client is not None
        while True:
            event = await _read(self._client, self._timeout)
            data = event.data or {}
            text = data.get("text")
            text = text if isinstance(text, str) else ""
            if event.type == "handled-chunk":
                if text:
                    yield Reply(ReplyKind.CHUNK, text)
            elif event.type == "handled":
                yield Reply(ReplyKind.ANSWER, text, _stopped(data))
                return
            elif event.type == "not-handled":
                yield Reply(ReplyKind.FAILURE, text, _stopped(data))
                return
            elif event.type == "error":
                raise ServiceError(text or "the agent reported an error")

    async def commit(self) -> None:
        """Keep a speculative answer in the conversation's memory (before or after it is done)."""
        if self._client is not None:
            with contextlib.suppress(OSError):
                await self._client.write_event(Event(COMMIT))

    async def close(self) -> None:
        """Hang up; an answer still being written is abandoned."""
        if self._client is not None:
            client, self._client = self._client, None
            await _close(client)


# Text to speech -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFormat:
    """The format of a TTS program's audio (``audio-start``)."""

    rate: int
    width: int
    channels: int


async def async_synthesize(
    client: AsyncTcpClient,
    text: AsyncIterable[str],
    *,
    voice: str | None,
    streaming: bool,
    timeout: float,
) -> AsyncGenerator[AudioFormat | bytes]:
    """Speak text as it arrives: yields the audio's format once, then PCM as it is synthesized.

    ``streaming`` servers get each piece of text as it comes (``synthesize-start``/``-chunk``/``-stop``,
    plus the whole text in ``synthesize`` for servers that read only that, as Home Assistant does);
    others get the whole text at once. The audio ends at ``synthesize-stopped`` (streaming) or at the
    first ``audio-stop``. The connection (:func:`async_connect`) is closed at the end.
    """
    voice_data = {"voice": {"name": voice}} if voice else {}
    writer: asyncio.Task[None] | None = None
    try:
        if streaming:
            writer = asyncio.create_task(_write_text_stream(client, text, voice_data), name="chatty tts text")
        else:
            whole = "".join([piece async for piece in text])
            await client.write_event(Event("synthesize", {"text": whole, **voice_data}))
        audio_format: AudioFormat | None = None
        while True:
            event = await _read(client, timeout)
            data = event.data or {}
            if event.type in ("audio-start", "audio-chunk") and audio_format is None:
                audio_format = AudioFormat(int(data["rate"]), int(data["width"]), int(data["channels"]))
                yield audio_format
            if event.type == "audio-chunk" and event.payload:
                yield event.payload
            elif event.type == "synthesize-stopped" or (event.type == "audio-stop" and not streaming):
                return
            elif event.type == "error":
                raise ServiceError(str(data.get("text") or "the text-to-speech service reported an error"))
    finally:
        await _close(client, writer)


async def _write_text_stream(
    client: AsyncTcpClient,
    text: AsyncIterable[str],
    voice_data: dict[str, Any],
    extension: dict[str, Any] | None = None,
) -> None:
    start = {**voice_data, **({"chatty": extension} if extension else {})}
    await client.write_event(Event("synthesize-start", start))
    whole = ""
    async for piece in text:
        if piece:
            whole += piece
            await client.write_event(Event("synthesize-chunk", {"text": piece}))
    if extension is None:  # the whole text, for servers that read only that (as Home Assistant sends it)
        await client.write_event(Event("synthesize", {"text": whole, **voice_data}))
    await client.write_event(Event("synthesize-stop"))


async def async_prepare_speech(
    host: str, port: int, text: AsyncIterable[str], *, voice: str | None, timeout: float
) -> None:
    """Have Chatty's TTS server make the first piece of this text now, to be spoken when it is asked for.

    The server keeps that audio a minute; no audio comes back. Returns when it is made.
    """
    voice_data = {"voice": {"name": voice}} if voice else {}
    client = await async_connect(host, port)
    writer = asyncio.create_task(
        _write_text_stream(client, text, voice_data, {"prepare": True}), name="chatty tts prepare"
    )
    try:
        while (event := await _read(client, timeout)).type != "synthesize-stopped":
            if event.type == "error":
                raise ServiceError(str((event.data or {}).get("text") or "the text-to-speech service failed"))
    finally:
        await _close(client, writer)


# Speech to text -------------------------------------------------------------------------------------------------


async def async_transcribe(
    host: str,
    port: int,
    audio: AsyncIterable[bytes],
    *,
    language: str | None,
    on_candidate: Callable[[str], None] | None,
    timeout: float,
) -> str:
    """Stream 16 kHz 16-bit mono audio; returns the transcript. ``on_candidate`` gets Chatty's candidates.

    The events are read while the audio is still being sent, so a candidate (the transcript if the
    speaker is done, sent by Chatty's STT server at a pause) arrives when it is made.
    """
    client = await async_connect(host, port)
    fmt = {"rate": 16000, "width": 2, "channels": 1}
    transcript: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        while True:
            event = await client.read_event()
            if event is None:
                raise ServiceError("the speech-to-text service closed the connection before the transcript")
            data = event.data or {}
            if event.type == CANDIDATE and on_candidate is not None and isinstance(data.get("text"), str):
                on_candidate(data["text"])
            elif event.type == "transcript":
                transcript.set_result(str(data.get("text") or ""))
                return
            elif event.type == "error":
                raise ServiceError(str(data.get("text") or "the speech-to-text service reported an error"))

    reader = asyncio.create_task(read(), name="chatty stt events")
    try:
        # Candidates after a 0.1 s pause (the server's own decode waits 0.2 s): the answer begins sooner.
        transcribe: dict[str, Any] = {"chatty": {"candidates": True, "pause": CANDIDATE_PAUSE}} if on_candidate else {}
        if language:
            transcribe["language"] = language
        await client.write_event(Event("transcribe", transcribe))
        await client.write_event(Event("audio-start", fmt))
        async for chunk in audio:
            if reader.done():
                break
            await client.write_event(Event("audio-chunk", fmt, payload=chunk))
        if not reader.done():
            await client.write_event(Event("audio-stop"))
        async with asyncio.timeout(timeout):
            await asyncio.wait([reader])
        reader.result()  # raises what broke the exchange
        return transcript.result()
    finally:
        await _close(client, reader)

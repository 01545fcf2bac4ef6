"""A Wyoming event reader with explicit limits, and a handler base class that uses it.

The ``wyoming`` library's reader trusts ``data_length`` and ``payload_length``:
a client that announces a gigabyte makes the server wait for (and buffer) a
gigabyte. Chatty's servers read every event through :func:`read_event`, which
rejects anything over :class:`EventLimits` before reading it, and turn every
problem into an ``error`` event followed by a clean close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any

from wyoming import __version__ as WYOMING_VERSION
from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncEventHandler

from .heap import release_free_memory_soon

_LOGGER = logging.getLogger(__name__)

LINGER_SECONDS = 2.0  # after rejecting a request: how long to drain the client's input before closing
LINGER_BYTES = 4 * 1024 * 1024
MAX_EVENTS_PER_WRITE = 32  # events queued behind each other go out in one write, up to this many
KIB = 1024
MIB = 1024 * KIB


def chatty_flag(event: Event, name: str) -> bool:
    """Is ``name`` set in the event's Chatty extension (``"chatty": {name: true}``), which other programs ignore?"""
    extension = event.data.get("chatty")
    return isinstance(extension, dict) and extension.get(name) is True


@dataclass(frozen=True)
class EventLimits:
    """Largest parts of one incoming event that a server accepts."""

    max_line_bytes: int = 64 * KIB
    """The JSON header line (asyncio's stream limit is the same 64 KiB)."""

    max_data_bytes: int = 1 * MIB
    """The additional JSON data announced by ``data_length``."""

    max_payload_bytes: int = 1 * MIB
    """The binary payload announced by ``payload_length`` (32 s of 16 kHz audio)."""


DEFAULT_LIMITS = EventLimits()


class RequestError(Exception):
    """A client's request cannot be served; sent to it as an ``error`` event."""

    def __init__(self, text: str, code: str = "bad-request") -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class ClientGone(Exception):
    """The client closed the connection in the middle of an event."""


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{key} must be a whole number, got {value!r}", "protocol-error")
    if value < 0:
        raise RequestError(f"{key} must not be negative, got {value}", "protocol-error")
    if value > limit:
        raise RequestError(f"{key} {value} is over this server's limit of {limit} bytes", "too-large")
    return value


async def _read_exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError as err:
        raise ClientGone(f"connection closed after {len(err.partial)} of {count} bytes") from err


async def read_event(reader: asyncio.StreamReader, limits: EventLimits = DEFAULT_LIMITS) -> Event | None:
    """Read one event; None at a clean end of stream.

    Raises :class:`RequestError` for a malformed or oversized event and
    :class:`ClientGone` when the stream ends inside an event.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            return None
        raise ClientGone("connection closed inside an event header") from err
    except asyncio.LimitOverrunError as err:
        raise RequestError(f"event header line is longer than {limits.max_line_bytes} bytes", "too-large") from err

    if len(line) > limits.max_line_bytes:
        raise RequestError(f"event header line is longer than {limits.max_line_bytes} bytes", "too-large")

    try:
        header = json.loads(line)
    except ValueError as err:
        raise RequestError(f"event header is not valid JSON: {err}", "protocol-error") from err
    except RecursionError as err:  # "[[[[…" nested deeper than the JSON parser goes
        raise RequestError("event header is nested too deeply", "protocol-error") from err
    if not isinstance(header, dict):
        raise RequestError("event header must be a JSON object", "protocol-error")

    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise RequestError("event header has no 'type' string", "protocol-error")

    data = header.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RequestError("event 'data' must be a JSON object", "protocol-error")

    data_length = _length(header, "data_length", limits.max_data_bytes)
    payload_length = _length(header, "payload_length", limits.max_payload_bytes)

    if data_length:
        data_bytes = await _read_exactly(reader, data_length)
        try:
            extra = json.loads(data_bytes)
        except ValueError as err:
            raise RequestError(f"event data is not valid JSON: {err}", "protocol-error") from err
        except RecursionError as err:
            raise RequestError("event data is nested too deeply", "protocol-error") from err
        if not isinstance(extra, dict):
            raise RequestError("event data must be a JSON object", "protocol-error")
        data.update(extra)

    payload = await _read_exactly(reader, payload_length) if payload_length else None
    return Event(type=event_type, data=data, payload=payload)


def encode_event(event: Event) -> bytes:
    """The event as the ``wyoming`` library writes it (header line, data, payload), in one buffer.

    One buffer means one write and usually one TCP segment per event; the library
    writes the header and the data separately.
    """
    header: dict[str, Any] = {"type": event.type, "version": WYOMING_VERSION}
    data_bytes = json.dumps(event.data, ensure_ascii=False).encode("utf-8") if event.data else b""
    if data_bytes:
        header["data_length"] = len(data_bytes)
    if event.payload:
        header["payload_length"] = len(event.payload)
    parts = [json.dumps(header, ensure_ascii=False).encode("utf-8"), b"\n", data_bytes]
    if event.payload:
        parts.append(event.payload)
    return b"".join(parts)


def limit_send_buffer(writer: asyncio.StreamWriter, size: int) -> None:
    """Cap the kernel's send buffer for this connection (TCP only).

    Linux grows a socket's send buffer up to megabytes; a server that streams audio
    to a client that stopped reading would fill it with minutes of speech first.
    """
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class LimitedEventHandler(AsyncEventHandler):
    """Base class for Chatty's per-connection handlers.

    Reads events through :func:`read_event`. Outgoing events go through one
    ordered outbox (:meth:`send`), so events produced by background work (a
    partial transcript, a synthesized sentence) never overtake or interleave
    with the replies of ``handle_event``. A :class:`RequestError`, raised by
    the reader or by ``handle_event``, is sent as an ``error`` event and the
    connection is closed; an unexpected exception is logged, reported as an
    internal error, and also closes only this connection. The server keeps
    serving everyone else.
    """

    limits: EventLimits = DEFAULT_LIMITS
    close_timeout: float = 5.0
    """Seconds to let queued events reach the client before closing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self._outbox: asyncio.Queue[Event] = asyncio.Queue()
        self._room = asyncio.Event()
        self._client_gone = False

    def send(self, event: Event) -> None:
        """Queue an event for the client, after everything queued before it."""
        self._outbox.put_nowait(event)

    def close(self) -> None:
        """Stop reading and close the connection (say, because another one took its place)."""
        self._is_running = False
        self.writer.close()

    async def wait_for_room(self, max_queued: int) -> None:
        """Wait until at most ``max_queued`` events wait to be written (a slow client holds back producers)."""
        while self._outbox.qsize() > max_queued and not self._client_gone:
            self._room.clear()
            await self._room.wait()

    async def _send_loop(self) -> None:
        while True:
            events = [await self._outbox.get()]
            while not self._outbox.empty() and len(events) < MAX_EVENTS_PER_WRITE:  # what queued up meanwhile
                events.append(self._outbox.get_nowait())
            try:
                if not self._client_gone:
                    self.writer.write(b"".join(encode_event(event) for event in events))
                    await self.writer.drain()
            except (ConnectionError, RuntimeError) as err:
                _LOGGER.debug("Could not write to client: %s", err)
                self._client_gone = True
            finally:
                for _ in events:
                    self._outbox.task_done()
                self._room.set()

    async def run(self) -> None:
        self._is_running = True
        rejected = False
        sender = asyncio.create_task(self._send_loop(), name="wyoming event sender")
        try:
            while self._is_running:
                try:
                    event = await read_event(self.reader, self.limits)
                    if event is None:
                        break
                    if not await self.handle_event(event):
                        break
                except RequestError as err:
                    _LOGGER.info("Rejected a client request: %s", err.text)
                    self.send(Error(text=err.text, code=err.code).event())
                    rejected = True
                    break
                except (ClientGone, ConnectionError) as err:
                    _LOGGER.debug("Client went away: %s", err)
                    self._client_gone = True
                    break
                except Exception:
                    _LOGGER.exception("Unexpected error while handling a client")
                    self.send(Error(text="internal server error (see the server log)", code="internal").event())
                    break
        finally:
            await self.disconnect()
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose a cancellation (a shutdown).
                async with asyncio.timeout(self.close_timeout):
                    await self._outbox.join()
            except TimeoutError:
                _LOGGER.debug("Client did not take its last events in time")
            sender.cancel()
            if rejected and not self._client_gone:
                await self._linger()
            self.writer.close()
            release_free_memory_soon()  # whatever the connection held, the client gone mid-request too

    async def _linger(self) -> None:
        """Half-close, then read and drop what the client still sends, for a moment.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy the error event on its way to the client (say, after an
        oversized event whose rest is still arriving). This way it gets the
        error, then the end of the stream.
        """
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            dropped = 0
            async with asyncio.timeout(LINGER_SECONDS):
                while dropped < LINGER_BYTES and (chunk := await self.reader.read(64 * KIB)):
                    dropped += len(chunk)

"""Which of the satellite server's connections is Home Assistant's, and what goes to it.

Any connection gets ``info`` and ``pong``; the one that sent ``run-satellite`` last is Home
Assistant's, the one the satellite talks to. So a probe, a health check or a client sending
garbage never cuts Home Assistant off, and a reconnecting Home Assistant takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.satellite import RunSatellite

from chatty_common.protocol import LimitedEventHandler

_LOGGER = logging.getLogger(__name__)


class HaConnection(LimitedEventHandler):
    """One connection to the satellite's server; its events go to the :class:`HaLink`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, link: HaLink) -> None:
        super().__init__(reader, writer)
        self.link = link

    async def handle_event(self, event: Event) -> bool:
        self.link.on_event(self, event)
        return True

    async def disconnect(self) -> None:
        self.link.on_disconnect(self)


class HaLink:
    """Home Assistant's connection: answers anyone's ``describe`` and ``ping``, passes Home Assistant's
    other events to ``handle``, and says when it went away (``disconnected``)."""

    def __init__(self, info: Info, handle: Callable[[Event], None], disconnected: Callable[[], None]) -> None:
        self.info = info
        self.handle = handle
        self.disconnected = disconnected
        self.connection: HaConnection | None = None

    @property
    def connected(self) -> bool:
        return self.connection is not None

    def send(self, event: Event) -> None:
        """To Home Assistant, if it is connected (else dropped: a new connection starts afresh)."""
        if self.connection is not None:
            self.connection.send(event)

    def on_event(self, connection: HaConnection, event: Event) -> None:
        if Describe.is_type(event.type):
            connection.send(self.info.event())
            return
        if Ping.is_type(event.type):
            connection.send(Pong(text=Ping.from_event(event).text).event())
            return
        if connection is not self.connection:
            if not RunSatellite.is_type(event.type):
                _LOGGER.debug("Ignoring %s from a connection that is not Home Assistant's", event.type)
                return
            if self.connection is not None:
                _LOGGER.info("A new Home Assistant connection replaces the old one")
                self.connection.close()
                self.connection = None
                self.disconnected()
            self.connection = connection
            _LOGGER.info("Home Assistant connected")
        self.handle(event)

    def on_disconnect(self, connection: HaConnection) -> None:
        if self.connection is not connection:
            return
        _LOGGER.info("Home Assistant disconnected")
        self.connection = None
        self.disconnected()

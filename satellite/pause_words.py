"""Where Home Assistant mode gets the words of a command's pauses: Chatty's STT server, found in the background.

Home Assistant sends its transcript only after the command has ended, so the satellite streams each
command to the STT server as well (:class:`satellite.command_words.CommandWords`), which transcribes
it at each pause. The server is looked up in the background (zeroconf can take seconds); until it
is known there are no words and the pauses are not judged (the silence rule ends the command),
without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time

from wyoming.client import AsyncClient

from .command_words import CommandWords
from .services import Services, ServiceUnavailable

_LOGGER = logging.getLogger(__name__)

LOOK_AGAIN = 30.0  # seconds between lookups of a server that could not be found or reached


class PauseWords:
    """Opens a live transcription for each command, on the STT server once it is known; None until then."""

    def __init__(self, services: Services, pause: float, language: str | None = None) -> None:
        self._services = services
        self._pause = pause
        self._language = language
        self._uri: str | None = None
        self._looked_at = -LOOK_AGAIN
        self._lookup: asyncio.Task[None] | None = None

    def look_up(self) -> None:
        """Find the server in the background (again, if the last try is long enough ago)."""
        if self._lookup is not None and not self._lookup.done():
            return
        if time.monotonic() - self._looked_at < LOOK_AGAIN:
            return
        self._looked_at = time.monotonic()
        self._lookup = asyncio.create_task(self._find(), name="find the STT server")

    async def _find(self) -> None:
        try:
            self._uri = await self._services.find("stt")
            _LOGGER.info("Judging pauses with the words from the STT server %s", self._uri)
        except ServiceUnavailable as err:
            _LOGGER.warning("%s; pauses end by silence until it is found", err)

    def open(self) -> CommandWords | None:
        """A live transcription for the command starting now (None: no server known yet)."""
        uri = self._uri
        if uri is None:
            self.look_up()
            return None
        return CommandWords(lambda: self._connect(uri), self._language, self._pause)

    async def _connect(self, uri: str) -> AsyncClient:
        client = AsyncClient.from_uri(uri)
        try:
            await client.connect()
        except OSError:
            if self._uri == uri:
                self._uri = None  # it may have moved: look it up again
                self.look_up()
            raise
        return client

    async def close(self) -> None:
        if self._lookup is not None:
            self._lookup.cancel()
            await asyncio.wait({self._lookup}, timeout=1.0)

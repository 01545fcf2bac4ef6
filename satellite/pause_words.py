"""Where Home Assistant mode gets the words of a command's pauses: Chatty's STT server, found in the background.

Home Assistant sends its transcript only after the command has ended, so the satellite streams each
command to the STT server as well (:class:`satellite.command_words.CommandWords`), which transcribes
it at each pause. The server is looked up in the background (zeroconf can take seconds); until it
is known there are no words and the pauses are not judged (the silence rule ends the command),
without waiting.
"""

from __future__ import annotations

import logging

from wyoming.client import AsyncClient

from .command_words import CommandWords
from .services import BackgroundLookup, Services

_LOGGER = logging.getLogger(__name__)


class PauseWords:
    """Opens a live transcription for each command, on the STT server once it is known; None until then."""

    def __init__(self, services: Services, pause: float, language: str | None = None) -> None:
        self._services = services
        self._pause = pause
        self.language = language
        """The language the STT server is told (None: it detects it); Home Assistant mode sets the pipeline's."""
        self._lookup = BackgroundLookup(services, "stt", "pauses end by silence until it is found")
        self._used: str | None = None  # the server's address the last command's words came from

    def look_up(self) -> None:
        """Find the server in the background (again, if the last try is long enough ago)."""
        self._lookup.start()

    def open(self) -> CommandWords | None:
        """A live transcription for the command starting now (None: no server known yet)."""
        uri = self._services.address("stt")
        if uri is None:
            self.look_up()
            return None
        if uri != self._used:
            self._used = uri
            _LOGGER.info("Judging pauses with the words from the STT server %s", uri)
        return CommandWords(lambda: self._connect(uri), self.language, self._pause)

    async def _connect(self, uri: str) -> AsyncClient:
        client = AsyncClient.from_uri(uri)
        try:
            await client.connect()
        except OSError:
            if self._services.address("stt") == uri:
                self._services.forget("stt")  # it may have moved: look it up again
                self.look_up()
            raise
        return client

    async def close(self) -> None:
        await self._lookup.close()

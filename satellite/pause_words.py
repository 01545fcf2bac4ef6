"""Where Home Assistant mode gets the words of a command's pauses: Chatty's STT server, found in the background.

Home Assistant sends its transcript only after the command has ended, so the satellite streams each
command to the STT server as well (:class:`satellite.command_words.CommandWords`), which transcribes
it at each pause. The server is looked up in the background (zeroconf can take seconds); until it
is known there are no words and the pauses are not judged (the silence rule ends the command),
without waiting. Commands are transcribed in ``--language``, else in the language of Home Assistant's
pipeline once it has said it and the server is seen to transcribe it (its ``info``), else in the
language the server detects.
"""

from __future__ import annotations

import asyncio
import logging

from wyoming.client import AsyncClient
from wyoming.info import Describe, Info

from .command_words import CommandWords
from .services import BackgroundLookup, Services
from .turn_text import language_code

_LOGGER = logging.getLogger(__name__)

DESCRIBE_TIMEOUT = 3.0  # s to ask the STT server which languages it transcribes


class PauseWords:
    """Opens a live transcription for each command, on the STT server once it is known; None until then."""

    def __init__(self, services: Services, pause: float, language: str | None = None) -> None:
        self._services = services
        self._pause = pause
        self._language = language  # --language
        self._pipeline: str | None = None  # the language Home Assistant's pipeline speaks
        self._languages: dict[str, frozenset[str]] = {}  # what each server (address) transcribes
        self._describing: asyncio.Task[None] | None = None
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
        return CommandWords(lambda: self._connect(uri), self._language or self._pipeline_language(uri), self._pause)

    def follow(self, language: str | None) -> None:
        """Home Assistant's pipeline speaks ``language``: the next commands are transcribed in it (unless
        ``--language`` says otherwise) when the STT server transcribes it; a server for English only that
        were told "de" would refuse every command, and the pauses would go unjudged."""
        self._pipeline = language
        if language is not None and self._language is None and (uri := self._services.address("stt")) is not None:
            self._pipeline_language(uri)  # (asks the server what it transcribes now, before the next command)

    def _pipeline_language(self, uri: str) -> str | None:
        if self._pipeline is None:
            return None
        languages = self._languages.get(uri)
        if languages is None:
            if self._describing is None or self._describing.done():
                self._describing = asyncio.create_task(self._describe(uri), name="the STT server's languages")
            return None
        return self._pipeline if language_code(self._pipeline) in languages else None

    async def _describe(self, uri: str) -> None:
        languages: frozenset[str] = frozenset()
        try:
            async with asyncio.timeout(DESCRIBE_TIMEOUT):
                client = await self._connect(uri)
                try:
                    await client.write_event(Describe().event())
                    while (event := await client.read_event()) is not None and not Info.is_type(event.type):
                        pass
                finally:
                    await client.disconnect()
            if event is not None:
                asr = Info.from_event(event).asr
                languages = frozenset(code for program in asr for model in program.models for code in model.languages)
        except (OSError, TimeoutError) as err:
            _LOGGER.debug("Could not ask the STT server %s which languages it transcribes: %s", uri, err)
        self._languages[uri] = languages
        if self._pipeline is not None and self._pipeline_language(uri) is None:
            _LOGGER.info(
                "The STT server %s does not transcribe %s, the language of Home Assistant's pipeline: it detects the"
                " language of each command", uri, self._pipeline,
            )  # fmt: skip

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
        if self._describing is not None:
            self._describing.cancel()
            await asyncio.gather(self._describing, return_exceptions=True)
        await self._lookup.close()

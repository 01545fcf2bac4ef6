"""The words of a command so far, from Chatty's STT server, for judging a pause in Home Assistant mode.

Home Assistant sends its transcript only after the command has ended, so the satellite asks the STT
server itself, once per pause, with the audio heard so far. The server is looked up in the
background (zeroconf can take seconds); until it is known, or while it fails, there are no words
and the pause is not judged (the silence rule ends the command), without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time

from wyoming.client import AsyncClient

from wyoming_chatty_stt.client import TranscriptionError, TranscriptionStream

from .answer import close_client
from .audio_io import MIC_FORMAT
from .services import Services, ServiceUnavailable

_LOGGER = logging.getLogger(__name__)

TIMEOUT = 2.0  # a transcript later than this is no use for judging a pause
CHUNK_BYTES = 32000  # the command so far goes to the server in 1 s chunks
LOOK_AGAIN = 30.0  # seconds between lookups of a server that could not be found or reached


class PauseWords:
    """Asks the STT server for the transcript of a command's audio so far; None when there is none to be had."""

    def __init__(self, services: Services, language: str | None = None) -> None:
        self._services = services
        self._language = language
        self._uri: str | None = None
        self._looked_at = -LOOK_AGAIN
        self._lookup: asyncio.Task[None] | None = None
        self._failing = False

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

    async def __call__(self, pcm: bytes) -> str | None:
        uri = self._uri
        if uri is None:
            self.look_up()
            return None
        try:
            async with asyncio.timeout(TIMEOUT):
                client = AsyncClient.from_uri(uri)
                await client.connect()
                try:
                    stream = TranscriptionStream(client, MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels)
                    await stream.start(self._language)
                    for start in range(0, len(pcm), CHUNK_BYTES):
                        await stream.send(pcm[start : start + CHUNK_BYTES])
                    text = await stream.finish(TIMEOUT)
                finally:
                    await close_client(client)
        except (OSError, TimeoutError, TranscriptionError) as err:
            if not self._failing:
                _LOGGER.warning("No transcript to judge a pause by (%s); it ends by silence", err or type(err).__name__)
            self._failing = True
            if isinstance(err, OSError):
                self._uri = None  # it may have moved: look it up again
                self.look_up()
            return None
        if self._failing:
            _LOGGER.info("The STT server answers again: judging pauses by their words")
        self._failing = False
        return text

    async def close(self) -> None:
        if self._lookup is not None:
            self._lookup.cancel()
            await asyncio.wait({self._lookup}, timeout=1.0)

"""A command's words as it is spoken: its audio streams live to Chatty's STT server, which transcribes
it at each pause (its ``chatty-candidate``) and at the end.

Streamed live, the server decodes at a pause while the satellite hears it, so the words of a pause
come one decode after it (no audio sent again, no connection opened at the pause). The frames are
queued as they are heard and sent by a task of their own, so feeding never waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wyoming.client import AsyncClient

from wyoming_chatty_stt.client import LiveTranscription, TranscriptionStream

from .answer import close_client
from .audio_io import MIC_FORMAT
from .end_of_turn import HearAgain

_LOGGER = logging.getLogger(__name__)

WAIT_FOR_WORDS = 1.0  # s after a pause: words later than this are no use for judging it
COVER_SLACK = 0.25  # s: the server's detector may end the speech a little before the satellite's does
BYTES_PER_SECOND = MIC_FORMAT.rate * MIC_FORMAT.width * MIC_FORMAT.channels


class CommandWords:
    """One command streamed to the STT server as it is heard: its words at each pause, its transcript at the end.

    ``pause``: the silence after which the server transcribes (the satellite's own pause); None
    asks for the final transcript only.
    """

    def __init__(
        self, connect: Callable[[], Awaitable[AsyncClient]], language: str | None, pause: float | None
    ) -> None:
        self.pause = pause
        self.fed = 0
        """Bytes of the command's audio fed so far."""
        self._audio_ended = False
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stream: asyncio.Future[TranscriptionStream] = asyncio.get_running_loop().create_future()
        self._sending = asyncio.create_task(self._send(connect, language), name="command to STT")

    def feed(self, pcm: bytes) -> None:
        """The next frame of the command (sent as soon as the connection takes it)."""
        self.fed += len(pcm)
        self._audio.put_nowait(pcm)

    async def _send(self, connect: Callable[[], Awaitable[AsyncClient]], language: str | None) -> None:
        try:
            client = await connect()
            try:
                stream = (
                    LiveTranscription(client, self.pause, MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels)
                    if self.pause is not None
                    else TranscriptionStream(client, MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels)
                )
                await stream.start(language)
            except BaseException:
                await close_client(client)
                raise
        except BaseException as err:
            if not self._stream.done():
                self._stream.set_exception(err)
                self._stream.exception()  # whoever waits for the stream sees it; never "unretrieved"
            raise
        self._stream.set_result(stream)
        while (pcm := await self._audio.get()) is not None:
            await stream.send(pcm)

    async def at_pause(self) -> str | None:
        """The words up to the pause just heard (all the audio fed); None if the server does not transcribe
        at pauses. Raises :class:`LateWords` if they do not come within ``WAIT_FOR_WORDS``, and the
        failure if the server cannot be reached or fails."""
        if self.pause is None:
            return None
        heard = self.fed / BYTES_PER_SECOND
        async with asyncio.timeout(WAIT_FOR_WORDS):
            stream = await asyncio.shield(self._stream)
        assert isinstance(stream, LiveTranscription)
        if self._sending.done() and not self._sending.cancelled() and (error := self._sending.exception()):
            raise error
        return await stream.words_after(heard - COVER_SLACK, WAIT_FOR_WORDS)

    def second_hearing(self) -> HearAgain:
        """For the pause just heard: a second hearing of the command up to it, to ask for when its words leave
        the judge unsure (the server decodes them again with less silence around them). It gives None if
        the server does not transcribe at pauses, and raises as :meth:`at_pause` does."""
        heard = self.fed / BYTES_PER_SECOND
        return lambda: self._hear_again(heard)

    async def _hear_again(self, heard: float) -> str | None:
        if self.pause is None or not self._stream.done() or self._audio_ended:
            return None
        stream = self._stream.result()
        assert isinstance(stream, LiveTranscription)
        return await stream.hear_again(heard - COVER_SLACK, WAIT_FOR_WORDS)

    async def finish(self, timeout: float) -> str:
        """End the command: the final transcript of all the audio fed. The connection is closed."""
        self._audio.put_nowait(None)
        self._audio_ended = True
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._sending)
            stream = self._stream.result()
            return await stream.finish(timeout)
        finally:
            await self.close()

    async def close(self) -> None:
        """Drop the command (or what is left of it): stop sending, close the connection."""
        self._sending.cancel()
        await asyncio.wait({self._sending})
        if not self._sending.cancelled():
            self._sending.exception()  # retrieved: a failure to connect was reported where it mattered
        if self._stream.done() and not self._stream.cancelled() and self._stream.exception() is None:
            stream = self._stream.result()
            if isinstance(stream, LiveTranscription):
                await stream.close()
            await close_client(stream.client)
        else:
            self._stream.cancel()

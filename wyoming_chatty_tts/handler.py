"""Per-connection Wyoming event handler of the TTS server: one producer/consumer pipeline per client.

``handle_event`` cuts incoming text into pieces and queues them; a worker task
synthesizes the pieces in order on the shared synthesis threads and queues the
audio for the client, so the next piece is being synthesized while the
previous one is still on its way. A client that goes away cancels the running
synthesis at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from chatty_common.heap import release_free_memory_soon
from chatty_common.protocol import LimitedEventHandler, RequestError, limit_send_buffer

from .engine import SAMPLE_RATE, Cancel, Cancelled, KokoroEngine
from .splitter import TextSplitter, merge_pieces
from .voices import VoiceBank, VoiceError

_LOGGER = logging.getLogger(__name__)

WIDTH = 2
CHANNELS = 1
MAX_QUEUED_EVENTS = 400  # audio chunks waiting for a slow client (about 17 s of audio)
MAX_QUEUED_PIECES = 32  # text pieces waiting for synthesis before we stop reading the client
MERGE_MAX_CHARS = 250  # longest text synthesized in one call when queued sentences are joined
SEND_BUFFER_BYTES = 256 * 1024  # about 5 s of audio in the kernel for a client that stops reading


@dataclass(frozen=True)
class TtsSettings:
    """Server-wide settings every connection shares."""

    default_voice: str
    speed: float
    samples_per_chunk: int = 1024
    max_text_chars: int = 20_000  # one synthesize, or one stream's chunks together (about 20 minutes of speech)


@dataclass(frozen=True)
class _Cycle:
    """One ``audio-start`` … ``audio-stop`` cycle: pieces of text in one voice."""

    pieces: list[str]
    style: np.ndarray
    mergeable: bool = False  # a later sentence of a stream: may join the sentences queued after it


class _WorkQueue:
    """A bounded FIFO of cycles and events whose consumer can also take what waits behind an item."""

    def __init__(self, limit: int) -> None:
        self._items: deque[_Cycle | Event] = deque()
        self._changed = asyncio.Condition()
        self._limit = limit

    async def put(self, item: _Cycle | Event) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._items) < self._limit)
            self._items.append(item)
            self._changed.notify_all()

    @property
    def empty(self) -> bool:
        return not self._items

    async def get(self) -> _Cycle | Event:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    async def merge_following(self, cycle: _Cycle, max_chars: int) -> _Cycle:
        """Join the mergeable sentences already queued right behind ``cycle`` (up to ``max_chars``).

        When synthesis is behind the text, one longer call costs less than several short
        ones: Kokoro pads every call with silence that is then trimmed away.
        """
        if not cycle.mergeable:
            return cycle
        pieces = list(cycle.pieces)
        async with self._changed:
            while self._items:
                following = self._items[0]
                if not (isinstance(following, _Cycle) and following.mergeable and following.style is cycle.style):
                    break
                if len(" ".join(pieces + following.pieces)) > max_chars:
                    break
                pieces += following.pieces
                self._items.popleft()
            self._changed.notify_all()
        return _Cycle([" ".join(pieces)], cycle.style, mergeable=True)


def float_to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class TtsEventHandler(LimitedEventHandler):
    """Serves one client: ``describe``, ``synthesize`` and streaming synthesis."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        info: Info,
        engine: KokoroEngine,
        voices: VoiceBank,
        settings: TtsSettings,
        executor: Executor,
    ) -> None:
        super().__init__(reader, writer)
        limit_send_buffer(writer, SEND_BUFFER_BYTES)
        self._info_event = info.event()
        self._engine = engine
        self._voices = voices
        self._settings = settings
        self._executor = executor
        self._work = _WorkQueue(MAX_QUEUED_PIECES)
        self._worker: asyncio.Task[None] | None = None
        self._cancel = Cancel()
        self._stream: tuple[TextSplitter, np.ndarray] | None = None
        self._stream_pieces = 0
        self._stream_chars = 0

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            self.send(self._info_event)
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # while a stream is open, synthesize is the compatibility copy
                text = self._text(event)
                self._check_length(len(text))
                style = self._style(event.data.get("voice"))
                splitter = TextSplitter()
                await self._queue(_Cycle(merge_pieces(splitter.feed(text) + splitter.flush()), style))
        elif SynthesizeStart.is_type(event.type):
            if self._stream is not None:
                await self._finish_stream()
            self._stream = (TextSplitter(), self._style(event.data.get("voice")))
            self._stream_pieces = 0
            self._stream_chars = 0
        elif SynthesizeChunk.is_type(event.type):
            if self._stream is None:
                raise RequestError("synthesize-chunk arrived before synthesize-start", "stream-not-started")
            splitter, style = self._stream
            text = self._text(event)
            self._stream_chars += len(text)
            self._check_length(self._stream_chars)
            for piece in splitter.feed(text):
                await self._queue_stream_piece(piece, style)
        elif SynthesizeStop.is_type(event.type):
            if self._stream is None:
                raise RequestError("synthesize-stop arrived before synthesize-start", "stream-not-started")
            await self._finish_stream()
        else:
            _LOGGER.debug("Ignoring event %s", event.type)
        return True

    async def _finish_stream(self) -> None:
        assert self._stream is not None
        splitter, style = self._stream
        self._stream = None
        for piece in splitter.flush():
            await self._queue_stream_piece(piece, style)
        await self._queue(SynthesizeStopped().event())

    async def _queue_stream_piece(self, piece: str, style: np.ndarray) -> None:
        # The first two pieces stay short: the first gets audio out early, the second must be
        # ready before the first has finished playing. Later ones may be merged while waiting.
        self._stream_pieces += 1
        await self._queue(_Cycle([piece], style, mergeable=self._stream_pieces > 2))

    def _check_length(self, chars: int) -> None:
        if chars > self._settings.max_text_chars:
            raise RequestError(
                f"the text has {chars} characters; this server speaks at most {self._settings.max_text_chars} "
                "at a time (--max-text-chars)",
                "text-too-long",
            )

    @staticmethod
    def _text(event: Event) -> str:
        text = event.data.get("text", "")
        if not isinstance(text, str):
            raise RequestError(f"{event.type}: 'text' must be a string", "bad-request")
        return text

    def _style(self, voice: object) -> np.ndarray:
        name = self._settings.default_voice
        if isinstance(voice, dict) and voice.get("name"):
            name = voice["name"]
        elif voice is not None and not isinstance(voice, dict):
            raise RequestError('\'voice\' must be an object like {"name": "jf_alpha"}', "bad-request")
        if not isinstance(name, str):
            raise RequestError("voice 'name' must be a string", "bad-request")
        try:
            return self._voices.style(name)
        except VoiceError as err:
            raise RequestError(str(err), "unknown-voice") from err

    async def _queue(self, item: _Cycle | Event) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._synthesize_queued(), name="tts synthesis")
        await self._work.put(item)  # waits when the client sends text faster than we speak it

    async def _synthesize_queued(self) -> None:
        try:
            while True:
                item = await self._work.get()
                if isinstance(item, Event):
                    self.send(item)
                else:
                    await self._speak(await self._work.merge_following(item, MERGE_MAX_CHARS))
                if self._work.empty:
                    release_free_memory_soon()  # nothing more to say for now: give the memory back
        except Cancelled:
            pass
        except Exception:
            _LOGGER.exception("Synthesis failed")
            self.send(Error(text="synthesis failed (see the server log)", code="internal").event())
            self.reader.feed_eof()  # ends this connection after the error is sent

    async def _speak(self, cycle: _Cycle) -> None:
        loop = asyncio.get_running_loop()
        self.send(AudioStart(SAMPLE_RATE, WIDTH, CHANNELS).event())
        step = self._settings.samples_per_chunk * WIDTH
        for piece in cycle.pieces:
            audio_parts = self._engine.synthesize(piece, cycle.style, self._settings.speed, self._cancel)
            while (audio := await loop.run_in_executor(self._executor, next, audio_parts, None)) is not None:
                await self.wait_for_room(MAX_QUEUED_EVENTS)
                pcm = float_to_pcm16(audio)
                for offset in range(0, len(pcm), step):
                    self.send(AudioChunk(SAMPLE_RATE, WIDTH, CHANNELS, pcm[offset : offset + step]).event())
        self.send(AudioStop().event())

    async def disconnect(self) -> None:
        """The client is gone (or failed): stop its synthesis now, mid-sentence if need be."""
        self._cancel.cancel()
        if self._worker is not None:
            self._worker.cancel()

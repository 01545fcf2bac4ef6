"""Per-connection Wyoming event handler of the TTS server: one producer/consumer pipeline per client.

``handle_event`` cuts incoming text into pieces and queues them; a worker task
synthesizes the pieces in order on the shared synthesis threads and queues the
audio for the client, so the next piece is being synthesized while the
previous one is still on its way. A client that goes away cancels the running
synthesis at once.

Once a stream sounds, its pieces are paced (:mod:`.pacing`): each is cut so that it is ready before
the audio sent so far has played, and words waiting for their sentence's end are spoken without it
when waiting longer would leave the listener in silence.

The first piece of every stream is kept a minute (:mod:`.recent`): a client that
knows an answer is coming may *prepare* it (``synthesize-start`` with
``"chatty": {"prepare": true}``: only the first piece is made, no audio is sent,
then ``synthesize-stopped``), so that the stream which then asks for the same
words gets their audio at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial

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

from chatty_common.audio import float_to_pcm16
from chatty_common.heap import release_free_memory_soon
from chatty_common.protocol import LimitedEventHandler, RequestError, chatty_flag, limit_send_buffer

from .engine import SAMPLE_RATE, Cancel, Cancelled, KokoroEngine
from .fetch import VoiceDownloadFailed, VoiceNotDownloaded
from .library import VoiceLibrary
from .pacing import ListenerClock, SynthesisSpeed
from .recent import RecentPieces
from .splitter import TextSplitter, cut_to_fit, merge_pieces
from .text import number_groups
from .voices import Voice, VoiceError

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
    voice: Voice
    mergeable: bool = False  # a later sentence of a stream: may join the sentences queued after it
    first: bool = False  # the first piece of a stream: kept for a while, or taken from what was kept
    prepare: bool = False  # make (and keep) the audio, send none
    clock: ListenerClock | None = None  # what the listener of this audio has left to hear (None: nobody hears it)


@dataclass
class _Stream:
    """An open ``synthesize-start`` … ``synthesize-stop`` stream."""

    splitter: TextSplitter
    voice: Voice
    prepare: bool
    pieces: int = 0
    chars: int = 0
    clock: ListenerClock = field(default_factory=ListenerClock)


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
                if not isinstance(following, _Cycle) or not following.mergeable:
                    break
                if following.voice.name != cycle.voice.name:
                    break
                if len(" ".join(pieces + following.pieces)) > max_chars:
                    break
                pieces += following.pieces
                self._items.popleft()
            self._changed.notify_all()
        return _Cycle([" ".join(pieces)], cycle.voice, mergeable=True, clock=cycle.clock)


class TtsEventHandler(LimitedEventHandler):
    """Serves one client: ``describe``, ``synthesize`` and streaming synthesis."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        info: Callable[[], Info],
        engine: KokoroEngine,
        voices: VoiceLibrary,
        settings: TtsSettings,
        executor: Executor,
        recent: RecentPieces | None = None,
        speed: SynthesisSpeed | None = None,
    ) -> None:
        super().__init__(reader, writer)
        limit_send_buffer(writer, SEND_BUFFER_BYTES)
        self._info = info
        self._engine = engine
        self._voices = voices
        self._settings = settings
        self._executor = executor
        self._work = _WorkQueue(MAX_QUEUED_PIECES)
        self._worker: asyncio.Task[None] | None = None
        self._recent = recent if recent is not None else RecentPieces()
        self._speed = speed if speed is not None else SynthesisSpeed()
        self._cancel = Cancel()
        self._stream: _Stream | None = None
        self._busy = False  # the worker is making or sending a cycle
        self._pacer: asyncio.Task[None] | None = None  # waits to cut a stream's words before their sentence ends

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            self.send(self._info().event())
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # while a stream is open, synthesize is the compatibility copy
                text = self._text(event)
                self._check_length(len(text))
                voice = await self._voice(event.data.get("voice"))
                splitter = self._splitter(voice)
                pieces = merge_pieces(splitter.feed(text) + splitter.flush())
                await self._queue(_Cycle(pieces, voice, clock=ListenerClock()))
        elif SynthesizeStart.is_type(event.type):
            if self._stream is not None:
                await self._finish_stream()
            voice = await self._voice(event.data.get("voice"))
            self._stream = _Stream(self._splitter(voice), voice, prepare=self._prepare(event))
        elif SynthesizeChunk.is_type(event.type):
            stream = self._stream
            if stream is None:
                raise RequestError("synthesize-chunk arrived before synthesize-start", "stream-not-started")
            text = self._text(event)
            stream.chars += len(text)
            self._check_length(stream.chars)
            if not (stream.prepare and stream.pieces):  # preparing: only the first piece is wanted
                for piece in stream.splitter.feed(text):
                    await self._queue_stream_piece(piece, stream)
                self._pace_stream()
        elif SynthesizeStop.is_type(event.type):
            if self._stream is None:
                raise RequestError("synthesize-stop arrived before synthesize-start", "stream-not-started")
            await self._finish_stream()
        else:
            _LOGGER.debug("Ignoring event %s", event.type)
        return True

    async def _finish_stream(self) -> None:
        stream = self._stream
        assert stream is not None
        self._stream = None
        self._stop_pacer()
        for piece in stream.splitter.flush():
            if not (stream.prepare and stream.pieces):
                await self._queue_stream_piece(piece, stream)
        if not (stream.prepare and stream.pieces):  # a prepared stream is stopped after its first piece
            await self._queue(SynthesizeStopped().event())

    async def _queue_stream_piece(self, piece: str, stream: _Stream) -> None:
        # The first two pieces stay short: the first gets audio out early, the second must be
        # ready before the first has finished playing. Later ones may be merged while waiting.
        stream.pieces += 1
        await self._queue(
            _Cycle(
                [piece], stream.voice,
                mergeable=stream.pieces > 2, first=stream.pieces == 1, prepare=stream.prepare,
                clock=None if stream.prepare else stream.clock,
            )
        )  # fmt: skip
        if stream.prepare:  # only the first piece is prepared: the stream is done once it is made
            await self._queue(SynthesizeStopped().event())

    # -- pacing a stream whose text is still coming -------------------------

    def _pace_stream(self) -> None:
        """While a stream's listener hears it and nothing is being made, speak the complete words that wait for
        their clause or sentence to end as soon as waiting longer would leave the listener in silence."""
        self._stop_pacer()
        stream = self._stream
        if stream is None or stream.prepare or not stream.clock.started or self._busy or not self._work.empty:
            return
        waiting = stream.splitter.pending.strip()
        if waiting:
            slack = stream.clock.budget() - self._speed.seconds(self._length(waiting, stream.voice))
            self._pacer = asyncio.create_task(self._cut_when_due(stream, slack), name="tts pacing")

    async def _cut_when_due(self, stream: _Stream, slack: float) -> None:
        if slack > 0:
            await asyncio.sleep(slack)
        self._pacer = None  # from here on, queue the piece: nothing may cancel this
        if self._stream is not stream or self._busy or not self._work.empty:
            return
        piece = stream.splitter.take_words(
            self._chars_within(stream.clock.budget(), stream.splitter.pending, stream.voice)
        )
        if piece is None:
            return
        _LOGGER.debug("Spoken before its sentence ended (%.2f s of audio left): %r", stream.clock.left(), piece)
        await self._queue_stream_piece(piece, stream)

    def _splitter(self, voice: Voice) -> TextSplitter:
        """A splitter for text in ``voice``'s language: in English a large number may be cut between its groups."""
        language = voice.language or self._engine.language
        if language.startswith("en"):
            return TextSplitter(rewrite=partial(number_groups, british=language.startswith("en-gb")))
        return TextSplitter()

    def _length(self, text: str, voice: Voice) -> int:
        """How long ``text`` is to say (its phonemes): what synthesis takes time for."""
        return self._engine.spoken_length(text, voice.language)

    def _chars_within(self, seconds: float, text: str, voice: Voice) -> int:
        """How many characters of ``text`` (as written) can be synthesized in ``seconds``."""
        return self._speed.length_within(seconds) * len(text) // max(1, self._length(text, voice))

    def _stop_pacer(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None

    @staticmethod
    def _prepare(event: Event) -> bool:
        """Does the stream only prepare its first piece (``"chatty": {"prepare": true}``)?"""
        return chatty_flag(event, "prepare")

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

    async def _voice(self, voice: object) -> Voice:
        """The voice asked for (or the default); a Kokoro voice not here yet is fetched first."""
        name = self._settings.default_voice
        if isinstance(voice, dict) and voice.get("name"):
            name = voice["name"]
        elif voice is not None and not isinstance(voice, dict):
            raise RequestError('\'voice\' must be an object like {"name": "jf_alpha"}', "bad-request")
        if not isinstance(name, str):
            raise RequestError("voice 'name' must be a string", "bad-request")
        try:
            return await self._voices.voice(name)
        except VoiceNotDownloaded as err:  # offline, or the hub cannot be reached
            raise RequestError(str(err), "voice-not-downloaded") from err
        except VoiceDownloadFailed as err:
            raise RequestError(str(err), "voice-download-failed") from err
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
                self._busy = True
                if isinstance(item, Event):
                    self.send(item)
                else:
                    await self._speak(await self._work.merge_following(item, MERGE_MAX_CHARS))
                self._busy = False
                if self._work.empty:
                    release_free_memory_soon()  # nothing more to say for now: give the memory back
                    self._pace_stream()
        except Cancelled:
            pass
        except Exception:
            _LOGGER.exception("Synthesis failed")
            self.send(Error(text="synthesis failed (see the server log)", code="internal").event())
            self.reader.feed_eof()  # ends this connection after the error is sent

    async def _speak(self, cycle: _Cycle) -> None:
        if cycle.prepare:  # made and kept for the stream that will ask for it; nothing is sent
            async for _audio in self._audio(cycle.pieces[0], cycle):
                pass
            return
        self.send(AudioStart(SAMPLE_RATE, WIDTH, CHANNELS).event())
        step = self._settings.samples_per_chunk * WIDTH
        pieces = deque(cycle.pieces)
        while pieces:
            piece = pieces.popleft()
            clock = cycle.clock
            if clock is not None and clock.started:  # the listener hears this already: the piece must be in time
                piece, rest = cut_to_fit(piece, self._chars_within(clock.budget(), piece, cycle.voice))
                if rest:
                    _LOGGER.debug("Cut to be in time (%.2f s of audio left): %r | %r", clock.left(), piece, rest)
                    pieces.appendleft(rest)
            began, left, made = time.monotonic(), clock.left() if clock is not None else 0.0, 0
            async for audio in self._audio(piece, cycle):
                await self.wait_for_room(MAX_QUEUED_EVENTS)
                pcm = float_to_pcm16(audio)
                for offset in range(0, len(pcm), step):
                    self.send(AudioChunk(SAMPLE_RATE, WIDTH, CHANNELS, pcm[offset : offset + step]).event())
                if clock is not None:
                    clock.sent(audio.size / SAMPLE_RATE)
                made += audio.size
            _LOGGER.debug(
                "Spoke %r: %.2f s of audio in %.2f s, with %.2f s left to hear when it began",
                piece, made / SAMPLE_RATE, time.monotonic() - began, left,
            )  # fmt: skip
        self.send(AudioStop().event())

    async def _audio(self, piece: str, cycle: _Cycle) -> AsyncIterator[np.ndarray]:
        """A piece's audio as it is made; a stream's first piece is taken from, or kept in, the recent pieces."""
        if not cycle.first:
            async for audio in self._synthesize(piece, cycle.voice):
                yield audio
            return
        key = RecentPieces.key(piece, cycle.voice.name, self._settings.speed)
        if (kept := self._recent.get(key)) is not None:
            await kept.done.wait()
            if kept.audio is not None:
                _LOGGER.debug("First piece %r was prepared", piece)
                for audio in kept.audio:
                    yield audio
                return
        entry = self._recent.begin(key)
        parts: list[np.ndarray] = []
        try:
            async for audio in self._synthesize(piece, cycle.voice):
                parts.append(audio)
                yield audio
        except BaseException:
            self._recent.finish(key, entry, None)
            raise
        self._recent.finish(key, entry, parts)

    async def _synthesize(self, piece: str, voice: Voice) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        audio_parts = self._engine.synthesize(piece, voice.style, self._settings.speed, self._cancel, voice.language)
        took = 0.0
        while True:
            started = time.monotonic()
            audio = await loop.run_in_executor(self._executor, next, audio_parts, None)
            took += time.monotonic() - started
            if audio is None:
                break
            yield audio
        self._speed.record(self._length(piece, voice), took)

    async def disconnect(self) -> None:
        """The client is gone (or failed): stop its synthesis now, mid-sentence if need be."""
        self._cancel.cancel()
        self._stop_pacer()
        if self._worker is not None:
            self._worker.cancel()

"""Scripted Wyoming peers and a recording speaker, for fast in-process tests of the satellite's modes.

A :class:`ScriptedServer` is a real TCP server on loopback speaking the
Wyoming protocol through the ``wyoming`` library; what it answers is a short
coroutine the test writes (an STT, LLM or TTS server; Home Assistant is played
with the real ``wyoming`` client instead). The satellite's mode runs in the
test's event loop, fed microphone frames that say outright whether they hold
speech or the wake word, and plays into a :class:`RecordingSpeaker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop
from wyoming.info import AsrModel, AsrProgram, Attribution, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStopped

from satellite.audio_io import FRAME_BYTES, FRAME_SECONDS, Frame, Speaker
from satellite.capture import Heard
from satellite.core import Mode
from satellite.speech import VoiceActivity
from satellite.turn_log import Turn, TurnLog

TTS_RATE = 24000


class Peer:
    """One connection to a scripted server: what the satellite sent, and a way to answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received: list[Event] = []
        self.closed = asyncio.Event()
        """The satellite closed the connection (seen by a read)."""

    async def read(self, *types: str, timeout: float = 10.0) -> Event:
        """The next event of one of ``types`` (others are kept in ``received`` and skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    event = await async_read_event(self.reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    event = None  # closed with our data unread: a reset
                if event is None:
                    self.closed.set()
                    raise ConnectionError("the satellite closed the connection")
                self.received.append(event)
                if event.type in types:
                    return event

    async def write(self, *events: Event) -> None:
        for event in events:
            await async_write_event(event, self.writer)

    async def until_closed(self, timeout: float = 10.0) -> None:
        """Read (and keep) what comes until the satellite closes the connection."""
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self.read(timeout=timeout)

    def texts(self, event_type: str) -> list[str]:
        return [e.data.get("text", "") for e in self.received if e.type == event_type]


class ScriptedServer:
    """A Wyoming server on 127.0.0.1 that runs ``script(peer)`` for each connection."""

    def __init__(self, script: Callable[[Peer], Awaitable[None]]) -> None:
        self.script = script
        self.peers: list[Peer] = []
        self._server: asyncio.Server | None = None

    @property
    def uri(self) -> str:
        assert self._server is not None
        return f"tcp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        self.peers.append(peer)
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self.script(peer)
        await peer.until_closed(timeout=60)  # notices when the satellite hangs up


def tone(seconds: float, rate: int = TTS_RATE, frequency: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * frequency * t) * 8000).astype("<i2").tobytes()


async def send_audio(
    write: Callable[[Event], Awaitable[None]], pcm: bytes, rate: int = TTS_RATE, pace: float = 0.0
) -> None:
    """``audio-start``, the audio in 100 ms chunks (``pace`` seconds apart), ``audio-stop``, through ``write``."""
    step = int(rate * 0.1) * 2
    await write(AudioStart(rate, 2, 1).event())
    for offset in range(0, len(pcm), step):
        await write(AudioChunk(rate, 2, 1, pcm[offset : offset + step]).event())
        if pace:
            await asyncio.sleep(pace)
    await write(AudioStop().event())


SPEECH_PCM = np.tile(np.array([1, -1], dtype="<i2"), FRAME_BYTES // 4).tobytes()
"""What :func:`hear` feeds as speech: all but silent, yet not zero, so a scripted STT server hears pauses."""


ATTRIBUTION = Attribution(name="tests", url="https://example.invalid")


def stt_script(
    *transcripts: str,
    program: str | None = None,
    candidates: bool = True,
    late: float | tuple[float, ...] = 0.0,
    heard_again: str | None = None,
    unsure: bool = False,
    languages: tuple[str, ...] | None = None,
) -> Callable[[Peer], Awaitable[None]]:
    """An STT server: each utterance gets the next transcript (the last one again when used up).

    Asked for Chatty's candidates (``"chatty": {"candidates": true, "pause": P}``), it is live: each
    pause of P seconds after speech (non-zero audio) gets the next transcript as a ``chatty-candidate``
    (with the seconds of audio so far; ``late`` seconds after the pause, as after a slow decode: one
    value for every pause, or one for each in turn, the last again when used up), and
    ``audio-stop`` right after a pause gets that same text. With ``candidates`` False it sends none (as
    a server that is not Chatty's). Given a ``program`` name or the ``languages`` it transcribes, it answers
    ``describe`` with them. Asked to
    hear the speech again (``chatty-hear-again``), it sends ``heard_again`` (default: the last pause's
    words) as a ``chatty-candidate`` marked ``"again": true``. ``unsure``: every candidate is marked
    ``"sure": false`` (Whisper unsure of the words).
    """
    given = list(transcripts)
    delays = list(late) if isinstance(late, tuple) else [late]

    def next_text() -> str:
        return given.pop(0) if len(given) > 1 else given[0]

    async def send_later(peer: Peer, event: Event, delay: float) -> None:
        await asyncio.sleep(delay)
        await peer.write(event)

    async def script(peer: Peer) -> None:
        transcribe = await peer.read("describe", "transcribe")
        if transcribe.type == "describe":
            if program is not None or languages is not None:
                models = [AsrModel(name="tiny", description=None, attribution=ATTRIBUTION, installed=True,
                                   languages=list(languages), version=None)] if languages else []  # fmt: skip
                await peer.write(
                    Info(asr=[AsrProgram(name=program or "stt", description=None, attribution=ATTRIBUTION,
                                         installed=True, version=None, models=models)]).event()
                )  # fmt: skip
            transcribe = await peer.read("transcribe")
        chatty = transcribe.data.get("chatty") or {}
        if not (chatty.get("candidates") and candidates):
            await peer.read("audio-stop")
            await peer.write(Transcript(text=next_text()).event())
            return
        pause_bytes = int(chatty.get("pause", 0.2) * 16000) * 2
        heard = silent = 0
        speaking, candidate = False, None
        sending: set[asyncio.Task[None]] = set()
        while (event := await peer.read("audio-chunk", "audio-stop", "chatty-hear-again")).type != "audio-stop":
            if event.type == "chatty-hear-again":
                again = heard_again if heard_again is not None else candidate or ""
                await peer.write(Event("chatty-candidate", {"text": again, "seconds": heard / 32000, "again": True}))
                continue
            audio = AudioChunk.from_event(event).audio
            heard += len(audio)
            if any(audio):
                speaking, silent = True, 0
            else:
                silent += len(audio)
            if speaking and silent >= pause_bytes:
                speaking, candidate = False, next_text()
                offer = Event("chatty-candidate", {"text": candidate, "seconds": heard / 32000})
                if unsure:
                    offer.data["sure"] = False
                delay = delays.pop(0) if len(delays) > 1 else delays[0]
                if delay:
                    sending.add(asyncio.create_task(send_later(peer, offer, delay)))
                else:
                    await peer.write(offer)
        for task in sending:
            task.cancel()
        text = candidate if candidate is not None and not speaking else next_text()
        await peer.write(Transcript(text=text).event())

    return script


def llm_script(
    answer: str, conversation_id: str = "talk-1", delay: float = 0.0, stop_first: bool = False
) -> Callable[[Peer], Awaitable[None]]:
    """An LLM server that streams ``answer`` word by word (``delay`` before it starts); ``handled`` then
    ``handled-stop`` as Chatty's server sends them, or the other way round (``stop_first``)."""

    async def script(peer: Peer) -> None:
        await peer.read("transcript")
        await asyncio.sleep(delay)
        await peer.write(HandledStart().event())
        for word in answer.split(" "):
            await peer.write(HandledChunk(text=word + " ").event())
        final = Handled(text=answer, context={"conversation_id": conversation_id}).event()
        await peer.write(*((HandledStop().event(), final) if stop_first else (final, HandledStop().event())))

    return script


def tts_script(seconds: float, pace: float = 0.0) -> Callable[[Peer], Awaitable[None]]:
    """A TTS server that answers any text with ``seconds`` of a tone (chunks ``pace`` seconds apart)."""

    async def script(peer: Peer) -> None:
        first = await peer.read("synthesize-start", "synthesize")
        if first.type == "synthesize":  # one whole text
            await send_audio(peer.write, tone(seconds), pace=pace)
            return
        await peer.read("synthesize-stop")
        await send_audio(peer.write, tone(seconds), pace=pace)
        await peer.write(SynthesizeStopped().event())

    return script


def spoken_text(peer: Peer) -> str:
    """All the text a TTS connection was asked to speak."""
    chunks = [e.data["text"] for e in peer.received if SynthesizeChunk.is_type(e.type)]
    return "".join(chunks) or " ".join(Synthesize.from_event(e).text for e in peer.received if e.type == "synthesize")


class RecordingSpeaker(Speaker):
    """A speaker that keeps what it was given, with when (the player paces it at real time)."""

    def __init__(self, rate: int = TTS_RATE) -> None:
        self.rate = rate
        self.description = "recording speaker"
        self._lock = threading.Lock()
        self._writes: list[tuple[float, bool, int]] = []

    def write(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2")
        with self._lock:
            self._writes.append((time.monotonic(), bool(samples.size and np.abs(samples).max() > 100), samples.size))

    def sound_seconds(self, since: float = 0.0) -> float:
        """Seconds of sound (not silence) written since ``since`` (``time.monotonic()``)."""
        with self._lock:
            return sum(n for at, loud, n in self._writes if loud and at >= since) / self.rate

    async def wait_for_sound(self, timeout: float = 10.0) -> float:
        """When the first sound was written (waits for it)."""
        async with asyncio.timeout(timeout):
            while True:
                with self._lock:
                    loud = [at for at, is_loud, _ in self._writes if is_loud]
                if loud:
                    return loud[0]
                await asyncio.sleep(0.01)


class CollectedTurns(TurnLog):
    """The turn log, kept in a list."""

    def __init__(self) -> None:
        super().__init__()
        self.turns: list[Turn] = []

    def write(self, turn: Turn) -> None:
        super().write(turn)
        self.turns.append(turn)

    @property
    def outcomes(self) -> list[str]:
        return [turn.outcome.value for turn in self.turns]


async def hear(mode: Mode, *, wake: bool = False, speech: float = 0.0, silence: float = 0.0, pace: float = 0.2) -> None:
    """Feed the mode microphone frames: the wake word, then ``speech`` seconds of speech, then ``silence``.

    Frames go in at ``1 / pace`` times real time (0.2: five times faster), one 100 ms batch at a time.
    """
    frames: list[Heard] = []
    if wake:
        frames.append(Heard(Frame(bytes(FRAME_BYTES), time.monotonic()), "okay_nabu", 0.0))
    frames += [Heard(Frame(SPEECH_PCM, 0.0), None, 1.0) for _ in range(round(speech * 100))]
    frames += [Heard(Frame(bytes(FRAME_BYTES), 0.0), None, 0.0) for _ in range(round(silence * 100))]
    for i, heard in enumerate(frames):
        mode.on_heard(Heard(Frame(heard.frame.pcm, time.monotonic()), heard.wake_word, heard.speech))
        if i % 10 == 9:
            await asyncio.sleep(0.1 * pace)
    await asyncio.sleep(0)


async def hear_spoken(mode: Mode, pcm: bytes, *, wake: bool = True) -> None:
    """Feed the mode a spoken clip (16 kHz mono) at real time, after the wake word if ``wake``, each frame's
    speech probability from Silero VAD, as the satellite hears a microphone."""
    vad = VoiceActivity("silero")
    if wake:
        mode.on_heard(Heard(Frame(bytes(FRAME_BYTES), time.monotonic()), "okay_nabu", 0.0))
    started = time.monotonic()
    for index in range(len(pcm) // FRAME_BYTES):
        await asyncio.sleep(max(0.0, started + index * FRAME_SECONDS - time.monotonic()))
        frame = pcm[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        mode.on_heard(Heard(Frame(frame, time.monotonic()), None, vad.process(frame)))
    await asyncio.sleep(0)


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)

"""Stream a WAV file to a Wyoming STT server the way a satellite would, and time the answer.

``python -m wyoming_chatty_stt.client FILE.wav --uri tcp://127.0.0.1:10300``
prints the transcript and how long after ``audio-stop`` it arrived. The
benchmark, the demo and the tests use :func:`stream_wav`; the satellite streams
its microphone with :class:`TranscriptionStream`, or with :class:`LiveTranscription`
to have the words at each pause as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info


class TranscriptionError(Exception):
    """The server sent an ``error`` event, or closed the connection, instead of a transcript."""


class TranscriptionStream:
    """One utterance streamed to an STT server while it is spoken, on an open connection.

    :meth:`start` it, :meth:`send` audio as it comes, and :meth:`finish` for the transcript.
    """

    def __init__(self, client: AsyncClient, rate: int = 16000, width: int = 2, channels: int = 1) -> None:
        self.client = client
        self.rate, self.width, self.channels = rate, width, channels

    async def start(self, language: str | None = None) -> None:
        await self.client.write_event(Transcribe(language=language).event())
        await self.client.write_event(AudioStart(self.rate, self.width, self.channels).event())

    async def send(self, pcm: bytes) -> None:
        await self.client.write_event(AudioChunk(self.rate, self.width, self.channels, pcm).event())

    async def finish(self, timeout: float) -> str:
        """End the audio and wait (at most ``timeout`` seconds) for the transcript."""
        await self.client.write_event(AudioStop().event())
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose the caller's cancellation.
        async with asyncio.timeout(timeout):
            while True:
                event = await self.client.read_event()
                if event is None:
                    raise TranscriptionError("the server closed the connection before the transcript")
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event).text.strip()
                if Error.is_type(event.type):
                    raise TranscriptionError(Error.from_event(event).text)


CANDIDATE = "chatty-candidate"  # Chatty's STT server: the transcript if the speaker is done now
HEAR_AGAIN = "chatty-hear-again"  # asks Chatty's STT server for a second hearing of the speech so far
CHATTY_PROGRAM_PREFIX = "chatty"  # the name of Chatty's STT program in its info begins so


class LateWords(Exception):
    """The server transcribes at pauses, but the words of this one did not come in time."""


class UnsureWords(Exception):
    """The words of a pause came, but Whisper was unsure of them (``"sure": false``): they may well be
    wrong, so they cannot tell whether the speaker is done. ``text`` is what it heard."""

    def __init__(self, text: str) -> None:
        super().__init__(f"the server is unsure of the words {text!r}")
        self.text = text


def offers_candidates(info: dict[str, Any]) -> bool:
    """Does a server with this ``info`` (its data) send a ``chatty-candidate`` at each pause?"""
    programs = info.get("asr")
    return isinstance(programs, list) and any(
        isinstance(program, dict) and str(program.get("name", "")).startswith(CHATTY_PROGRAM_PREFIX)
        for program in programs
    )


@dataclass(frozen=True)
class Candidate:
    """The server's transcript of the speech up to a pause, and the seconds of audio it covers."""

    text: str
    seconds: float
    sure: bool = True


class LiveTranscription(TranscriptionStream):
    """An utterance streamed while it is spoken, with the transcript at each pause (Chatty's STT server).

    The server is asked (``"chatty": {"candidates": true, "pause": ...}``) to decode at each pause of
    ``pause`` seconds and send its text as a ``chatty-candidate``; :meth:`words_after` waits for the
    one that covers the audio up to a given point. The server is asked to ``describe`` itself first, so
    that a server which never sends candidates is not waited for. Events are read in the background from
    :meth:`start` on; :meth:`finish` gives the final transcript, :meth:`close` stops reading.
    :meth:`hear_again` asks for a second hearing of the speech so far, for a second opinion on its words.
    """

    def __init__(self, client: AsyncClient, pause: float, rate: int = 16000, width: int = 2, channels: int = 1) -> None:
        super().__init__(client, rate, width, channels)
        self.pause = pause
        self.candidates: list[Candidate] = []
        self.second_hearings: list[Candidate] = []
        self._news = asyncio.Event()
        self._final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self.offers_candidates: bool | None = None
        """Whether the server sends candidates, once its ``info`` is in (None until then)."""

    async def start(self, language: str | None = None) -> None:
        await self.client.write_event(Describe().event())
        transcribe = Transcribe(language=language).event()
        transcribe.data["chatty"] = {"candidates": True, "pause": self.pause}
        await self.client.write_event(transcribe)
        await self.client.write_event(AudioStart(self.rate, self.width, self.channels).event())
        self._reader = asyncio.create_task(self._read(), name="transcription events")

    async def _read(self) -> None:
        try:
            while (event := await self.client.read_event()) is not None:
                if Info.is_type(event.type):
                    self.offers_candidates = offers_candidates(event.data)
                    self._news.set()
                elif event.type == CANDIDATE:
                    text, seconds = event.data.get("text"), event.data.get("seconds")
                    if isinstance(text, str) and isinstance(seconds, int | float):
                        heard = self.second_hearings if event.data.get("again") is True else self.candidates
                        heard.append(Candidate(text.strip(), float(seconds), event.data.get("sure") is not False))
                        self._news.set()
                elif Transcript.is_type(event.type):
                    self._settle(result=Transcript.from_event(event).text.strip())
                    return
                elif Error.is_type(event.type):
                    self._settle(error=TranscriptionError(Error.from_event(event).text))
                    return
            self._settle(error=TranscriptionError("the server closed the connection before the transcript"))
        except OSError as err:
            self._settle(error=err)

    def _settle(self, *, result: str | None = None, error: BaseException | None = None) -> None:
        if not self._final.done():
            if error is not None:
                self._final.set_exception(error)
            else:
                self._final.set_result(result or "")
        self._news.set()

    async def words_after(self, seconds: float, timeout: float) -> str | None:
        """The transcript of a pause whose decode covers at least ``seconds`` of audio, waiting at most
        ``timeout`` for it; None if there will be none (the server sends no candidates). Raises
        :class:`LateWords` if the server sends candidates but this one did not come in time,
        :class:`UnsureWords` if the server is unsure of them, and the stream's failure if it failed."""
        return await self._heard_after(self.candidates, seconds, timeout)

    async def hear_again(self, seconds: float, timeout: float) -> str | None:
        """A second hearing of the speech so far (the server decodes it again with less silence around it),
        covering at least ``seconds`` of audio: its words, which never become the transcript. Waits and
        raises as :meth:`words_after` does."""
        await self.client.write_event(Event(HEAR_AGAIN))
        return await self._heard_after(self.second_hearings, seconds, timeout)

    async def _heard_after(self, heard: list[Candidate], seconds: float, timeout: float) -> str | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    for candidate in reversed(heard):
                        if candidate.seconds >= seconds:
                            if not candidate.sure:
                                raise UnsureWords(candidate.text)
                            return candidate.text
                    if self._final.done():
                        self._final.result()  # raises the stream's failure
                        return None
                    if self.offers_candidates is False:
                        return None
                    self._news.clear()
                    await self._news.wait()
        if self.offers_candidates:
            raise LateWords(f"the server's words for the first {seconds:.1f} s came later than {timeout:g} s")
        return None

    async def finish(self, timeout: float) -> str:
        await self.client.write_event(AudioStop().event())
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._final)

    async def close(self) -> None:
        """Stop reading events (the caller closes the connection)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if not self._final.done():
            self._final.cancel()
        elif not self._final.cancelled():
            self._final.exception()  # retrieved: no "never retrieved" warning


@dataclass
class StreamResult:
    """What the server sent back, with the time of each event after ``audio-start``."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    audio_stop_at: float = 0.0

    @property
    def transcript(self) -> str | None:
        for _, event in self.events:
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text
        return None

    @property
    def error(self) -> str | None:
        for _, event in self.events:
            if Error.is_type(event.type):
                return Error.from_event(event).text
        return None

    @property
    def latency(self) -> float | None:
        """Seconds from ``audio-stop`` to the final ``transcript``."""
        for at, event in self.events:
            if Transcript.is_type(event.type):
                return at - self.audio_stop_at
        return None

    @property
    def types(self) -> list[str]:
        return [event.type for _, event in self.events]


def read_wav(path: str | Path) -> tuple[bytes, int, int, int]:
    """PCM bytes, rate, width and channels of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate(), wav.getsampwidth(), wav.getnchannels()


async def stream_wav(
    uri: str,
    path: str | Path,
    *,
    language: str | None = None,
    realtime: bool = True,
    trailing_silence: float = 0.7,
    samples_per_chunk: int = 1024,
    timeout: float = 60.0,
) -> StreamResult:
    """Send the file (plus trailing silence) as audio chunks, paced at real time if asked,
    then ``audio-stop``; collect events until ``transcript-stop``, ``error`` or close."""
    pcm, rate, width, channels = read_wav(path)
    frame = width * channels
    pcm += bytes(int(trailing_silence * rate) * frame)
    step = samples_per_chunk * frame
    result = StreamResult()
    async with AsyncClient.from_uri(uri) as client:
        started = time.monotonic()

        async def collect() -> None:
            while True:
                event = await client.read_event()
                if event is None:
                    return
                result.events.append((time.monotonic() - started, event))
                if event.type in ("transcript-stop", "error"):
                    return

        reader = asyncio.create_task(collect())
        try:
            await client.write_event(Transcribe(language=language).event())
            await client.write_event(AudioStart(rate, width, channels, timestamp=0).event())
            for offset in range(0, len(pcm), step):
                if reader.done():  # the server answered early (an error) or hung up
                    break
                chunk = AudioChunk(rate, width, channels, pcm[offset : offset + step])
                await client.write_event(chunk.event())
                if realtime:
                    due = started + (offset + step) / (rate * frame)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
            result.audio_stop_at = time.monotonic() - started
            if not reader.done():
                await client.write_event(AudioStop().event())
            await asyncio.wait_for(reader, timeout)
        finally:
            reader.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Transcribe a WAV file with a Wyoming STT server.")
    parser.add_argument("wav", help="16-bit PCM WAV file")
    parser.add_argument("--uri", default="tcp://127.0.0.1:10300")
    parser.add_argument("--language")
    parser.add_argument("--fast", action="store_true", help="send as fast as possible, not at real time")
    args = parser.parse_args()
    result = asyncio.run(stream_wav(args.uri, args.wav, language=args.language, realtime=not args.fast))
    if result.error:
        raise SystemExit(f"error: {result.error}")
    print(result.transcript)
    if result.latency is not None:
        print(f"transcript {result.latency * 1000:.0f} ms after audio-stop")


if __name__ == "__main__":
    main()

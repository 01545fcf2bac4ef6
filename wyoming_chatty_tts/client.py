"""Ask a Wyoming TTS server to speak, with or without streaming, and time the audio as it arrives.

``python -m wyoming_chatty_tts.client "Hello there." -o hello.wav --uri tcp://127.0.0.1:10200``
writes the audio to a WAV file and prints when the first audio arrived. The
benchmark, the demo and the tests use :func:`speak`; the satellite streams an
answer's text in and its audio out with :class:`SpeechStream`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)


class SpeechError(Exception):
    """The server sent an ``error`` event, or closed the connection, before the audio ended."""


class SpeechStream:
    """Speech on an open connection: text in (all at once, or as an LLM writes it), audio out as it is made.

    Either :meth:`say` a whole text, or :meth:`start`, :meth:`add` pieces and :meth:`finish`;
    meanwhile iterate :meth:`audio`.
    """

    def __init__(self, client: AsyncClient, voice: str | None = None) -> None:
        self.client = client
        self.voice = SynthesizeVoice(name=voice) if voice else None
        self._streaming = False
        self._sent: list[str] = []

    async def say(self, text: str) -> None:
        """One whole text (``synthesize``)."""
        await self.client.write_event(Synthesize(text=text, voice=self.voice).event())

    async def start(self) -> None:
        """Begin a text that comes in pieces (``synthesize-start``)."""
        self._streaming = True
        await self.client.write_event(SynthesizeStart(voice=self.voice).event())

    async def add(self, text: str) -> None:
        self._sent.append(text)
        await self.client.write_event(SynthesizeChunk(text=text).event())

    async def finish(self) -> None:
        """The text is complete (``synthesize`` with all of it for older servers, then ``synthesize-stop``)."""
        await self.client.write_event(Synthesize(text="".join(self._sent), voice=self.voice).event())
        await self.client.write_event(SynthesizeStop().event())

    async def audio(self, timeout: float | None = None) -> AsyncIterator[AudioChunk]:
        """The audio as it comes, until it ends; at most ``timeout`` seconds between two events."""
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose the caller's cancellation.
            async with asyncio.timeout(timeout):
                event = await self.client.read_event()
            if event is None:
                raise SpeechError("the server closed the connection before the audio ended")
            if AudioChunk.is_type(event.type):
                yield AudioChunk.from_event(event)
            elif SynthesizeStopped.is_type(event.type) if self._streaming else AudioStop.is_type(event.type):
                return
            elif Error.is_type(event.type):
                raise SpeechError(Error.from_event(event).text)


@dataclass
class SpeechResult:
    """Events from the server with their arrival time (seconds after the request was sent)."""

    events: list[tuple[float, Event]] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [event.type for _, event in self.events]

    @property
    def audio(self) -> bytes:
        return b"".join(event.payload or b"" for _, event in self.events if AudioChunk.is_type(event.type))

    @property
    def first_audio(self) -> float | None:
        return next((at for at, event in self.events if AudioChunk.is_type(event.type)), None)

    @property
    def done(self) -> float | None:
        return self.events[-1][0] if self.events else None

    @property
    def formats(self) -> set[tuple[int, int, int]]:
        return {
            (e.data["rate"], e.data["width"], e.data["channels"])
            for _, e in self.events
            if AudioStart.is_type(e.type) or AudioChunk.is_type(e.type)
        }

    @property
    def error(self) -> str | None:
        return next((Error.from_event(e).text for _, e in self.events if Error.is_type(e.type)), None)

    @property
    def error_code(self) -> str | None:
        return next((Error.from_event(e).code for _, e in self.events if Error.is_type(e.type)), None)

    def seconds(self, rate: int = 24000, width: int = 2) -> float:
        return len(self.audio) / (rate * width)

    def write_wav(self, path: str, rate: int = 24000) -> None:
        with wave.open(path, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(self.audio)


async def _fragments(text: str | list[str] | AsyncIterator[str]) -> AsyncIterator[str]:
    if isinstance(text, str):
        yield text
    elif isinstance(text, list):
        for fragment in text:
            yield fragment
    else:
        async for fragment in text:
            yield fragment


async def speak(
    uri: str,
    text: str | list[str] | AsyncIterator[str],
    *,
    voice: str | None = None,
    streaming: bool = False,
    prepare: bool = False,
    fragment_delay: float = 0.0,
    timeout: float = 120.0,
) -> SpeechResult:
    """Send ``synthesize`` (one text), or a stream of ``synthesize-chunk`` fragments (a list, sent
    ``fragment_delay`` apart as an LLM would write them, or an async iterator of fragments as they
    come); collect events until the audio ends. A ``prepare``d stream only has the server make its
    first piece and keep it (no audio comes back) for a stream that asks for the same words soon."""
    voice_data = SynthesizeVoice(name=voice) if voice else None
    result = SpeechResult()
    async with AsyncClient.from_uri(uri) as client:
        started = time.monotonic()
        last = "synthesize-stopped" if streaming else "audio-stop"

        async def collect() -> None:
            while True:
                event = await client.read_event()
                if event is None:
                    return
                result.events.append((time.monotonic() - started, event))
                if event.type in (last, "error"):
                    return

        reader = asyncio.create_task(collect())
        try:
            if streaming:
                start = SynthesizeStart(voice=voice_data).event()
                if prepare:
                    start.data["chatty"] = {"prepare": True}
                await client.write_event(start)
                sent = []
                async for fragment in _fragments(text):
                    sent.append(fragment)
                    await client.write_event(SynthesizeChunk(text=fragment).event())
                    if fragment_delay:
                        await asyncio.sleep(fragment_delay)
                await client.write_event(Synthesize(text="".join(sent), voice=voice_data).event())
                await client.write_event(SynthesizeStop().event())
            else:
                whole = "".join([f async for f in _fragments(text)])
                await client.write_event(Synthesize(text=whole, voice=voice_data).event())
            await asyncio.wait_for(reader, timeout)
        finally:
            reader.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Speak text with a Wyoming TTS server and save it as WAV.")
    parser.add_argument("text")
    parser.add_argument("-o", "--output", default="speech.wav")
    parser.add_argument("--uri", default="tcp://127.0.0.1:10200")
    parser.add_argument("--voice")
    parser.add_argument("--stream", action="store_true", help="send the text word by word, as an LLM would")
    args = parser.parse_args()
    text = [word + " " for word in args.text.split()] if args.stream else args.text
    result = asyncio.run(speak(args.uri, text, voice=args.voice, streaming=args.stream, fragment_delay=0.02))
    if result.error:
        raise SystemExit(f"error: {result.error}")
    result.write_wav(args.output)
    first = "never" if result.first_audio is None else f"after {result.first_audio * 1000:.0f} ms"
    print(f"{result.seconds():.2f} s of audio in {args.output}; first audio {first}")


if __name__ == "__main__":
    main()

"""Per-connection Wyoming event handler of the STT server."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Describe, Info

from chatty_common.audio import PcmFormat, UnsupportedAudio
from chatty_common.heap import release_free_memory_soon
from chatty_common.protocol import LimitedEventHandler, RequestError

from .scheduler import DecodeScheduler
from .transcriber import DecodeOptions
from .utterance import StreamingSettings, Utterance

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SttSettings:
    """Server-wide settings every connection shares."""

    options: DecodeOptions  # defaults from the command line
    languages: tuple[str, ...]
    multilingual: bool
    streaming: StreamingSettings


def request_language(requested: str | None, settings: SttSettings) -> str | None:
    """The Whisper language code for a ``transcribe`` request (None: detect).

    Accepts BCP-47 tags such as ``en-US``; an English-only model answers only English.
    """
    if not requested or requested == "auto":
        return settings.options.language
    code = requested.replace("_", "-").split("-")[0].lower()
    if code not in settings.languages:
        if not settings.multilingual:
            raise RequestError(
                f"language {requested!r} is not supported: this model only transcribes English",
                "unsupported-language",
            )
        raise RequestError(
            f"language {requested!r} is not supported; supported: {', '.join(settings.languages)}",
            "unsupported-language",
        )
    return code


# Sent to a client that asked for it (``transcribe`` with ``"chatty": {"candidates": true}``) when a
# decode at a pause covers all the speech so far: the transcript it will be if the speaker is done, and
# the seconds of audio (from audio-start) that decode covered; "sure": false when Whisper's confidence in
# the words is low.
CANDIDATE = "chatty-candidate"
# Asked by such a client while the utterance goes on: a second hearing of the speech so far (the same
# speech with half the silence around it), answered with a chatty-candidate marked "again": true.
HEAR_AGAIN = "chatty-hear-again"
MIN_PAUSE, MAX_PAUSE = 0.05, 2.0  # seconds of silence a client may ask candidates after


class SttEventHandler(LimitedEventHandler):
    """Serves one client connection: ``describe``, and any number of utterances."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        info: Info,
        settings: SttSettings,
        scheduler: DecodeScheduler,
        vad_executor: Executor,
    ) -> None:
        super().__init__(reader, writer)
        self._info_event = info.event()
        self._settings = settings
        self._scheduler = scheduler
        self._vad_executor = vad_executor
        self._options = settings.options
        self._utterance: Utterance | None = None
        self._candidates = False  # the client asked for chatty-candidate events
        self._streaming = settings.streaming  # the server's, or with the client's pause for candidates

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            self.send(self._info_event)
        elif Transcribe.is_type(event.type):
            self._on_transcribe(event)
        elif AudioStart.is_type(event.type):
            self._on_audio_start(event)
        elif AudioChunk.is_type(event.type):
            if self._utterance is None:
                raise RequestError("audio-chunk arrived before audio-start", "audio-not-started")
            await self._utterance.add_audio(event.payload or b"")
        elif AudioStop.is_type(event.type):
            await self._on_audio_stop()
        elif event.type == HEAR_AGAIN:
            self._on_hear_again()
        else:
            _LOGGER.debug("Ignoring event %s", event.type)
        return True

    def _on_transcribe(self, event: Event) -> None:
        extension = event.data.get("chatty")
        extension = extension if isinstance(extension, dict) else {}
        self._candidates = extension.get("candidates") is True
        self._streaming = self._settings.streaming
        if self._candidates and (pause := extension.get("pause")) is not None:
            # The silence after which the speculative decode (and so the candidate) starts.
            if not isinstance(pause, int | float) or not MIN_PAUSE <= pause <= MAX_PAUSE:
                raise RequestError(f"transcribe: 'pause' must be {MIN_PAUSE} to {MAX_PAUSE} seconds", "bad-request")
            self._streaming = replace(self._streaming, endpoint_silence=float(pause))
        language = event.data.get("language")
        if language is not None and not isinstance(language, str):
            raise RequestError("transcribe: 'language' must be a string", "bad-request")
        self._options = replace(self._settings.options, language=request_language(language, self._settings))

    def _on_audio_start(self, event: Event) -> None:
        if self._utterance is not None:  # a new utterance replaces an unfinished one
            self._utterance.close()
        data = event.data
        fmt = PcmFormat(data.get("rate"), data.get("width"), data.get("channels"))  # type: ignore[arg-type]
        try:
            fmt.check()
        except UnsupportedAudio as err:
            raise RequestError(str(err), "unsupported-audio") from err
        self._utterance = Utterance(
            fmt,
            self._options,
            scheduler=self._scheduler,
            settings=self._streaming,
            vad_executor=self._vad_executor,
            on_partial=lambda text: self.send(TranscriptChunk(text=text).event()),
            on_candidate=self._send_candidate if self._candidates else None,
        )
        self.send(TranscriptStart(language=self._options.language).event())

    def _send_candidate(self, text: str, seconds: float, sure: bool, again: bool = False) -> None:
        data: dict[str, object] = {"text": text, "seconds": round(seconds, 3)}
        if not sure:
            data["sure"] = False  # Whisper's confidence in the words is low
        if again:
            data["again"] = True
        self.send(Event(CANDIDATE, data))

    def _on_hear_again(self) -> None:
        if self._utterance is None:
            # It crossed the audio-stop that ended the utterance (or came before audio-start): nothing to hear.
            _LOGGER.debug("Ignoring %s outside an utterance", HEAR_AGAIN)
            return
        if not self._candidates:
            raise RequestError(f"{HEAR_AGAIN} needs a transcribe that asked for candidates", "bad-request")
        self._utterance.hear_again(partial(self._send_candidate, again=True))

    async def _on_audio_stop(self) -> None:
        utterance = self._utterance
        if utterance is None:
            raise RequestError("audio-stop arrived before audio-start", "audio-not-started")
        stopped = time.monotonic()
        try:
            result = await utterance.finish()
        finally:
            utterance.close()
            self._utterance = None
        rest = utterance.rest_of(result.text)
        if rest:
            self.send(TranscriptChunk(text=rest).event())
        language = result.language or utterance.options.language
        self.send(Transcript(text=result.text, language=language).event())
        self.send(TranscriptStop().event())
        release_free_memory_soon()  # the utterance's decode buffers, once its transcript is out
        _LOGGER.info(
            "Transcribed %.2f s of audio (decode %.0f ms, %g s window%s); transcript sent %.0f ms after audio-stop",
            utterance.seconds,
            result.seconds * 1000,
            result.window,
            ", shared with another connection" if result.shared else "",
            (time.monotonic() - stopped) * 1000,
        )
        _LOGGER.debug("Transcript: %r", result.text)
        # The next utterance on this connection starts from the server defaults again.
        self._options = self._settings.options
        self._streaming = self._settings.streaming
        self._candidates = False

    async def disconnect(self) -> None:
        if self._utterance is not None:
            self._utterance.close()
            self._utterance = None

"""Chatty's text-to-speech entity: text goes to the server as it comes, audio comes back as it is made.

Home Assistant's own Wyoming TTS entity streams too, but as WAV of unknown length, and Home Assistant
converts every answer for a satellite with ffmpeg, whose WAV reader waits for about 200 KB of audio
before it writes any: through Home Assistant a satellite heard nothing until the whole answer had
been synthesized. This entity sends the audio as CAF, which ffmpeg converts as it arrives (see
:mod:`.caf`). Home Assistant 2025.4 to 2026.2 runs that conversion for every satellite request, even
for an entity that accepts the preferred format options (``tts/__init__.py``,
``_async_generate_tts_audio``: a requested sample rate always means conversion), so this entity does
not claim them: ffmpeg resamples, which costs a few milliseconds.

Chatty's TTS server fetches Kokoro's voices the first time they are asked for; the entity offers them
with the installed ones (Home Assistant's Wyoming integration shows installed voices only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

from homeassistant.components import tts
from homeassistant.components.tts.entity import TTSAudioRequest, TTSAudioResponse
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import ChattyConfigEntry
from .caf import caf_header
from .client import AudioFormat, ServiceError, async_connect, async_prepare_speech, async_synthesize
from .const import AUDIO_TIMEOUT, DOMAIN
from .entity import ChattyEntity
from .speculation import TextFeed, speculator

_LOGGER = logging.getLogger(__name__)

EXTENSION = "caf"
TO_DOWNLOAD = " (downloaded on first use)"  # after the name of a voice the server fetches when it is chosen


async def async_setup_entry(
    hass: HomeAssistant, entry: ChattyConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """The text-to-speech of a service that has it."""
    if entry.runtime_data.info.tts is not None:
        async_add_entities([ChattyTtsEntity(entry)])


class ChattyTtsEntity(tts.TextToSpeechEntity, ChattyEntity):
    """A Wyoming text-to-speech program whose audio reaches the listener while it is being made."""

    def __init__(self, entry: ChattyConfigEntry) -> None:
        """One entity per config entry; the device is the service."""
        self._attr_supported_options = [tts.ATTR_VOICE]
        program = entry.runtime_data.info.tts
        assert program is not None
        ChattyEntity.__init__(self, entry, "tts", program.name, program.version)
        self._program = program
        self._voices: dict[str, list[tts.Voice]] = defaultdict(list)
        for voice in program.voices:
            name = voice.description if voice.installed else f"{voice.description}{TO_DOWNLOAD}"
            for language in voice.languages:
                self._voices[language].append(tts.Voice(voice_id=voice.name, name=name))
        # A language that only voices still to be downloaded speak: without a voice chosen, the server's
        # default voice would read it with another language's pronunciation, so its first voice speaks it.
        spoken = {language for voice in program.voices if voice.installed for language in voice.languages}
        self._first_voices = {
            language: voices[0].voice_id for language, voices in self._voices.items() if language not in spoken
        }
        languages = program.languages or ["en"]
        self._attr_supported_languages = languages
        self._attr_default_language = languages[0]

    @callback
    def async_get_supported_voices(self, language: str) -> list[tts.Voice] | None:
        """The voices that speak a language."""
        return self._voices.get(language)

    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """Speak the text as it arrives; returns once connected, so Home Assistant starts its converter
        (ffmpeg, for a satellite) while the first words are synthesized."""
        voice: str | None = request.options.get(tts.ATTR_VOICE) or self._first_voices.get(request.language)
        try:
            client = await async_connect(self.service.host, self.service.port)
        except ServiceError as err:
            raise HomeAssistantError(f"Chatty text-to-speech: {err}") from err
        stop = asyncio.Event()  # set when the answer spoken is stopped by its listener
        audio = async_synthesize(
            client, self._told(request.message_gen, voice, stop),
            voice=voice, streaming=self._program.streaming, timeout=AUDIO_TIMEOUT,
        )  # fmt: skip
        return TTSAudioResponse(EXTENSION, self._caf(audio, time.monotonic(), stop))

    async def _told(self, text: AsyncIterable[str], voice: str | None, stop: asyncio.Event) -> AsyncGenerator[str]:
        """The text to speak, passed on; its first part tells the speculator whose answer this entity speaks."""
        first = True
        async for part in text:
            if first and part.strip():
                first = False
                speculator(self.hass).heard(self, voice, part, stop)
            yield part

    def prepare(self, text: TextFeed, voice: str | None) -> None:
        """Have the server make the first words of an answer now (in the background), in this voice."""
        if not (self._program.streaming and self._program.prepares):
            return  # only Chatty's TTS server prepares and keeps a first piece
        self.hass.async_create_background_task(self._prepare(text, voice), f"{DOMAIN} prepare speech")

    async def _prepare(self, text: TextFeed, voice: str | None) -> None:
        started = time.monotonic()
        try:
            await async_prepare_speech(self.service.host, self.service.port, text, voice=voice, timeout=AUDIO_TIMEOUT)
            _LOGGER.debug("First words prepared in %.0f ms", (time.monotonic() - started) * 1000)
        except (ServiceError, OSError, TimeoutError) as err:
            _LOGGER.debug("Preparing speech on %s:%s failed: %s", self.service.host, self.service.port, err)

    async def _caf(self, audio: AsyncGenerator[Any], asked: float, stop: asyncio.Event) -> AsyncGenerator[bytes]:
        """The CAF stream: the header once the format is known, then PCM as the service sends it, until the
        answer is stopped (the connection then closes: the service stops synthesizing)."""
        header_sent = False
        try:
            while (item := await _next_unless_stopped(audio, stop)) is not None:
                if isinstance(item, AudioFormat):
                    if not header_sent:
                        header_sent = True
                        _LOGGER.debug("First audio %.0f ms after the request", (time.monotonic() - asked) * 1000)
                        yield caf_header(item.rate, item.width, item.channels)
                elif header_sent:
                    yield item
        except (ServiceError, OSError, TimeoutError, ValueError) as err:
            _LOGGER.warning("Chatty text-to-speech at %s:%s stopped: %s", self.service.host, self.service.port, err)
        finally:
            await audio.aclose()
        if stop.is_set():
            _LOGGER.info("Stopped speaking an answer that its listener interrupted")
        if not header_sent:  # no text, or no audio: an empty stream
            yield caf_header(16000, 2, 1)


async def _next_unless_stopped(audio: AsyncGenerator[Any], stop: asyncio.Event) -> Any | None:
    """The next item of ``audio``; None at its end, or as soon as ``stop`` is set (the item being waited
    for is then not waited for: the service may be a second into synthesizing it)."""
    if stop.is_set():
        return None
    item = asyncio.ensure_future(anext(audio, None))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((item, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not item.done():
            item.cancel()  # ends the generator: its connection closes
            await asyncio.wait((item,))
    return None if item.cancelled() else item.result()

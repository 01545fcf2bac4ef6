"""Chatty's text-to-speech entity: text goes to the server as it comes, audio comes back as it is made.

Home Assistant's own Wyoming TTS entity streams too, but as WAV of unknown length, and Home Assistant
converts every answer for a satellite with ffmpeg, whose WAV reader waits for about 200 KB of audio
before it writes any: through Home Assistant a satellite heard nothing until the whole answer had
been synthesized. This entity sends the audio as CAF, which ffmpeg converts as it arrives (see
:mod:`.caf`). Home Assistant 2025.4 to 2026.2 runs that conversion for every satellite request, even
for an entity that accepts the preferred format options (``tts/__init__.py``,
``_async_generate_tts_audio``: a requested sample rate always means conversion), so this entity does
not claim them: ffmpeg resamples, which costs a few milliseconds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any, ClassVar

from homeassistant.components import tts
from homeassistant.components.tts.entity import TTSAudioRequest, TTSAudioResponse
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import ChattyConfigEntry
from .caf import caf_header
from .client import AudioFormat, ServiceError, async_prepare_speech, async_synthesize
from .const import AUDIO_TIMEOUT, DOMAIN
from .speculation import TextFeed, speculator

_LOGGER = logging.getLogger(__name__)

EXTENSION = "caf"


async def async_setup_entry(
    hass: HomeAssistant, entry: ChattyConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """The text-to-speech of a service that has it."""
    if entry.runtime_data.info.tts is not None:
        async_add_entities([ChattyTtsEntity(entry)])


class ChattyTtsEntity(tts.TextToSpeechEntity):
    """A Wyoming text-to-speech program whose audio reaches the listener while it is being made."""

    _attr_supported_options: ClassVar[list[str]] = [tts.ATTR_VOICE]

    def __init__(self, entry: ChattyConfigEntry) -> None:
        """One entity per config entry; the device is the service."""
        self.service = entry.runtime_data
        program = self.service.info.tts
        assert program is not None
        self._program = program
        self._attr_name = entry.title  # Home Assistant's TTS needs an engine name; as its Wyoming entities do
        self._attr_unique_id = f"{entry.entry_id}-tts"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Chatty",
            model=program.name,
            sw_version=program.version,
            entry_type=DeviceEntryType.SERVICE,
        )
        self._voices: dict[str, list[tts.Voice]] = defaultdict(list)
        for voice in program.voices:
            for language in voice.languages:
                self._voices[language].append(tts.Voice(voice_id=voice.name, name=voice.description))
        languages = program.languages or ["en"]
        self._attr_supported_languages = languages
        self._attr_default_language = languages[0]

    @callback
    def async_get_supported_voices(self, language: str) -> list[tts.Voice] | None:
        """The voices that speak a language."""
        return self._voices.get(language)

    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """Speak the text as it arrives; returns once the first audio is there (or the service failed)."""
        voice: str | None = request.options.get(tts.ATTR_VOICE)
        audio = async_synthesize(
            self.service.host, self.service.port, self._told(request.message_gen, voice),
            voice=voice, streaming=self._program.streaming, timeout=AUDIO_TIMEOUT,
        )  # fmt: skip
        try:
            first = await anext(audio, None)
            header = caf_header(first.rate, first.width, first.channels) if isinstance(first, AudioFormat) else None
        except (ServiceError, OSError, TimeoutError, ValueError) as err:
            await audio.aclose()
            raise HomeAssistantError(
                f"Chatty text-to-speech at {self.service.host}:{self.service.port}: {err}"
            ) from err
        return TTSAudioResponse(EXTENSION, self._caf(header, audio))

    async def _told(self, text: AsyncIterable[str], voice: str | None) -> AsyncGenerator[str]:
        """The text to speak, passed on; its first part tells the speculator whose answer this entity speaks."""
        first = True
        async for part in text:
            if first and part.strip():
                first = False
                speculator(self.hass).heard(self, voice, part)
            yield part

    def prepare(self, text: TextFeed, voice: str | None) -> None:
        """Have the server make the first words of an answer now (in the background), in this voice."""
        if not (self._program.streaming and self._program.name.startswith("chatty")):
            return  # only Chatty's TTS server prepares and keeps a first piece
        self.hass.async_create_background_task(self._prepare(text, voice), f"{DOMAIN} prepare speech")

    async def _prepare(self, text: TextFeed, voice: str | None) -> None:
        try:
            await async_prepare_speech(self.service.host, self.service.port, text, voice=voice, timeout=AUDIO_TIMEOUT)
        except (ServiceError, OSError, TimeoutError) as err:
            _LOGGER.debug("Preparing speech on %s:%s failed: %s", self.service.host, self.service.port, err)

    async def _caf(self, header: bytes | None, audio: AsyncGenerator[Any]) -> AsyncGenerator[bytes]:
        """The CAF stream: the header, then PCM as the service sends it."""
        try:
            if header is None:  # no text, no audio: an empty stream
                yield caf_header(16000, 2, 1)
                return
            yield header
            async for item in audio:
                if isinstance(item, bytes):
                    yield item
        except (ServiceError, OSError, TimeoutError) as err:
            _LOGGER.warning("Chatty text-to-speech at %s:%s stopped: %s", self.service.host, self.service.port, err)
        finally:
            await audio.aclose()

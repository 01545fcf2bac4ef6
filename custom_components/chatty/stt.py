"""Chatty's speech-to-text entity: Home Assistant's Wyoming STT, plus the candidate transcript at a pause.

Chatty's STT server decodes as soon as the speaker pauses, long before the satellite decides that
the question is over. Asked for it, it sends that decode's text as a candidate; this entity hands it
to the speculator with the conversation id of the pipeline's chat session, so the agent can begin
the answer while the satellite is still listening to the silence (:mod:`.speculation`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import ChattyConfigEntry
from .client import ServiceError, async_transcribe
from .const import TRANSCRIPT_TIMEOUT
from .entity import ChattyEntity
from .speculation import speculator

_LOGGER = logging.getLogger(__name__)


async def async_setup_entry(
    hass: HomeAssistant, entry: ChattyConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """The speech-to-text of a service that has it."""
    if entry.runtime_data.info.stt is not None:
        async_add_entities([ChattySttEntity(entry)])


class ChattySttEntity(stt.SpeechToTextEntity, ChattyEntity):
    """A Wyoming speech-to-text program (16 kHz 16-bit mono PCM, as Home Assistant's Wyoming STT)."""

    def __init__(self, entry: ChattyConfigEntry) -> None:
        """One entity per config entry; the device is the service."""
        program = entry.runtime_data.info.stt
        assert program is not None
        ChattyEntity.__init__(self, entry, "stt", program.name, program.version)
        self._program = program

    @property
    def supported_languages(self) -> list[str]:
        """The languages of the server's models."""
        return list(self._program.languages)

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        """WAV."""
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        """PCM."""
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        """16-bit."""
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        """16 kHz."""
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        """Mono."""
        return [stt.AudioChannels.CHANNEL_MONO]

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Transcribe the stream; in a pipeline, candidates at pauses go to the speculator."""
        session = chat_session.current_session.get()  # set by the pipeline around all its stages
        early = speculator(self.hass)
        on_candidate = None
        if session is not None and self._program.candidates:
            conversation_id = session.conversation_id

            def on_candidate(text: str) -> None:
                early.candidate(conversation_id, text, metadata.language)

        try:
            text = await async_transcribe(
                self.service.host, self.service.port, stream,
                language=metadata.language, on_candidate=on_candidate, timeout=TRANSCRIPT_TIMEOUT,
            )  # fmt: skip
        except (ServiceError, OSError, TimeoutError) as err:
            _LOGGER.warning("Chatty speech-to-text at %s:%s: %s", self.service.host, self.service.port, err)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        if session is not None:
            early.transcribed(session.conversation_id, text)
        return stt.SpeechResult(text, stt.SpeechResultState.SUCCESS)

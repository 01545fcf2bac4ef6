"""Chatty: a streaming conversation agent and text-to-speech for Home Assistant, from Chatty's Wyoming servers.

Home Assistant's own Wyoming integration reads only the final ``handled`` event of an agent, so
nothing is spoken before the whole answer is written. This integration feeds the answer into the
chat log as it is written, so the Assist pipeline starts speaking early, and offers a text-to-speech
entity whose audio reaches a satellite while the rest is still being synthesized. With Chatty's
speech-to-text entity too, the answer is begun at the first pause in the speech (:mod:`.speculation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN
from .service import CannotConnect, ServiceInfo, async_describe

_LOGGER = logging.getLogger(__name__)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(frozen=True)
class ChattyService:
    """Where a Chatty service is and what it offers (a config entry's runtime data)."""

    host: str
    port: int
    info: ServiceInfo

    @property
    def platforms(self) -> list[Platform]:
        """The entity platforms this service needs."""
        platforms = []
        if self.info.agent is not None:
            platforms.append(Platform.CONVERSATION)
        if self.info.tts is not None:
            platforms.append(Platform.TTS)
        if self.info.stt is not None:
            platforms.append(Platform.STT)
        return platforms


type ChattyConfigEntry = ConfigEntry[ChattyService]


async def async_setup_entry(hass: HomeAssistant, entry: ChattyConfigEntry) -> bool:
    """Describe the service and set up its entities."""
    try:
        info = await async_describe(entry.data[CONF_HOST], entry.data[CONF_PORT])
    except CannotConnect as err:
        raise ConfigEntryNotReady(f"Chatty service not reachable: {err}") from err
    entry.runtime_data = ChattyService(entry.data[CONF_HOST], entry.data[CONF_PORT], info)
    await hass.config_entries.async_forward_entry_setups(entry, entry.runtime_data.platforms)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def _async_options_updated(hass: HomeAssistant, entry: ChattyConfigEntry) -> None:
    """Options changed: reload, so the entities use them."""
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: ChattyConfigEntry) -> bool:
    """Remove the service's entities."""
    return await hass.config_entries.async_unload_platforms(entry, entry.runtime_data.platforms)

"""The base of Chatty's entities: one per config entry and platform, with the service as its device."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity

from . import ChattyConfigEntry
from .const import DOMAIN


class ChattyEntity(Entity):
    """Named after the service's program, as Home Assistant's Wyoming entities are (its TTS needs a name)."""

    def __init__(self, entry: ChattyConfigEntry, platform: str, model: str, version: str | None) -> None:
        """The entity of ``platform`` (``conversation``, ``tts``, ``stt``) of this entry's service."""
        self.entry = entry
        self.service = entry.runtime_data
        self._attr_name = entry.title
        self._attr_unique_id = f"{entry.entry_id}-{platform}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Chatty",
            model=model,
            sw_version=version,
            entry_type=DeviceEntryType.SERVICE,
        )

"""Config flow for Chatty: a Wyoming conversation agent, text-to-speech or speech-to-text, by address or zeroconf."""

from __future__ import annotations

import logging
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .const import AGENT_PROGRAM, CONF_PROMPT, DOMAIN
from .service import CannotConnect, ServiceInfo, async_describe

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 10500  # Chatty's LLM server


def _user_schema(host: str = "", port: int = DEFAULT_PORT) -> vol.Schema:
    return vol.Schema({vol.Required(CONF_HOST, default=host): str, vol.Required(CONF_PORT, default=port): int})


class ChattyConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a Chatty service: checked with ``describe`` before it is added."""

    VERSION = 1

    def __init__(self) -> None:
        """Nothing discovered yet."""
        self._discovered: tuple[str, int, ServiceInfo] | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for host and port; the service there must be an agent, text-to-speech or speech-to-text."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host, port = user_input[CONF_HOST].strip(), user_input[CONF_PORT]
            self._async_abort_entries_match({CONF_HOST: host, CONF_PORT: port})
            try:
                info = await async_describe(host, port)
            except CannotConnect as err:
                _LOGGER.info("Cannot add %s:%s: %s", host, port, err)
                errors["base"] = "cannot_connect"
            else:
                if not info.usable:
                    errors["base"] = "not_supported"
                else:
                    return self.async_create_entry(title=info.title, data={CONF_HOST: host, CONF_PORT: port})
            return self.async_show_form(step_id="user", data_schema=_user_schema(host, port), errors=errors)
        return self.async_show_form(step_id="user", data_schema=_user_schema(), errors=errors)

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A Wyoming service was found: offer it only if it is Chatty's conversation agent.

        Home Assistant's Wyoming integration discovers the same services; it keeps speech-to-text
        and text-to-speech, this integration takes the agent (whose answers it can stream).
        """
        if discovery_info.port is None:
            return self.async_abort(reason="no_port")
        host, port = discovery_info.host, discovery_info.port
        try:
            info = await async_describe(host, port)
        except CannotConnect:
            return self.async_abort(reason="cannot_connect")
        if info.agent is None or info.agent.name != AGENT_PROGRAM or info.is_satellite:
            return self.async_abort(reason="not_chatty_agent")
        await self.async_set_unique_id(discovery_info.name)
        self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port})
        self._async_abort_entries_match({CONF_HOST: host, CONF_PORT: port})
        self._discovered = (host, port, info)
        self.context["title_placeholders"] = {"name": info.title}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask the user to confirm the discovered agent."""
        assert self._discovered is not None
        host, port, info = self._discovered
        if user_input is None:
            return self.async_show_form(
                step_id="zeroconf_confirm",
                description_placeholders={"name": info.title, "host": host, "port": str(port)},
            )
        return self.async_create_entry(title=info.title, data={CONF_HOST: host, CONF_PORT: port})

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """The options of a conversation agent."""
        return ChattyOptionsFlow()


class ChattyOptionsFlow(OptionsFlow):
    """What users change after adding an agent: instructions added to its prompt."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form: the prompt addition (empty: none)."""
        if user_input is not None:
            return self.async_create_entry(data={CONF_PROMPT: user_input.get(CONF_PROMPT, "").strip()})
        schema = vol.Schema(
            {
                vol.Optional(
                    CONF_PROMPT, description={"suggested_value": self.config_entry.options.get(CONF_PROMPT, "")}
                ): TextSelector(TextSelectorConfig(multiline=True)),
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)

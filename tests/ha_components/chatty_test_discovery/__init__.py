"""Test-only: hand a zeroconf discovery to a config flow, as Home Assistant's zeroconf integration does.

Home Assistant's zeroconf cannot be kept on loopback in the tests (it drops loopback addresses from
its adapters), so the Chatty tests announce a Wyoming service through this service call instead:
``chatty_test_discovery.zeroconf`` with ``domain``, ``host``, ``port`` and ``name`` starts the
domain's flow with source ``zeroconf`` and the same ``ZeroconfServiceInfo`` the zeroconf integration
would build, and returns the flow's first result.
"""

from __future__ import annotations

from ipaddress import ip_address

import voluptuous as vol
from homeassistant.config_entries import SOURCE_ZEROCONF
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.helpers.typing import ConfigType

DOMAIN = "chatty_test_discovery"
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)
SCHEMA = vol.Schema(
    {
        vol.Required("domain"): str,
        vol.Required("host"): str,
        vol.Required("port"): int,
        vol.Required("name"): str,
        vol.Optional("type", default="_wyoming._tcp.local."): str,
    }
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service."""

    async def discover(call: ServiceCall) -> ServiceResponse:
        service_type = call.data["type"]
        info = ZeroconfServiceInfo(
            ip_address=ip_address(call.data["host"]),
            ip_addresses=[ip_address(call.data["host"])],
            port=call.data["port"],
            hostname=f"{call.data['name']}.local.",
            type=service_type,
            name=f"{call.data['name']}.{service_type}",
            properties={},
        )
        result = await hass.config_entries.flow.async_init(
            call.data["domain"], context={"source": SOURCE_ZEROCONF}, data=info
        )
        return {key: result.get(key) for key in ("type", "flow_id", "step_id", "reason", "description_placeholders")}

    hass.services.async_register(DOMAIN, "zeroconf", discover, schema=SCHEMA, supports_response=SupportsResponse.ONLY)
    return True

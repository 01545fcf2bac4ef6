"""Advertise a Wyoming server with zeroconf, and find servers on the network.

Home Assistant discovers Wyoming services as ``_wyoming._tcp.local.``; it
builds a config entry's unique id from the mDNS instance name, so each Chatty
server advertises under its own name (``chatty-stt``, ``chatty-tts``, ...).

Unlike ``wyoming.zeroconf``, mDNS is sent only on the interface of the
advertised address when one is given (``--zeroconf-host``), so a server bound
to one network, or a test on 127.0.0.1, sends nothing anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def default_host() -> str:
    """The IPv4 address of the interface that carries multicast (the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((_MDNS_GROUP, 1))  # UDP connect sends nothing
        return sock.getsockname()[0]


def _open(interface: str | None) -> AsyncZeroconf:
    interfaces = [interface] if interface else InterfaceChoice.All
    return AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)


@dataclass(frozen=True)
class WyomingService:
    """A Wyoming server found on the network."""

    name: str
    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class ZeroconfAdvertiser:
    """Registers one ``_wyoming._tcp.local.`` service until :meth:`close`."""

    def __init__(self, name: str, port: int, host: str | None = None) -> None:
        self.name = name
        self.port = port
        self.host = host or default_host()
        self._interface = host
        self._aiozc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        self._aiozc = _open(self._interface)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.host)],
            port=self.port,
            server=f"{self.name}.local.",
        )
        # Another server may hold the name (a second Chatty in the house with default names): take the
        # next free one ("chatty-stt-2") rather than fail, and say so.
        await self._aiozc.async_register_service(self._info, allow_name_change=True)
        name = self._info.name[: -len(SERVICE_TYPE) - 1]
        if name != self.name:
            _LOGGER.warning("Zeroconf: the name %s is taken on this network; advertising as %s", self.name, name)
            self.name = name
        _LOGGER.info("Zeroconf: advertising %s on %s:%s", self.name, self.host, self.port)

    async def close(self) -> None:
        if self._aiozc is None:
            return
        if self._info is not None:
            await self._aiozc.async_unregister_service(self._info)
        await self._aiozc.async_close()
        self._aiozc = None


async def browse(
    timeout: float = 3.0,
    *,
    interface: str | None = None,
    name_prefix: str = "",
    wait_for: int | None = None,
) -> list[WyomingService]:
    """Find Wyoming services for ``timeout`` seconds.

    ``name_prefix`` keeps only instance names that start with it;
    ``wait_for`` returns as soon as that many matching services are resolved.
    ``interface`` limits mDNS to the interface with that IPv4 address.
    """
    aiozc = _open(interface)
    found: dict[str, WyomingService] = {}
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed and name.startswith(name_prefix):
            names.put_nowait(name)

    browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while wait_for is None or len(found) < wait_for:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                full_name = await asyncio.wait_for(names.get(), remaining)
            except TimeoutError:
                break
            info = AsyncServiceInfo(SERVICE_TYPE, full_name)
            if not await info.async_request(aiozc.zeroconf, 1000):
                continue
            addresses = info.parsed_addresses(IPVersion.V4Only)
            if not addresses or info.port is None:
                continue
            short = full_name[: -len(SERVICE_TYPE) - 1]
            found[short] = WyomingService(short, addresses[0], info.port)
    finally:
        await browser.async_cancel()
        await aiozc.async_close()
    return sorted(found.values(), key=lambda s: s.name)

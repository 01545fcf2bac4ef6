"""Start a Wyoming server: listen on ``--uri``, advertise with zeroconf, stop cleanly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from wyoming.server import AsyncServer, HandlerFactory

from .cli import tcp_port
from .zeroconf import ZeroconfAdvertiser

_LOGGER = logging.getLogger(__name__)


class Listening:
    """A started Wyoming server on ``uri``, advertised with zeroconf as ``zeroconf_name`` if given."""

    def __init__(self, uri: str, zeroconf_name: str | None = None, zeroconf_host: str | None = None) -> None:
        self.uri = uri
        self._server = AsyncServer.from_uri(uri)
        self._zeroconf = (zeroconf_name, zeroconf_host)
        self._advertiser: ZeroconfAdvertiser | None = None

    async def start(self, handler_factory: HandlerFactory) -> None:
        await self._server.start(handler_factory)
        name, host = self._zeroconf
        if name:
            port = tcp_port(self.uri)
            assert port is not None  # checked by cli.check_uri
            self._advertiser = ZeroconfAdvertiser(name, port, host)
            await self._advertiser.start()

    async def stop(self) -> None:
        if self._advertiser is not None:
            await self._advertiser.close()
        await self._server.stop()


async def serve(args: argparse.Namespace, handler_factory: HandlerFactory) -> None:
    """Serve until SIGTERM or SIGINT. Load and warm models *before* calling this,
    so the port opens only when the first request can be answered at full speed."""
    listening = Listening(args.uri, args.zeroconf, args.zeroconf_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    await listening.start(handler_factory)
    try:
        _LOGGER.info("Ready on %s", args.uri)
        await stop.wait()
        _LOGGER.info("Stopping")
    finally:
        await listening.stop()

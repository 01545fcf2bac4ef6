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


async def serve(args: argparse.Namespace, handler_factory: HandlerFactory) -> None:
    """Serve until SIGTERM or SIGINT. Load and warm models *before* calling this,
    so the port opens only when the first request can be answered at full speed."""
    server = AsyncServer.from_uri(args.uri)
    advertiser: ZeroconfAdvertiser | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    await server.start(handler_factory)
    try:
        if args.zeroconf:
            port = tcp_port(args.uri)
            assert port is not None  # checked by cli.check_uri
            advertiser = ZeroconfAdvertiser(args.zeroconf, port, args.zeroconf_host)
            await advertiser.start()
        _LOGGER.info("Ready on %s", args.uri)
        await stop.wait()
        _LOGGER.info("Stopping")
    finally:
        if advertiser is not None:
            await advertiser.close()
        await server.stop()

"""Health check for container HEALTHCHECKs: a ``describe`` round trip to a server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from wyoming.client import AsyncClient
from wyoming.info import Describe, Info


async def describe(uri: str, timeout: float = 5.0) -> Info:
    """Send ``describe`` and return the server's ``info`` (TimeoutError, OSError on failure)."""

    async def _round_trip() -> Info:
        async with AsyncClient.from_uri(uri) as client:
            await client.write_event(Describe().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise ConnectionError("server closed the connection before sending info")
                if Info.is_type(event.type):
                    return Info.from_event(event)

    return await asyncio.wait_for(_round_trip(), timeout)


def main(default_uri: str, healthy: Callable[[Info], bool], what: str, argv: list[str] | None = None) -> int:
    """Exit 0 if the server at ``--uri`` answers ``describe`` with an info that ``healthy`` accepts."""
    parser = argparse.ArgumentParser(description=f"Check that a {what} server answers.")
    parser.add_argument("--uri", default=default_uri, help=f"server to check (default: {default_uri})")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: 5)")
    args = parser.parse_args(argv)
    try:
        info = asyncio.run(describe(args.uri, args.timeout))
    except (TimeoutError, OSError) as err:
        print(f"unhealthy: {args.uri}: {err or type(err).__name__}", file=sys.stderr)
        return 1
    if not healthy(info):
        print(f"unhealthy: {args.uri} answered, but offers no {what}", file=sys.stderr)
        return 1
    print(f"healthy: {args.uri}")
    return 0

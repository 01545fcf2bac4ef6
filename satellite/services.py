"""Finding and connecting to the STT, LLM and TTS servers (direct mode): given URIs, or zeroconf.

A server that is down or restarting is tried again with back-off; a server
found by zeroconf is looked up again when its address stops answering (it may
have moved or changed port).
"""

from __future__ import annotations

import asyncio
import logging

from wyoming.client import AsyncClient

from chatty_common.zeroconf import browse

_LOGGER = logging.getLogger(__name__)

KINDS = ("stt", "llm", "tts")
RETRY_DELAYS = (0.1, 0.3, 0.6, 1.0)  # about 2 s of trying before a turn gives up on a server


class ServiceUnavailable(Exception):
    """A server could not be found or reached."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind.upper()} server: {detail}")
        self.kind = kind


class Services:
    """Where the three servers are, and fresh connections to them."""

    def __init__(
        self,
        uris: dict[str, str | None],
        names: dict[str, str],
        *,
        interface: str | None = None,
        browse_seconds: float = 3.0,
    ) -> None:
        self._fixed = {kind: uri for kind, uri in uris.items() if uri}
        self._names = names
        self._interface = interface
        self._browse_seconds = browse_seconds
        self._found: dict[str, str] = {}

    async def find(self, kind: str) -> str:
        """The server's URI: given, remembered, or looked up by zeroconf now."""
        if kind in self._fixed:
            return self._fixed[kind]
        if kind in self._found:
            return self._found[kind]
        name = self._names.get(kind)
        if name is None:
            raise ServiceUnavailable(kind, "neither an address nor a zeroconf name was given")
        services = await browse(self._browse_seconds, interface=self._interface, name_prefix=name, wait_for=1)
        if not services:
            raise ServiceUnavailable(kind, f"no {name} service found by zeroconf")
        exact = [s for s in services if s.name == name]
        service = (exact or services)[0]
        _LOGGER.info("Found %s by zeroconf at %s", service.name, service.uri)
        self._found[kind] = service.uri
        return service.uri

    def known(self, kind: str) -> bool:
        """Is the server's address known (given, or found earlier) without looking it up?"""
        return kind in self._fixed or kind in self._found

    async def find_all(self) -> dict[str, str]:
        """Look up every server at once (at start-up, so the first turn does not wait)."""
        uris = await asyncio.gather(*(self.find(kind) for kind in KINDS))
        return dict(zip(KINDS, uris, strict=True))

    async def connect(self, kind: str) -> AsyncClient:
        """A connected client, after retrying for about two seconds."""
        last_error: Exception | None = None
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            try:
                uri = await self.find(kind)
                client = AsyncClient.from_uri(uri)
                await client.connect()
                return client
            except ServiceUnavailable as err:
                last_error = err
            except OSError as err:
                last_error = err
                self._found.pop(kind, None)  # look it up again next time
        raise ServiceUnavailable(kind, str(last_error))

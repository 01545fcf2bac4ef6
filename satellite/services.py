"""Finding and connecting to the STT, LLM and TTS servers (direct mode): given URIs, or zeroconf.

A server that is down or restarting is tried again with back-off; a server
found by zeroconf is looked up again when its address stops answering (it may
have moved or changed port).
"""

from __future__ import annotations

import asyncio
import logging
import time

from wyoming.client import AsyncClient

from chatty_common.zeroconf import browse

_LOGGER = logging.getLogger(__name__)

KINDS = ("stt", "llm", "tts")
RETRY_DELAYS = (0.1, 0.3, 0.6, 1.0)  # about 2 s of trying before a turn gives up on a server
LOOK_AGAIN = 30.0  # s between background look-ups of a server that was not found or reached


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
        return self.address(kind) is not None

    def address(self, kind: str) -> str | None:
        """The server's URI if it is known without looking it up."""
        return self._fixed.get(kind) or self._found.get(kind)

    def forget(self, kind: str) -> None:
        """A server found by zeroconf did not answer: look it up again next time (it may have moved)."""
        self._found.pop(kind, None)

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
                self.forget(kind)
        raise ServiceUnavailable(kind, str(last_error))


class BackgroundLookup:
    """Looks one server up in the background, at most once per :data:`LOOK_AGAIN`, so that no turn waits
    for zeroconf; a failure is logged with ``fallback``, what the satellite does until the server is found."""

    def __init__(self, services: Services, kind: str, fallback: str, level: int = logging.WARNING) -> None:
        self._services = services
        self._kind = kind
        self._fallback = fallback
        self._level = level
        self._looked_at = -LOOK_AGAIN
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Look the server up, unless a look-up is under way or the last one was too recent."""
        if self._task is not None and not self._task.done():
            return
        if time.monotonic() - self._looked_at < LOOK_AGAIN:
            return
        self._looked_at = time.monotonic()
        self._task = asyncio.create_task(self._find(), name=f"find the {self._kind.upper()} server")

    async def _find(self) -> None:
        try:
            await self._services.find(self._kind)
        except ServiceUnavailable as err:
            _LOGGER.log(self._level, "%s; %s", err, self._fallback)

    async def close(self) -> None:
        """Cancel a look-up under way."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)

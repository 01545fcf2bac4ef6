"""The voices a server can speak: those it has, and Kokoro-82M voices it fetches the first time they are asked for."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from .catalog import VOICES, own_language
from .fetch import VoiceFetcher, VoiceNotDownloaded
from .voices import Voice, VoiceBank, VoiceError

_LOGGER = logging.getLogger(__name__)


class VoiceLibrary:
    """A voice bank that grows by fetching catalog voices (``online`` False: only those fetched before)."""

    def __init__(self, bank: VoiceBank, fetcher: VoiceFetcher, *, online: bool) -> None:
        self.bank = bank
        self._fetcher = fetcher
        self._online = online
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice fetch")
        self._fetching: dict[str, asyncio.Future[None]] = {}

    def fetchable(self) -> list[str]:
        """Catalog voices that are not here yet but can be fetched."""
        return [name for name in VOICES if name not in self.bank] if self._online else []

    def missing(self, spec: str) -> list[str]:
        """The catalog voices a name or blend needs that are not here yet (VoiceError: unknown or malformed)."""
        if spec in self.bank:
            return []
        missing = []
        for name, _weight in self.bank.parts(spec):
            if name in self.bank:
                continue
            if name not in VOICES:
                raise VoiceError(self.unknown_message(name))
            if not self._online:
                raise VoiceNotDownloaded(
                    f"voice {name!r} is not on this machine and needs a download from Hugging Face, which this "
                    "server does not do (HF_HUB_OFFLINE is set); voices here: " + ", ".join(self.bank.names)
                )
            missing.append(name)
        return missing

    def add_fetched(self, name: str, client_waits: bool = False) -> None:
        """Fetch a catalog voice into the bank (blocking: start-up, or a worker thread for a client that waits)."""
        self.bank.add(name, self._fetcher.fetch(name, client_waits=client_waits), own_language(name))
        _LOGGER.info("Voice %s ready", name)

    def add_cached(self) -> None:
        """Add the catalog voices fetched before (no network needed)."""
        for name in self._fetcher.cached():
            if name in self.bank:
                continue
            try:
                self.add_fetched(name)
            except VoiceError as err:
                _LOGGER.warning("Skipping voice %s: %s", name, err)

    def voice_now(self, spec: str) -> Voice:
        """A voice that is here (blocking fetches first, for start-up)."""
        for name in self.missing(spec):
            self.add_fetched(name)
        return self.bank.voice(spec)

    async def voice(self, spec: str) -> Voice:
        """A voice or blend, fetching the catalog voices it needs first (each once, however many ask)."""
        for name in self.missing(spec):
            if (fetching := self._fetching.get(name)) is None:
                loop = asyncio.get_running_loop()
                fetching = asyncio.ensure_future(loop.run_in_executor(self._thread, self.add_fetched, name, True))
                self._fetching[name] = fetching
                fetching.add_done_callback(partial(self._fetched, name))
            await asyncio.shield(fetching)
        return self.bank.voice(spec)

    def _fetched(self, name: str, _done: object) -> None:
        self._fetching.pop(name, None)  # a failed fetch is tried again by the next request

    def unknown_message(self, name: str) -> str:
        fetchable = f"; or one to download: {', '.join(self.fetchable())}" if self.fetchable() else ""
        return f"unknown voice {name!r}; voices: {', '.join(self.bank.names)}{fetchable} (or a blend like a:0.7+b:0.3)"

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

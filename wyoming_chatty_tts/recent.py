"""The audio of the first pieces of recent answers, so the same words asked for again are spoken at once.

A client that knows an answer is coming (Chatty's Home Assistant integration, while the LLM writes
and before Home Assistant's pipeline asks for speech) prepares its first piece; when the pipeline
then asks for the same words in the same voice, the audio is there, or is awaited if it is still
being made. Entries live a minute and the cache holds a handful, about 0.2 MB each.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

MAX_ENTRIES = 16
MAX_AGE = 60.0  # seconds

Key = tuple[str, str, float]  # the piece's text, the voice's name, the speed


@dataclass
class Prepared:
    """One piece's audio; ``audio`` is None until it is made (or for good, if its synthesis failed)."""

    made_at: float = field(default_factory=time.monotonic)
    audio: list[np.ndarray] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RecentPieces:
    """Audio by (text, voice, speed), shared by every connection of the server (used on its event loop)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE) -> None:
        self._entries: OrderedDict[Key, Prepared] = OrderedDict()
        self._max_entries = max_entries
        self._max_age = max_age

    @staticmethod
    def key(text: str, voice: str, speed: float) -> Key:
        return (" ".join(text.split()), voice, speed)

    def get(self, key: Key) -> Prepared | None:
        """The entry for these words: made, or being made; None if there is none (or it is too old)."""
        self._expire()
        return self._entries.get(key)

    def begin(self, key: Key) -> Prepared:
        """Record that these words are being made now."""
        entry = Prepared()
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            _, oldest = self._entries.popitem(last=False)
            oldest.done.set()
        return entry

    def finish(self, key: Key, entry: Prepared, audio: list[np.ndarray] | None) -> None:
        """The words are made (``audio``), or could not be (None: the entry is dropped)."""
        entry.audio = audio
        entry.done.set()
        if audio is None and self._entries.get(key) is entry:
            del self._entries[key]

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if e.done.is_set() and now - e.made_at > self._max_age]:
            del self._entries[key]

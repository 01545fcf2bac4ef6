"""Give the heap memory a finished request freed back to the operating system.

glibc's malloc keeps freed memory in its per-thread arenas for reuse, so a
server whose requests come and go on several threads keeps the high-water mark
of every arena: resident memory creeps up over days without a leak. After a
request, ``malloc_trim(0)`` (about 2 ms) returns the free pages; elsewhere
(musl, macOS) this is a no-op.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> None:
    """Return free heap pages to the operating system (blocking, a few milliseconds)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def release_free_memory_soon() -> None:
    """Do :func:`release_free_memory` on a worker thread, without waiting for it."""
    future = asyncio.get_running_loop().run_in_executor(None, release_free_memory)
    future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        _LOGGER.warning("malloc_trim failed: %s", future.exception())

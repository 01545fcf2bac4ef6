"""Give the heap memory a finished request freed back to the operating system.

glibc's malloc keeps freed memory in its per-thread arenas for reuse, so a
server whose requests come and go on several threads keeps the high-water mark
of every arena: resident memory creeps up over days without a leak. After a
request, ``malloc_trim(0)`` (about 2 ms) returns the free pages; elsewhere
(musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

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


class _Trimmer:
    """One thread that trims after requests: a trim asked for while one waits is the same trim, so a
    burst of finished requests on a busy machine never piles up threads (one runs, one waits at most)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="malloc-trim")

    def request(self) -> None:
        with self._lock:
            if self._waiting:
                return
            self._waiting = True
        self._executor.submit(self._trim).add_done_callback(_log_failure)

    def _trim(self) -> None:
        with self._lock:
            self._waiting = False  # memory freed from here on needs the next trim
        release_free_memory()


_TRIMMER = _Trimmer()


def release_free_memory_soon() -> None:
    """Do :func:`release_free_memory` on the trimming thread, without waiting for it."""
    _TRIMMER.request()


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        _LOGGER.warning("malloc_trim failed: %s", future.exception())

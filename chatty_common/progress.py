"""Progress lines for long one-time steps (model rewrites, downloads), so nothing sits silent for minutes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType


class Heartbeat:
    """While the ``with`` block runs, log "WHAT: still working (N s)" every ``every`` seconds (and ``status()``)."""

    def __init__(
        self, logger: logging.Logger, what: str, every: float = 10.0, status: Callable[[], str] | None = None
    ) -> None:
        self._logger = logger
        self._what = what
        self._every = every
        self._status = status
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self._every):
            status = f", {self._status()}" if self._status is not None else ""
            self._logger.info("%s: still working (%.0f s%s)", self._what, time.monotonic() - started, status)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

"""Progress lines for long one-time steps (model rewrites, downloads), so nothing sits silent for minutes."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType


class Heartbeat:
    """While the ``with`` block runs, log "WHAT: still working (N s)" every ``every`` seconds."""

    def __init__(self, logger: logging.Logger, what: str, every: float = 10.0) -> None:
        self._logger = logger
        self._what = what
        self._every = every
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self._every):
            self._logger.info("%s: still working (%.0f s)", self._what, time.monotonic() - started)

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

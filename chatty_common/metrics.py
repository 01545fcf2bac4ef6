"""``--metrics-file``: one JSON object per line, appended as each turn ends."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)


class MetricsFile:
    """Appends records to a JSON-lines file; a write that fails is logged once and does not stop the service."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1)  # line-buffered: each record reaches the file
        self._warned = False

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False)
        try:
            self._file.write(line + "\n")
        except OSError as err:
            if not self._warned:
                _LOGGER.warning("Cannot write metrics to %s: %s", self.path, err)
                self._warned = True

    def close(self) -> None:
        self._file.close()

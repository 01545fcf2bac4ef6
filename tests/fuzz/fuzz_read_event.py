"""Coverage-guided fuzzing (atheris) of the Wyoming event reader every Chatty server reads with.

Any bytes a client may send: the reader returns events within the limits, None at
a clean end, or raises RequestError (sent back as an ``error`` event) or
ClientGone. Anything else would drop a connection without telling the client.

    python tests/fuzz/fuzz_read_event.py [-max_total_time=60] [CORPUS_DIR]
"""

from __future__ import annotations

import asyncio
import sys

import atheris

with atheris.instrument_imports():
    from chatty_common.protocol import ClientGone, EventLimits, RequestError, read_event

LIMITS = EventLimits(max_line_bytes=2048, max_data_bytes=1024, max_payload_bytes=1024)  # small: reachable
LOOP = asyncio.new_event_loop()


async def _read_all(data: bytes) -> None:
    reader = asyncio.StreamReader(limit=LIMITS.max_line_bytes)
    reader.feed_data(data)
    reader.feed_eof()
    for _ in range(64):
        try:
            event = await read_event(reader, LIMITS)
        except (RequestError, ClientGone):
            return
        if event is None:
            return
        assert isinstance(event.type, str) and event.type, event
        assert isinstance(event.data, dict), event
        assert event.payload is None or 0 < len(event.payload) <= LIMITS.max_payload_bytes, event


def one_input(data: bytes) -> None:
    LOOP.run_until_complete(_read_all(data))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

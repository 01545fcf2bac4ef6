"""Ask a Wyoming conversation agent a question and time its streamed answer.

``python -m wyoming_chatty_llm.client "What is the capital of France?" --uri tcp://127.0.0.1:10500``
prints the answer as it arrives, then the time to the first piece and to the
end. The benchmark and the tests use :func:`ask`; the satellite reads an answer
as it is written with :class:`AnswerStream`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from wyoming.asr import Transcript
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled

from chatty_common.protocol import chatty_flag

from .handler import BEGUN, COMMIT, FIRST_TEXT, STOP, STOPPED


class AgentError(Exception):
    """The server sent an ``error`` event or closed the connection without an answer."""


@dataclass
class Answer:
    """A whole reply, with each event's arrival time (seconds after the question was sent)."""

    text: str = ""
    handled: bool = False
    stopped: bool = False  # its listener stopped it (``chatty-stop``)
    chunks: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [event_type for _, event_type in self.events]

    @property
    def conversation_id(self) -> str | None:
        return self.context.get("conversation_id")

    @property
    def first_chunk(self) -> float | None:
        return next((at for at, t in self.events if t == "handled-chunk"), None)

    @property
    def done(self) -> float | None:
        return next((at for at, t in self.events if t in ("handled", "not-handled")), None)


class AnswerStream:
    """A question asked on an open connection, its answer read piece by piece as the server writes it.

    :meth:`ask`, then iterate :meth:`pieces`; afterwards :attr:`answer` holds the whole reply.
    """

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.answer = Answer()
        self._started = 0.0

    async def ask(self, text: str, conversation_id: str | None = None, *, speculative: bool = False) -> None:
        """Send the question. A ``speculative`` one is answered but kept out of the conversation's
        memory until :func:`commit` is sent on the same connection."""
        context = {"conversation_id": conversation_id} if conversation_id else None
        question = Transcript(text=text, context=context).event()
        if speculative:
            question.data["chatty"] = {"speculative": True}
        self._started = time.perf_counter()
        await self.client.write_event(question)

    async def pieces(self, timeout: float | None = None) -> AsyncIterator[str]:
        """The answer's ``handled-chunk`` texts as they come (none from an agent that does not stream),
        until the reply ends; at most ``timeout`` seconds between two events."""
        streaming = stopped = answered = False
        # A streamed reply ends with both handled-stop and the final handled (in either order); a reply
        # that did not stream, with the final event alone.
        while not answered or (streaming and not stopped):
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can lose the caller's cancellation.
            async with asyncio.timeout(timeout):
                event = await self.client.read_event()
            if event is None:
                raise AgentError("the server closed the connection before answering")
            self.answer.events.append((time.perf_counter() - self._started, event.type))
            if HandledStart.is_type(event.type):
                streaming = True
            elif HandledChunk.is_type(event.type):
                chunk = HandledChunk.from_event(event).text
                self.answer.chunks.append(chunk)
                yield chunk
            elif Handled.is_type(event.type) or NotHandled.is_type(event.type):
                final = Handled.from_event(event) if Handled.is_type(event.type) else NotHandled.from_event(event)
                self.answer.handled = Handled.is_type(event.type)
                self.answer.text = final.text or ""
                self.answer.context = final.context or {}
                self.answer.stopped = chatty_flag(event, "stopped")
                answered = True
            elif HandledStop.is_type(event.type):
                stopped = True
            elif Error.is_type(event.type):
                raise AgentError(Error.from_event(event).text)


async def ask_on(
    client: AsyncClient,
    text: str,
    conversation_id: str | None = None,
    on_chunk: Callable[[str], None] | None = None,
    *,
    speculative: bool = False,
) -> Answer:
    """Ask on an open connection; returns after the last event of the reply (see :class:`AnswerStream`)."""
    stream = AnswerStream(client)
    await stream.ask(text, conversation_id, speculative=speculative)
    async for chunk in stream.pieces():
        if on_chunk is not None:
            on_chunk(chunk)
    return stream.answer


async def commit(client: AsyncClient) -> None:
    """Keep the speculative answer asked on this connection in the conversation's memory."""
    await client.write_event(Event(COMMIT))


async def stop_answers(client: AsyncClient, question: str, *, forget: bool = False) -> int:
    """Have the server stop writing the answers to ``question`` (each ends with what it has); how many it stopped.

    With ``forget`` they are not remembered, and the last answer to it remembered in the last two minutes is dropped.
    """
    reply = await _request(client, Event(STOP, {"question": question, "forget": forget}), STOPPED)
    return int(reply.data.get("stopped", 0))


async def first_text(client: AsyncClient, question: str, within: float) -> tuple[bool, bool]:
    """Wait (at most ``within`` s) until an answer to ``question`` has its first text; returns whether it has, and
    whether the question was asked at all (the server gives it a moment to be)."""
    reply = await _request(client, Event(FIRST_TEXT, {"question": question, "within": within}), BEGUN)
    return bool(reply.data.get("begun")), bool(reply.data.get("asked"))


async def _request(client: AsyncClient, request: Event, reply_type: str) -> Event:
    """Send ``request`` and return the server's reply of ``reply_type`` (other events are skipped)."""
    await client.write_event(request)
    while (event := await client.read_event()) is not None:
        if event.type == reply_type:
            return event
        if Error.is_type(event.type):
            raise AgentError(Error.from_event(event).text)
    raise AgentError("the server closed the connection before it replied")


async def ask(
    uri: str,
    text: str,
    conversation_id: str | None = None,
    on_chunk: Callable[[str], None] | None = None,
    timeout: float = 120.0,
) -> Answer:
    """Connect to ``uri``, ask ``text``, and return the reply."""
    async with AsyncClient.from_uri(uri) as client:
        return await asyncio.wait_for(ask_on(client, text, conversation_id, on_chunk), timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ask a Wyoming conversation agent a question.")
    parser.add_argument("question")
    parser.add_argument("--uri", default="tcp://127.0.0.1:10500", help="server (default: tcp://127.0.0.1:10500)")
    parser.add_argument("--conversation-id", help="continue this conversation")
    args = parser.parse_args(argv)

    def show(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    try:
        answer = asyncio.run(ask(args.uri, args.question, args.conversation_id, show))
    except (OSError, TimeoutError, AgentError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not answer.chunks:
        print(answer.text, end="")
    first = "-" if answer.first_chunk is None else f"{answer.first_chunk * 1000:.0f} ms"
    print(
        f"\n[{'handled' if answer.handled else 'not handled'}; first piece {first}, "
        f"whole answer {(answer.done or 0) * 1000:.0f} ms; conversation {answer.conversation_id}]",
        file=sys.stderr,
    )
    return 0 if answer.handled else 2


if __name__ == "__main__":
    sys.exit(main())

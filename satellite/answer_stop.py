"""Home Assistant mode: an answer cut off by a barge-in is stopped on Chatty's LLM server, so its run ends.

Home Assistant's pipeline run lasts until its agent has written the whole answer, and the satellite
cannot start the next run before that one is over (:mod:`.ha_pipeline`): after a barge-in on a long
answer, the new question waited for the old answer to be written to its end (six seconds for a
story). When the agent is Chatty's, the satellite asks its LLM server (found like direct mode's) to
stop writing the answers to the question the run had; the agent then ends the answer with what it
has, Home Assistant's run ends, and the held question goes a moment later. With another agent
nothing is stopped and the question waits as before. When the question was only the first part of
the speaker's (they went on after the satellite had ended the command), its answer is forgotten too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from wyoming_chatty_llm.client import AgentError, stop_answers

from .answer_begun import ask_first_text
from .services import BackgroundLookup, Services, ServiceUnavailable

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT = 3.0  # s for the whole request, the server's look-up and connection included
WRITING_WITHIN = 0.05  # s the server is given to say whether it writes an answer (it knows at once)


class AnswerStopper:
    """Asks Chatty's LLM server to stop writing the answer to a question (in the background)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tasks: set[asyncio.Task[None]] = set()
        self._lookup = BackgroundLookup(
            services, "llm", "a barge-in waits for Home Assistant to finish writing the answer", logging.INFO
        )

    def look_up(self) -> None:
        """Find the server now, so that the first barge-in does not wait for zeroconf."""
        self._lookup.start()

    def can_stop(self) -> bool:
        """Is the LLM server known, so that an answer can be stopped at once? (If not, it is looked up again
        in the background, now and then.)"""
        if self._services.known("llm"):
            return True
        self._lookup.start()
        return False

    def stop(self, question: str, *, forget: bool = False) -> None:
        """Stop the answers being written to ``question``; with ``forget``, the LLM server forgets them. Nothing
        when no LLM server is known (Home Assistant's agent is another): waiting for zeroconf would only end in
        a time-out."""
        if not self.can_stop():
            _LOGGER.debug("No LLM server is known: the answer to %r is not stopped", question)
            return
        self._start(self._stop(question, forget))

    async def still_writing(self, question: str) -> bool:
        """Is the LLM server writing an answer to ``question`` now (or did one just begin)? False when no server
        is known or it cannot be reached."""
        if not self._services.known("llm"):
            return False
        _begun, writing = await ask_first_text(self._services, question, WRITING_WITHIN, STOP_TIMEOUT)
        return writing

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, self._lookup.close(), return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="stop an answer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop(self, question: str, forget: bool) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                client = await self._services.connect("llm")
                try:
                    stopped = await stop_answers(client, question, forget=forget)
                finally:
                    await client.disconnect()
        except (ServiceUnavailable, OSError, TimeoutError, AgentError) as err:
            reason = str(err) or type(err).__name__
            _LOGGER.info("Could not ask the LLM server to stop the answer to %r: %s", question, reason)
            return
        _LOGGER.info(
            "Asked the LLM server to stop writing the answer to %r%s: %d stopped",
            question,
            " and forget it" if forget else "",
            stopped,
        )

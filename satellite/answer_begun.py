"""Home Assistant mode: a pause is judged once the answer Home Assistant asked for at it has its first text.

At a pause Chatty's STT server gives the satellite the words, and Home Assistant, through Chatty's
integration, puts the same words to Chatty's LLM server as a speculative question at that moment. The
satellite's end-of-turn models, run at once, took the two cores from that answer's first words (the LLM
runs at a lower priority): they came about 0.2 s later than in direct mode, which judges after its own
answer's first text, and the first sound with them, while the verdict is needed only once that sound
could play. So the satellite asks the LLM server to say when an answer to the pause's words has its first
text (for at most :data:`~satellite.turns.JUDGE_AFTER_AT_MOST`), and the models start then. When the
server says nobody asked it (Home Assistant's agent is another one) or cannot be reached, the next pauses
are judged at once, the question still put to the server in the background to notice when that changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from wyoming_chatty_llm.client import AgentError, first_text

from .services import Services, ServiceUnavailable
from .turn_text import unfinished
from .turns import JUDGE_AFTER_AT_MOST

_LOGGER = logging.getLogger(__name__)

CONNECT_AT_MOST = 0.2  # s to connect to the LLM server and hear its reply, on top of the wait itself


async def ask_first_text(services: Services, question: str, within: float, timeout: float) -> tuple[bool, bool]:
    """Ask Chatty's LLM server (``chatty-first-text``) whether an answer to ``question`` has its first text
    (waiting at most ``within``), and whether it was asked at all (or is being written); (False, False) when
    the server cannot be reached within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            client = await services.connect("llm")
            try:
                return await first_text(client, question, within)
            finally:
                await client.disconnect()
    except (ServiceUnavailable, OSError, TimeoutError, AgentError) as err:
        _LOGGER.debug("No word from the LLM server on the answer to %r: %s", question, err or type(err).__name__)
        return False, False


class AnswerBegun:
    """Waits, at a pause, for the first text of the answer to its words on Chatty's LLM server."""

    def __init__(self, services: Services, goes_on: Callable[[str], bool] = unfinished) -> None:
        self._services = services
        self._goes_on = goes_on  # the rule on words that plainly go on
        self._answered_here = True  # Chatty's LLM server answered the last pause's words (assumed at first)
        self._tasks: set[asyncio.Task[bool]] = set()

    async def wait(self, words: str | None) -> bool | None:
        """Return once an answer to ``words`` has its first text (True), or soon if none is coming (False); at
        once (None) when the last pause's words were not put to the server, when the words plainly go on ("what
        is the": judged by a rule, not by the models), or when there are no words or no server known."""
        if not words or self._goes_on(words) or not self._services.known("llm"):
            return None
        if self._answered_here:
            return await self._watch(words)
        self._start(self._watch(words))
        return None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, work: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.create_task(work, name="watch for an answer's first text")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, words: str) -> bool:
        begun, asked = await ask_first_text(
            self._services, words, JUDGE_AFTER_AT_MOST, JUDGE_AFTER_AT_MOST + CONNECT_AT_MOST
        )
        if asked != self._answered_here:
            _LOGGER.info(
                "Chatty's LLM server %s the questions of pauses: they are judged %s",
                "answers" if asked else "does not answer",
                "once its answer has begun" if asked else "at once",
            )
            self._answered_here = asked
        _LOGGER.debug("The answer to %r %s", words, "has begun" if begun else "has not begun")
        return begun

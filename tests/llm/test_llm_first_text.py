"""A watch on a question: told when an answer to it (any connection's) has its first text.

A satellite in Home Assistant mode judges a pause only once the answer Home Assistant asked for at that
pause has begun. Here the agent with a scripted backend whose first words take a set time (a model
sharing the CPU); the real server and model are in test_llm_server.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence

from wyoming_chatty_llm.agent import ASK_WITHIN, Agent
from wyoming_chatty_llm.backends.base import ChatBackend
from wyoming_chatty_llm.config import parse_config
from wyoming_chatty_llm.memory import Message


class _Backend(ChatBackend):
    """Writes "Paris is the capital." after ``delay`` seconds (nothing at all with ``empty``)."""

    name = "scripted"

    def __init__(self, delay: float, empty: bool = False) -> None:
        self.delay = delay
        self.empty = empty

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        await asyncio.sleep(self.delay)
        if not self.empty:
            yield "Paris"
            yield " is the capital."


def _agent(backend: ChatBackend) -> Agent:
    return Agent(parse_config({}), backend)


async def _watch(agent: Agent, question: str, within: float) -> tuple[tuple[bool, bool], float]:
    started = time.monotonic()
    result = await agent.first_text(question, within)
    return result, time.monotonic() - started


async def test_a_watch_returns_when_the_answer_asked_after_it_has_its_first_text():
    agent = _agent(_Backend(delay=0.3))
    watching = asyncio.create_task(_watch(agent, "what is the capital of FRANCE", 2.0))
    await asyncio.sleep(0.05)  # the question comes a moment after the watch, as from Home Assistant
    answering = asyncio.create_task(agent.answer("What is the capital of France?", "hall", lambda _p: None))
    (begun, asked), took = await watching
    assert begun and asked
    assert 0.3 <= took < 1.0, took  # once the first words were written, not at the end of the wait
    assert (await answering).handled
    await agent.close()


async def test_a_watch_after_the_first_text_returns_at_once():
    agent = _agent(_Backend(delay=0.0))
    assert (await agent.answer("What is the capital of France?", "hall", lambda _p: None)).handled
    (begun, asked), took = await _watch(agent, "What is the capital of France?", 2.0)
    assert begun and asked and took < 0.1
    await agent.close()


async def test_a_question_nobody_asks_is_given_up_on_soon():
    """Home Assistant's agent is not this server's: the satellite must not wait the whole half second."""
    agent = _agent(_Backend(delay=0.0))
    answering = asyncio.create_task(agent.answer("What time is it?", "hall", lambda _p: None))
    (begun, asked), took = await _watch(agent, "What is the capital of France?", 2.0)
    assert not begun and not asked
    assert ASK_WITHIN <= took < ASK_WITHIN + 0.3, took
    await answering
    await agent.close()


async def test_a_slow_answer_is_waited_for_only_as_long_as_asked():
    agent = _agent(_Backend(delay=30.0))
    answering = asyncio.create_task(agent.answer("What is the capital of France?", "hall", lambda _p: None))
    await asyncio.sleep(0.05)
    (begun, asked), took = await _watch(agent, "What is the capital of France?", 0.5)
    assert not begun and asked
    assert 0.5 <= took < 0.8, took
    answering.cancel()
    await asyncio.wait({answering})
    await agent.close()


async def test_an_answer_that_ends_without_text_ends_the_watch():
    agent = _agent(_Backend(delay=0.2, empty=True))
    answering = asyncio.create_task(agent.answer("What is the capital of France?", "hall", lambda _p: None))
    await asyncio.sleep(0.05)
    (begun, asked), took = await _watch(agent, "What is the capital of France?", 2.0)
    assert not begun and asked and took < 1.0, took
    assert not (await answering).handled
    await agent.close()

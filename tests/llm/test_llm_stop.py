"""An answer its listener stops ends at once with what it has written, even while the model is slow.

The real server and model are in test_llm_server.py; here the agent with a scripted backend that
writes one phrase and then takes half a minute for the next piece (a model starved of the CPU).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from wyoming_chatty_llm.agent import Agent
from wyoming_chatty_llm.backends.base import ChatBackend
from wyoming_chatty_llm.config import parse_config
from wyoming_chatty_llm.memory import Message


class _SlowBackend(ChatBackend):
    """Writes ``first``, then nothing for 30 s; notes when its stream is closed."""

    name = "scripted"

    def __init__(self, first: str = "Once upon a time,") -> None:
        self.first = first
        self.closed = asyncio.Event()

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        try:
            if self.first:
                yield self.first
            await asyncio.sleep(30)
            yield " a dragon slept."
        finally:
            self.closed.set()


def _agent(backend: ChatBackend) -> Agent:
    return Agent(parse_config({"opts": {"llama_cpp": {"timeout": 60, "total_timeout": 60}}}), backend)


async def test_a_stopped_answer_ends_at_once_with_what_it_has_and_is_remembered():
    backend = _SlowBackend()
    agent = _agent(backend)
    said: list[str] = []
    answering = asyncio.create_task(agent.answer("Tell me a story.", "hall", said.append))
    while not said:
        await asyncio.sleep(0.01)
    assert agent.stop_writing("What time is it?") == 0  # another question: left alone
    assert agent.stop_writing("tell me a STORY") == 1
    result = await asyncio.wait_for(answering, 2)  # not the 30 s the next piece would take
    assert result.handled and result.text == "Once upon a time," and result.stopped
    await asyncio.wait_for(backend.closed.wait(), 2)  # the backend was told to stop writing
    assert agent.stop_writing("Tell me a story.") == 0  # over: nothing left to stop
    await agent.prepared()
    assert [m.content for m in agent.memory.history("hall")] == ["Tell me a story.", "Once upon a time,"]
    await agent.close()


async def test_an_answer_stopped_before_its_first_words_is_not_an_answer():
    agent = _agent(_SlowBackend(first=""))
    answering = asyncio.create_task(agent.answer("Tell me a story.", "hall", lambda _piece: None))
    await asyncio.sleep(0.1)
    assert agent.stop_writing("Tell me a story") == 1
    result = await asyncio.wait_for(answering, 2)
    assert not result.handled and result.text == "I don't have an answer for that." and result.stopped
    assert agent.memory.history("hall") == []
    await agent.close()


async def test_a_client_gone_while_the_answer_waits_still_cancels_it():
    backend = _SlowBackend()
    agent = _agent(backend)
    answering = asyncio.create_task(agent.answer("Tell me a story.", "hall", lambda _piece: None))
    await asyncio.sleep(0.1)
    answering.cancel()
    await asyncio.wait((answering,), timeout=2)
    assert answering.cancelled() and backend.closed.is_set()
    assert agent.stop_writing("Tell me a story.") == 0
    await agent.close()


async def test_a_forgotten_question_leaves_no_answer_in_memory_written_or_still_being_written():
    """A satellite that ended a command early, whose speaker then went on, asks to stop and forget the answer
    to those first words: the last one remembered is dropped, one still being written is never remembered;
    the conversation's other turns stay, and the same question asked afterwards is remembered again."""
    agent = Agent(parse_config({}), _SlowBackend(first=""))  # (its memory only)
    agent.remember("porch", "What is the", "Which one?", asked_at=0.0)
    agent.remember("hall", "Turn on the light.", "Done.", asked_at=0.0)
    agent.remember("hall", "What is the", "The what?", asked_at=0.0)
    assert agent.forget("what is THE")
    assert [m.content for m in agent.memory.history("hall")] == ["Turn on the light.", "Done."]
    assert [m.content for m in agent.memory.history("porch")] == ["What is the", "Which one?"]  # not the last
    await agent.close()

    backend = _SlowBackend()
    agent = _agent(backend)
    answering = asyncio.create_task(agent.answer("Tell me a", "hall", lambda _piece: None))
    await asyncio.sleep(0.1)
    assert agent.stop_writing("Tell me a") == 1 and not agent.forget("Tell me a")
    result = await asyncio.wait_for(answering, 2)
    assert result.handled and result.stopped and result.text == "Once upon a time,"  # (what its speaker gets)
    agent.remember("hall", "Tell me a", result.text, asked_at=result.asked_at)  # a commit that comes late
    assert agent.memory.history("hall") == []
    again = asyncio.create_task(agent.answer("Tell me a", "hall", lambda _piece: None))
    await asyncio.sleep(0.1)
    agent.stop_writing("Tell me a")
    await asyncio.wait_for(again, 2)
    await agent.prepared()
    assert [m.content for m in agent.memory.history("hall")] == ["Tell me a", "Once upon a time,"]
    await agent.close()

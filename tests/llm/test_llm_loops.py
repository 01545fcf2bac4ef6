"""An answer that goes round in a loop is noticed as it is written; speech that merely repeats is not.

The real model's loop, through the server, is in test_llm_server.py; here the watch itself, and the
agent with a scripted backend that loops forever.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

import pytest

from wyoming_chatty_llm.agent import Agent
from wyoming_chatty_llm.backends.base import ChatBackend
from wyoming_chatty_llm.config import parse_config
from wyoming_chatty_llm.loops import LoopWatch, without_loop
from wyoming_chatty_llm.memory import Message


def _tokens(text: str) -> list[str]:
    """The text in pieces the way an LLM streams it: a word with the space before it."""
    return re.findall(r"\s*\S+", text)


def _watch(text: str) -> tuple[LoopWatch, str]:
    """Feed ``text`` piece by piece until the watch says it loops; also return what was let through."""
    watch = LoopWatch()
    said = ""
    for piece in _tokens(text):
        if watch.feed(piece):
            break
        said += piece
    return watch, said


LOOPED = "The capital of the kingdom" + " of the kingdom" * 40 + "."


def test_a_loop_is_stopped_on_its_third_time_and_the_first_time_is_kept():
    watch, said = _watch(LOOPED)
    assert said == "The capital of the kingdom of the kingdom of the kingdom"
    assert watch.kept is not None and LOOPED[: watch.kept] == "The capital of the kingdom"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("I'm sorry, I can't help. " * 5, "I'm sorry, I can't help"),
        ("Sure! " + "the the " * 10, "Sure! the"),
        ("It is 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2.", "It is 1, 2"),
        ("They are apex predators, apex predators, apex predators, apex predators.", "They are apex predators"),
    ],
)
def test_loops_of_any_length_are_noticed(text, kept):
    watch, said = _watch(text)
    assert watch.kept is not None and text[: watch.kept] == kept
    assert len(said) < len(text)
    assert without_loop(text) == kept


@pytest.mark.parametrize(
    "text",
    [
        "Happy birthday to you, happy birthday to you, happy birthday dear Anna, happy birthday to you!",
        "That is very, very, very good news. The weather is nice, nice and warm.",
        "No, no, no. It is not raining in Paris today, no.",
        "Ho ho ho! Merry Christmas.",
        "Row, row, row your boat, gently down the stream. Merrily, merrily, merrily, merrily, life is but a dream.",
        "Monday is sunny. Tuesday is sunny. Wednesday is sunny. Thursday is cloudy.",
        "Knock knock. Who's there? Lettuce. Lettuce who? Lettuce in, it's cold out here!",
        "Step one: add the milk. Step two: add the eggs. Step three: add the flour.",
    ],
)
def test_speech_that_repeats_itself_is_not_a_loop(text):
    watch, said = _watch(text)
    assert watch.kept is None and said == text
    assert without_loop(text) == text


def test_a_word_split_across_pieces_is_read_whole():
    watch = LoopWatch()
    pieces = ["The king", "dom of the", " king", "dom"] + [" of the king", "dom"] * 3 + [" of"]
    said = [piece for piece in pieces if not watch.feed(piece)]
    assert "".join(said) == "The kingdom of the kingdom of the kingdom"
    assert watch.kept == len("The kingdom of")


class _LoopingBackend(ChatBackend):
    """A scripted backend that writes one phrase forever and notes when it is told to stop."""

    name = "scripted"

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        try:
            for piece in _tokens("Lions are big cats."):
                yield piece
            while True:
                self.written += 1
                yield " They roar"
                await asyncio.sleep(0)
        finally:
            self.closed = True


async def test_the_agent_stops_a_looping_backend_and_remembers_the_phrase_once():
    backend = _LoopingBackend()
    agent = Agent(parse_config({"opts": {"llama_cpp": {"timeout": 10, "total_timeout": 10}}}), backend)
    said: list[str] = []
    result = await agent.answer("Which animal is the king?", "kitchen", said.append)
    assert result.handled and result.text == "Lions are big cats. They roar They roar They roar"
    assert "".join(said).strip() == result.text
    assert backend.closed and backend.written < 10
    await agent.prepared()
    assert [m.content for m in agent.memory.history("kitchen")] == [
        "Which animal is the king?",
        "Lions are big cats. They roar",
    ]
    await agent.close()

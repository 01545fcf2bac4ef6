"""Run in a process of its own: the bundled model's answers in a conversation whose memory is given.

Its own process for the reason ``llm_cache_probe`` gives (llama.cpp's and Silero's native libraries).
"""

from __future__ import annotations

import asyncio
import logging


def answers_after(remembered: list[tuple[str, str]], questions: list[str]) -> tuple[list[str], list[str]]:
    """The answers to ``questions`` asked one after the other (temperature 0) in a conversation that
    remembers ``remembered`` (question, answer); and the agent's log, line by line."""
    return asyncio.run(_answers_after(remembered, questions))


async def _answers_after(remembered: list[tuple[str, str]], questions: list[str]) -> tuple[list[str], list[str]]:
    from wyoming_chatty_llm.agent import Agent
    from wyoming_chatty_llm.backends.llama_cpp import LlamaCppBackend, bundled_model
    from wyoming_chatty_llm.config import LlamaCppOptions, parse_config

    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logging.getLogger("wyoming_chatty_llm").addHandler(Lines())
    logging.getLogger("wyoming_chatty_llm").setLevel(logging.INFO)
    config = parse_config({"opts": {"llama_cpp": {"temperature": 0, "max_tokens": 40, "threads": 2}}})
    assert isinstance(config.options, LlamaCppOptions)
    backend = LlamaCppBackend(config.options, bundled_model())
    agent = Agent(config, backend)
    answers = []
    try:
        await backend.warm_up(config.system_prompt)
        for question, answer in remembered:
            agent.memory.remember("kitchen", question, answer)
        for question in questions:
            result = await agent.answer(question, "kitchen", lambda piece: None)
            assert result.handled, result.text
            answers.append(result.text)
            await agent.prepared()
    finally:
        await agent.close()
    return answers, lines

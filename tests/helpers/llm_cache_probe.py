"""Run in a process of its own: how many tokens llama.cpp reads for each question of a conversation.

Its own process because llama.cpp and Silero VAD bring different native libraries: in the test
process, whichever loads second fails (the satellite's tests load Silero).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


def tokens_read(questions: list[str], turns: int) -> list[tuple[int, int]]:
    """(tokens the first read of each answer took, tokens of the question itself), question by question."""
    return asyncio.run(_tokens_read(questions, turns))


async def _tokens_read(questions: list[str], turns: int) -> list[tuple[int, int]]:
    from wyoming_chatty_llm.agent import Agent
    from wyoming_chatty_llm.backends.llama_cpp import LlamaCppBackend, bundled_model
    from wyoming_chatty_llm.config import LlamaCppOptions, parse_config

    config = parse_config({"memory": {"turns": turns}, "opts": {"llama_cpp": {"max_tokens": 16, "threads": 2}}})
    assert isinstance(config.options, LlamaCppOptions)
    backend = LlamaCppBackend(config.options, bundled_model())
    llama = backend._llama
    read: list[int] = []
    evaluate = llama.eval

    def counting(tokens: Sequence[int]) -> None:
        read.append(len(tokens))
        evaluate(tokens)

    llama.eval = counting  # type: ignore[method-assign]
    agent = Agent(config, backend)
    results = []
    try:
        await backend.warm_up(config.system_prompt)
        for question in questions:
            read.clear()
            result = await agent.answer(question, "kitchen", lambda piece: None)
            assert result.handled, result.text
            results.append((read[0], len(llama.tokenize(question.encode(), add_bos=False))))
            await agent.prepared()
    finally:
        await backend.close()
    return results

"""The conversation so far is read ahead: a question's prompt costs the model only the question.

The real llama.cpp backend with the bundled SmolLM2, in this process. llama.cpp's own ``eval`` is
wrapped to count the tokens each call reads (what it computes is unchanged); the first call of an
answer reads the part of the prompt its cache does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from wyoming_chatty_llm.agent import Agent
from wyoming_chatty_llm.backends.llama_cpp import LlamaCppBackend, bundled_model
from wyoming_chatty_llm.config import parse_config

QUESTIONS = [
    "What is the capital of France?",
    "And of Italy?",
    "How many people live there?",
    "What is the tallest building in it?",
    "When was it built?",
    "Who designed it?",
]
TEMPLATE_TOKENS = 8  # "<|im_end|>", "<|im_start|>assistant" and the newlines around a question


async def test_after_each_turn_the_next_question_is_all_the_model_reads():
    """With two turns of memory, the third turn drops the older half: the next prompt's start changes.
    Before, that start (the system prompt's end and the turns kept) was read when the next question
    came, about a second on two cores; now it is read after the turn, and the question reads itself."""
    config = parse_config({"memory": {"turns": 2}, "opts": {"llama_cpp": {"max_tokens": 16, "threads": 2}}})
    backend = LlamaCppBackend(config.options, bundled_model())  # type: ignore[arg-type]
    llama = backend._llama
    read: list[int] = []
    evaluate = llama.eval

    def counting(tokens: Sequence[int]) -> None:
        read.append(len(tokens))
        evaluate(tokens)

    llama.eval = counting  # type: ignore[method-assign]
    agent = Agent(config, backend)
    try:
        await backend.warm_up(config.system_prompt)
        for number, question in enumerate(QUESTIONS):
            read.clear()
            result = await agent.answer(question, "kitchen", lambda piece: None)
            assert result.handled, result.text
            if number > 0:
                own = len(llama.tokenize(question.encode(), add_bos=False))
                assert read[0] <= own + TEMPLATE_TOKENS, (number, question, read[0], own)
            await agent.prepared()
        assert len(agent.memory.history("kitchen")) <= 2 * 2
    finally:
        await backend.close()

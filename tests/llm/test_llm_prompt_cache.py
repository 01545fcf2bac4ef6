"""The conversation so far is read ahead: a question's prompt costs the model only the question.

The real llama.cpp backend with the bundled SmolLM2, in a process of its own
(``helpers/llm_cache_probe.py``). llama.cpp's own ``eval`` is wrapped there to count the tokens each
call reads (what it computes is unchanged); the first call of an answer reads the part of the prompt
its cache does not hold.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from helpers.llm_cache_probe import tokens_read

QUESTIONS = [
    "What is the capital of France?",
    "And of Italy?",
    "How many people live there?",
    "What is the tallest building in it?",
    "When was it built?",
    "Who designed it?",
]
TEMPLATE_TOKENS = 8  # "<|im_end|>", "<|im_start|>assistant" and the newlines around a question


def test_after_each_turn_the_next_question_is_all_the_model_reads():
    """With two turns of memory, the third turn drops the older half: the next prompt's start changes.
    Before, that start (the turns kept) was read when the next question came, about a second on two
    cores; now it is read after the turn, and each question reads itself and the template around it."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        read = pool.submit(tokens_read, QUESTIONS, 2).result(timeout=300)
    for question, (tokens, own) in list(zip(QUESTIONS, read, strict=True))[1:]:
        assert tokens <= own + TEMPLATE_TOKENS, (question, tokens, own)

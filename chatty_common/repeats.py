"""Text that ends in one phrase said over and over: how a language model (Whisper, a small LLM) loops."""

from __future__ import annotations

from collections.abc import Sequence


def repeated_tail(words: Sequence[str], phrase: int) -> int:
    """How many of the last ``words`` are one phrase of ``phrase`` words said back to back (its first time
    included; the last time may be cut short): each of them is the word ``phrase`` places before it.
    Less than ``2 * phrase`` means no repeat at all."""
    count = len(words)
    start = count - 1
    while start - phrase >= 0 and words[start] == words[start - phrase]:
        start -= 1
    return min(count, count - start - 1 + phrase)

"""Notice an answer that goes round in a loop: one phrase written again and again."""

from __future__ import annotations

import re

from chatty_common.repeats import repeated_tail

_WORD = re.compile(r"[\w']+")


class LoopWatch:
    """Reads an answer as it is written and says when its last words are one phrase over and over.

    Small models at a low temperature sometimes fall into a loop ("the capital of the kingdom of
    the kingdom of the kingdom ...") and write until their token cap: seconds of nonsense to listen
    to, and a poor example in the conversation's memory. A phrase said ``repeats`` times back to
    back, covering at least ``words`` words, counts as a loop ("apex predators, apex predators,
    apex predators"); speech repeats less ("very, very good", "no, no, no", "happy birthday to
    you, happy birthday to you").
    """

    def __init__(self, *, repeats: int = 3, words: int = 6, longest_phrase: int = 40) -> None:
        self._repeats = repeats
        self._min_words = words
        self._longest_phrase = longest_phrase
        self._text = ""
        self._scanned = 0  # the text before this is split into words
        self._words: list[str] = []
        self._ends: list[int] = []  # where each word ends in the text
        self.kept: int | None = None
        """Once the answer loops: how much of its text to keep (up to the phrase's first time)."""

    def feed(self, piece: str) -> bool:
        """Add the answer's next piece; True once the answer loops."""
        if self.kept is not None:
            return True
        self._text += piece
        for match in _WORD.finditer(self._text, self._scanned):
            if match.end() == len(self._text):
                break  # the word may go on in the next piece
            self._words.append(match.group().lower())
            self._ends.append(match.end())
            self._scanned = match.end()
            self.kept = self._loop()
            if self.kept is not None:
                return True
        return False

    def _loop(self) -> int | None:
        """Where the loop's first phrase ends in the text, if the last words loop."""
        words = self._words
        count = len(words)
        for phrase in range(1, min(self._longest_phrase, count // self._repeats) + 1):
            repeated = repeated_tail(words, phrase)
            if repeated >= phrase * max(self._repeats, -(-self._min_words // phrase)):
                return self._ends[count - repeated + phrase - 1]
        return None


def without_loop(text: str) -> str:
    """``text`` up to the first time of a phrase it then repeats in a loop (all of it if it has none)."""
    watch = LoopWatch()
    watch.feed(text + " ")
    return text if watch.kept is None else text[: watch.kept]

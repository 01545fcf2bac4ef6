"""Notice an answer that starts by repeating, word for word, an earlier answer of its conversation.

Small models copy from the conversation they are shown: once the bundled SmolLM2-135M had answered
one question with "The answer is not known.", it gave that sentence to every later question of the
conversation (10 of 10 in the end-to-end benchmark's second round), until the memory expired. The
watch reads the answer as it is written and holds its first words back while they are the start of
an earlier answer's first sentence (to another question); once they are that whole sentence the
answer is an echo, and the agent writes it again without the conversation. Answers that only begin
the same way ("The capital of France is" ... "The capital of Italy is") go on at the first word that
differs: a token or two held, while the text-to-speech waits for a clause or a few words anyway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum

from .memory import Message

_WORD = re.compile(r"[\w']+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")  # not the point in "3.5"
_SENTENCE_ENDED = re.compile(r"[.!?](?=\s)")  # in an answer still being written: "3." may go on

MIN_ECHO_WORDS = 4
"""An earlier answer's first sentence shorter than this may well be said again ("Yes.", "I don't know.")."""


class Echo(Enum):
    """What the watch makes of the answer so far."""

    HOLD = "hold"
    """Its words so far begin an earlier answer: not to be said yet."""
    PASS = "pass"
    """It is not an echo: say what was held and all that follows."""
    ECHO = "echo"
    """It repeats an earlier answer's first sentence: not to be said at all."""


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def _first_sentence(text: str) -> list[str]:
    end = _SENTENCE_END.search(text)
    return _words(text if end is None else text[: end.start()])


class EchoWatch:
    """Reads an answer as it is written and says whether it echoes an earlier answer of the conversation."""

    def __init__(self, question: str, history: Sequence[Message]) -> None:
        asked = _words(question)
        self._earlier = [
            sentence
            for before, after in zip(history[::2], history[1::2], strict=False)
            if before.role == "user" and after.role == "assistant" and _words(before.content) != asked
            and len(sentence := _first_sentence(after.content)) >= MIN_ECHO_WORDS
        ]  # fmt: skip
        self._text = ""
        self.seen = Echo.HOLD if self._earlier else Echo.PASS

    def feed(self, piece: str) -> Echo:
        """Add the answer's next piece; what the answer so far is."""
        if self.seen is not Echo.HOLD:
            return self.seen
        self._text += piece
        end = _SENTENCE_ENDED.search(self._text)
        written = self._text if end is None else self._text[: end.start()]
        words = _words(written)
        if end is None and written and (written[-1].isalnum() or written[-1] in "'_"):
            words = words[:-1]  # the last word may go on in the next piece
        if end is not None and words in self._earlier:
            self.seen = Echo.ECHO
        elif not any(sentence[: len(words)] == words for sentence in self._earlier) or end is not None:
            self.seen = Echo.PASS
        return self.seen

    def end(self) -> Echo:
        """The answer was written to its end: an echo if what is held is a whole earlier sentence."""
        if self.seen is Echo.HOLD:
            self.seen = Echo.ECHO if _first_sentence(self._text) in self._earlier else Echo.PASS
        return self.seen

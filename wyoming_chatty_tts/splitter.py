"""Cut text that arrives in fragments (as an LLM writes it) into pieces to synthesize.

The first piece is short, a clause or a few words, so the first audio comes
early; after that each sentence is a piece. Fenced code blocks are skipped
whole, even when their fences arrive in different fragments.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n\s*\n|\n(?=\s*(?:[-*+•#>]|\d{1,3}[.)])\s)")
_CLAUSE_END = re.compile(r"[,;:—–](?=\s)|\s-\s")
_NOT_AN_END = re.compile(
    r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|Ave|No|vs|etc|approx|min|max|e\.g|i\.e|[A-Z]|\d{1,3})\.$"
)
_FENCE = "```"
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "because",
        "if",
        "then",
        "than",
        "that",
        "which",
        "who",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "with",
        "about",
        "into",
        "over",
        "after",
        "before",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "will",
        "would",
        "can",
        "could",
        "should",
        "has",
        "have",
        "had",
        "not",
    ]
)


class TextSplitter:
    """Turns a stream of text fragments into speakable pieces."""

    def __init__(self, first_min_words: int = 1, first_max_words: int = 4, max_chars: int = 400) -> None:
        self._buffer = ""  # speakable text not yet cut into pieces
        self._ticks = ""  # trailing backticks that may be part of a fence split across fragments
        self._first = True
        self._in_code = False
        self._first_min_words = first_min_words
        self._first_max_words = first_max_words
        self._max_chars = max_chars

    def feed(self, text: str) -> list[str]:
        """Add a fragment; return the pieces it completes."""
        self._absorb(text)
        pieces: list[str] = []
        while (piece := self._next_piece()) is not None:
            if piece.strip():
                pieces.append(piece.strip())
        return pieces

    def flush(self) -> list[str]:
        """The text is complete: return whatever is left as pieces."""
        if not self._in_code:
            self._buffer += self._ticks
        self._ticks = ""
        self._in_code = False
        pieces = self.feed("")
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            pieces.append(rest)
        return pieces

    def _absorb(self, text: str) -> None:
        """Append text to the buffer, leaving out fenced code blocks."""
        data = self._ticks + text
        kept = data.rstrip("`")
        held = len(data) - len(kept)
        self._ticks = data[len(kept) :] if 0 < held < len(_FENCE) else ""
        if self._ticks:
            data = kept
        while data:
            fence = data.find(_FENCE)
            if self._in_code:
                if fence < 0:
                    return  # code is not spoken
                data = data[fence + len(_FENCE) :]
                self._in_code = False
                self._buffer += "\n\n"
            elif fence < 0:
                self._buffer += data
                return
            else:
                self._buffer += data[:fence] + "\n\n"
                data = data[fence + len(_FENCE) :]
                self._in_code = True

    def _next_piece(self) -> str | None:
        text = self._buffer
        ends = [
            match.end()
            for match in _SENTENCE_END.finditer(text)
            if not (match.group().startswith(".") and _NOT_AN_END.search(text[: match.end()]))
        ]
        if self._first:  # the first piece may end at a clause, or after a few words
            ends += [
                match.end()
                for match in _CLAUSE_END.finditer(text)
                if len(text[: match.start()].split()) >= self._first_min_words
            ]
            words = list(re.finditer(r"\S+(?=\s)", text))  # complete words only
            if len(words) > self._first_max_words:
                ends.append(self._first_cut(words))
        if ends and min(ends) <= self._max_chars:
            return self._take(min(ends))
        if len(text) > self._max_chars:  # a run-on sentence: cut at a space so memory stays bounded
            space = text.rfind(" ", 0, self._max_chars)
            return self._take(space if space > 0 else self._max_chars)
        return None

    def _first_cut(self, words: list[re.Match[str]]) -> int:
        """Where to end a first piece that has no clause boundary: before a function word
        among the last few allowed positions (a natural phrase break), else after the fewest words."""
        shortest = max(1, self._first_max_words - 1)
        for count in range(self._first_max_words, shortest - 1, -1):
            if words[count].group().lower().strip("\"'(") in _FUNCTION_WORDS:
                return words[count - 1].end()
        return words[shortest - 1].end()

    def _take(self, end: int) -> str:
        piece, self._buffer = self._buffer[:end], self._buffer[end:]
        if piece.strip():
            self._first = False
        return piece


def merge_pieces(pieces: list[str], max_chars: int = 250) -> list[str]:
    """Join later pieces of a whole text into longer ones (better prosody, fewer model calls).

    The first two stay as they are: the second must be ready before the short
    first one has finished playing.
    """
    merged = pieces[:2]
    current = ""
    for piece in pieces[2:]:
        if current and len(current) + 1 + len(piece) > max_chars:
            merged.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        merged.append(current)
    return merged

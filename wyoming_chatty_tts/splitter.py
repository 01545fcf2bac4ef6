"""Cut text that arrives in fragments (as an LLM writes it) into pieces to synthesize.

The first piece is short, a clause or a few words, so the first audio comes
early; after that each sentence is a piece. Fenced code blocks are skipped
whole, even when their fences arrive in different fragments.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n\s*\n|\n(?=\s*(?:[-*+•#>]|\d{1,3}[.)])\s)")
_CLAUSE_END = re.compile(r"[,;:—–](?=\s)|\s-\s")
_NOT_AN_END = re.compile(
    r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|Ave|No|vs|etc|approx|min|max|e\.g|i\.e|[A-Z]|\d{1,3})\.$"
)
_FENCE = "```"
# A number's scale word: "2 million 192 thousand" is not cut before one ("2 | million").
_SCALE_WORDS = frozenset(["hundred", "thousand", "million", "billion", "trillion"])
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

    def __init__(
        self,
        first_min_words: int = 1,
        first_max_words: int = 4,
        max_chars: int = 400,
        rewrite: Callable[[str], str] | None = None,
    ) -> None:
        """``rewrite``: applied to the text not yet cut each time more arrives, so that a piece can end where the
        text as written has no place for it (a large number written out in its groups, in English)."""
        self._buffer = ""  # speakable text not yet cut into pieces
        self._ticks = ""  # trailing backticks that may be part of a fence split across fragments
        self._first = True
        self._in_code = False
        self._first_min_words = first_min_words
        self._first_max_words = first_max_words
        self._max_chars = max_chars
        self._rewrite = rewrite

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
        if self._rewrite is not None:  # the text ends here: a number at its very end is complete too
            self._buffer = self._rewrite(self._buffer + " ")[:-1]
        pieces = self.feed("")
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            pieces.append(rest)
        return pieces

    def _absorb(self, text: str) -> None:
        """Append text to the buffer, leaving out fenced code blocks, and rewrite it."""
        self._append(text)
        if self._rewrite is not None:
            self._buffer = self._rewrite(self._buffer)

    def _append(self, text: str) -> None:
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
            # A sentence or clause that ends within the allowed words is the first piece whole: cut shorter, it
            # would also differ with how the text arrived ("The sky is | blue." when it comes at once, as Home
            # Assistant sends its first 60 characters, against "The sky is blue." word by word).
            if len(words) > self._first_max_words and not any(
                end <= words[self._first_max_words - 1].end() for end in ends
            ):
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
            if _word(words[count]) in _FUNCTION_WORDS:
                return words[count - 1].end()
        for count in range(shortest, len(words)):  # "It is 2 | million ..." is no place to stop
            if _word(words[count]) not in _SCALE_WORDS:
                return words[count - 1].end()
        return words[-1].end()

    @property
    def pending(self) -> str:
        """The text received and not yet cut into a piece."""
        return self._buffer

    def take_words(self, max_chars: int, min_words: int = 2) -> str | None:
        """The listener is about to run out of audio: a piece of the complete words buffered now, at most about
        ``max_chars`` long and cut at a phrase break, instead of waiting for the clause or sentence to end.
        None while fewer than ``min_words`` words are complete."""
        words = list(_WORD.finditer(self._buffer))
        end = phrase_cut(self._buffer, words, max_chars, min_words, min_tail_words=0)
        if end is None:
            return None
        return self._take(end).strip() or None

    def _take(self, end: int) -> str:
        piece, self._buffer = self._buffer[:end], self._buffer[end:]
        if piece.strip():
            self._first = False
        return piece


PHRASE_WORDS = 4  # a piece cut shorter than this may take up to this many words to end at a phrase break
_WORD = re.compile(r"\S+(?=\s)")  # a word followed by a space: complete, however the text goes on


def phrase_cut(
    text: str, words: list[re.Match[str]], max_chars: int, min_words: int, min_tail_words: int
) -> int | None:
    """Where to end a piece of at most ``max_chars`` characters (but ``min_words`` words at least) taken from the
    start of ``text``: after a clause, else before a function word (either if not much shorter), else after a word;
    a piece of fewer than PHRASE_WORDS words goes on to a phrase break within that many words if there is one.
    ``words`` are the complete words of ``text``; at least ``min_tail_words`` of them must be left after
    the cut. None if there is no such place."""
    if len(words) < min_words + min_tail_words:
        return None
    limit = max(max_chars, words[min_words - 1].end())
    last = len(words) - min_tail_words  # the piece may end after words[last - 1] at the latest
    fitting = [k for k in range(min_words, last + 1) if words[k - 1].end() <= limit]  # pieces of k words that fit
    ends = sorted({words[k - 1].end() for k in (_past_scale_words(words, k, last) for k in fitting) if k})
    if not ends:
        return None
    clauses = [
        m.end()
        for m in _CLAUSE_END.finditer(text, 0, limit)
        if limit / 2 <= m.end() <= ends[-1] and len(text[: m.start()].split()) >= min_words
    ]
    if clauses:
        return clauses[-1]
    breaks = [
        words[k - 1].end()
        for k in range(min_words, last)
        if limit / 2 <= words[k - 1].end() <= limit and _word(words[k]) in _FUNCTION_WORDS
    ]
    if breaks:
        return breaks[-1]
    if len(fitting) + min_words - 1 < PHRASE_WORDS:  # a few words only: rather end a phrase ("the kitchen light |")
        for k in range(min_words, min(last, PHRASE_WORDS) + 1):
            if _CLAUSE_END.match(text, words[k - 1].end() - 1) or (
                k < len(words) and _word(words[k]) in _FUNCTION_WORDS
            ):
                return words[k - 1].end()
    return ends[-1]


def _past_scale_words(words: list[re.Match[str]], count: int, last: int) -> int | None:
    """How many words a piece of ``count`` words takes so it does not end before a scale word ("2 | million"): the
    scale words that follow join it, unless that would leave fewer than ``last`` words to it (None)."""
    while count < len(words) and _word(words[count]) in _SCALE_WORDS:
        count += 1
    return count if count <= last else None


def _word(match: re.Match[str]) -> str:
    """A word as the cutting rules compare it: lower case, without quotes or an opening bracket."""
    return match.group().lower().strip("\"'(")


def cut_to_fit(piece: str, max_chars: int, min_words: int = 2) -> tuple[str, str]:
    """Cut a whole piece at a phrase break so that its head has at most about ``max_chars`` characters (the rest
    keeps two words at least); a piece that fits, or has no such break, is not cut."""
    if len(piece) <= max_chars:
        return piece, ""
    end = phrase_cut(piece, list(re.finditer(r"\S+", piece)), max_chars, min_words, min_tail_words=2)
    if end is None:
        return piece, ""
    return piece[:end].strip(), piece[end:].strip()


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

"""Coverage-guided fuzzing (atheris) of the TTS server's text handling: any text an LLM may write.

The text, cut into fragments where the fuzzer says, goes through the streaming
splitter (with the English number rewrite, or without) and the speech cleaner
as a stream does in the server. It must never
raise, and every piece stays within the splitter's size (so one model call's
memory stays bounded). Slow inputs (a regular expression backtracking) are
reported by atheris' -timeout.

    python tests/fuzz/fuzz_tts_text.py [-max_total_time=60] [CORPUS_DIR]
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from wyoming_chatty_tts.splitter import TextSplitter, merge_pieces
    from wyoming_chatty_tts.text import number_groups, spoken

MAX_CHARS = 120


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = fdp.ConsumeIntListInRange(fdp.ConsumeIntInRange(0, 8), 1, 64)
    rewrite = [None, number_groups, lambda text: number_groups(text, british=True)][fdp.ConsumeIntInRange(0, 2)]
    text = fdp.ConsumeUnicodeNoSurrogates(4096)
    splitter = TextSplitter(max_chars=MAX_CHARS, rewrite=rewrite)
    pieces: list[str] = []
    start = 0
    for size in cuts:
        pieces += splitter.feed(text[start : start + size])
        start += size
    pieces += splitter.feed(text[start:])
    pieces += splitter.flush()
    for piece in pieces:
        assert piece and piece == piece.strip(), repr(piece)
        assert len(piece) <= MAX_CHARS + 4, (len(piece), piece)  # a few backticks of a fence may ride along
        assert isinstance(spoken(piece), str)
    for merged in merge_pieces(pieces, max_chars=2 * MAX_CHARS):
        assert merged.strip(), repr(merged)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

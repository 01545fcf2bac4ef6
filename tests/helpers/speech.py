"""Comparing what was heard with what was said."""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def word_accuracy(expected: str, heard: str) -> float:
    """1 - word error rate of ``heard`` against ``expected`` (may go below 0 with many insertions)."""
    reference, hypothesis = words(expected), words(heard)
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return 1 - row[-1] / max(1, len(reference))

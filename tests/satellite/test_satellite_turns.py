"""The turn record's rules, in-process: when an answer asks back (both modes listen again without the wake word)."""

from __future__ import annotations

import pytest

from satellite.turn_log import Outcome, Turn


@pytest.mark.parametrize(
    ("answer", "outcome", "asks"),
    [
        ("Would you like to hear more?", "answered", True),
        ("Would you like to hear more?  ", "answered", True),
        ("もっと聞きますか？", "answered", True),  # full-width question mark
        ("Θέλετε να ακούσετε περισσότερα;", "answered", True),  # Greek, typed with a semicolon
        ("Θέλετε να ακούσετε περισσότερα\u037e", "answered", True),  # Greek question mark
        ("The capital of France is Paris.", "answered", False),
        ("Would you like to hear more?", "interrupted", False),  # cut off: the user has moved on
        (None, "answered", False),
    ],
)
def test_an_answer_that_ends_with_a_question_asks_back(answer, outcome, asks):
    for mode in ("direct", "ha"):
        assert Turn(mode=mode, answer=answer, outcome=Outcome(outcome)).asks_back() is asks

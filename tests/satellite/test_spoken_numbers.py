"""Numbers read as they were said before the words model judges a pause (satellite.spoken_numbers)."""

from __future__ import annotations

import pytest

from satellite.spoken_numbers import LARGEST, number_words, ordinal_words, say_numbers


@pytest.mark.parametrize(
    ("number", "spoken"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (21, "twenty one"),
        (40, "forty"),
        (100, "one hundred"),
        (180, "one hundred eighty"),
        (1905, "one thousand nine hundred five"),
        (2_000_000, "two million"),
    ],
)
def test_whole_numbers_in_words(number, spoken):
    assert number_words(number) == spoken


@pytest.mark.parametrize(
    ("number", "spoken"), [(1, "first"), (3, "third"), (12, "twelfth"), (20, "twentieth"), (21, "twenty first")]
)
def test_ordinals_in_words(number, spoken):
    assert ordinal_words(number) == spoken


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("Wake me up at 6.", "Wake me up at six."),
        ("Dim the lights to 50%", "Dim the lights to fifty percent"),
        ("Set an alarm for 6:30", "Set an alarm for six thirty"),
        ("Set an alarm for 7:05", "Set an alarm for seven oh five"),
        ("Wake me at 7:00", "Wake me at seven o'clock"),
        ("Set an alarm for 6 a.m.", "Set an alarm for six am"),
        ("Set it to 21°", "Set it to twenty one degrees"),
        ("Add 1,250 grams", "Add one thousand two hundred fifty grams"),
        ("Set it to 2.5", "Set it to two point five"),
        ("Remind me on the 21st", "Remind me on the twenty first"),
        ("Turn on the lights", "Turn on the lights"),
        ("Play the v2 mix", "Play the v2 mix"),  # digits inside a word stay
    ],
)
def test_numbers_as_whisper_writes_them_read_as_said(written, said):
    assert say_numbers(written) == said


def test_numbers_too_large_stay_in_digits():
    assert say_numbers(f"call {LARGEST + 1}") == f"call {LARGEST + 1}"
    with pytest.raises(ValueError, match="out of range"):
        number_words(-1)

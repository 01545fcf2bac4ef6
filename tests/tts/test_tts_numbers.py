"""Large numbers are written in their groups before the text is cut, so a piece can end inside one.

The listener of "The moon is | about 2,192,080 miles away" heard 1.5 s of silence after the first piece:
to the splitter the number was one word that takes seven to say, so the piece after it could not be
cut to be ready in time. The rewrite must not change what is said: espeak-ng (the real one, as the
server loads it) gives the same phonemes for both forms.
"""

from __future__ import annotations

import pytest

from wyoming_chatty_tts.phonemes import Phonemizer
from wyoming_chatty_tts.splitter import TextSplitter, cut_to_fit
from wyoming_chatty_tts.text import number_groups

NUMBERS = [
    "The moon is about 2,192,080 miles away.",
    "It has 38,000,000 people, 1,005 towns, and 7,900,000,000 neighbours",
    "It costs 1,234.56 units, or 1,000,080 of them; 3,000,001 and 100,000 more.",
    "Only 2,000,100,000 of 999,999,999,999 were the 2,192,080th.",
]


@pytest.mark.parametrize(
    ("text", "american", "british"),
    [
        ("about 2,192,080 miles", "about 2 million 192 thousand 80 miles", "about 2 million 192,080 miles"),
        ("38,000,000 people", "38 million people", "38 million people"),
        ("7,900,000,000.", "7 billion 900 million.", "7 billion 900 million."),
        ("1,234.56 units", "1 thousand 234.56 units", "1 thousand 234.56 units"),
        ("1,000,080 of", "1 million 80 of", "1,000,080 of"),  # British "and eighty": left whole
        ("2,192,", "2,192,", "2,192,"),  # may go on (",080"): not complete yet
        ("2,192", "2,192", "2,192"),
        ("It costs $2,500,000 now", "It costs $2,500,000 now", "It costs $2,500,000 now"),  # money is spelled later
        ("in 1969 and 2024,", "in 1969 and 2024,", "in 1969 and 2024,"),  # years have no separators
    ],
)
def test_large_numbers_are_written_in_groups(text, american, british):
    assert number_groups(text) == american
    assert number_groups(text, british=True) == british


@pytest.mark.parametrize("language", ["en-us", "en-gb"])
def test_the_groups_are_said_exactly_as_the_number(language):
    phonemizer = Phonemizer(language)
    for text in NUMBERS:
        rewritten = number_groups(text, british=language == "en-gb")
        assert rewritten != text
        assert phonemizer.phonemes(rewritten) == phonemizer.phonemes(text), rewritten


def test_a_number_streamed_in_fragments_is_rewritten_once_complete():
    splitter = TextSplitter(rewrite=number_groups)
    assert splitter.feed("The moon is about 2,1") == []
    assert splitter.feed("92,0") == []
    assert splitter.pending == "The moon is about 2,192,0"
    assert splitter.feed("80 miles away. It") == ["The moon is", "about 2 million 192 thousand 80 miles away."]
    assert splitter.flush() == ["It"]


def test_a_piece_can_end_inside_a_large_number_but_not_before_its_scale_word():
    splitter = TextSplitter(rewrite=number_groups)
    assert splitter.feed("The moon is about 2,192,080 miles") == ["The moon is"]
    assert splitter.take_words(12) == "about 2 million"  # not "about 2", though that would fit
    assert splitter.take_words(12) == "192 thousand"
    assert cut_to_fit("about 2 million 192 thousand 80 miles away.", 9) == (
        "about 2 million",
        "192 thousand 80 miles away.",
    )
    # Without the rewrite the number is one word: the rest could not be cut before "miles".
    assert cut_to_fit("about 2,192,080 miles away.", 9) == ("about 2,192,080", "miles away.")


def test_a_first_piece_does_not_end_before_a_scale_word():
    splitter = TextSplitter(rewrite=number_groups)
    assert splitter.feed("It is 2,192,080 miles away. ") == ["It is 2 million", "192 thousand 80 miles away."]


def test_a_number_at_the_very_end_of_the_text_is_complete():
    splitter = TextSplitter(rewrite=number_groups)
    assert splitter.feed("It takes the moon 2,192") == []  # may go on
    assert splitter.flush() == ["It takes the", "moon 2 thousand 192"]  # a first piece of three words, as always

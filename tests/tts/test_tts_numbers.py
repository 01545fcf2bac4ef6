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
from wyoming_chatty_tts.text import number_groups, spoken

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
        ("$2,500,000 now", "2 million 500 thousand dollars now", "2 million 500 thousand dollars now"),
        ("£1,250,080.50 a", "1 million 250 thousand 80 pounds 50 pence a", "1 million 250,080 pounds 50 pence a"),
        ("€38,250.05, or", "38 thousand 250 euros 5 cents, or", "38 thousand 250 euros 5 cents, or"),
        ("$1,250.5", "$1,250.5", "$1,250.5"),  # may go on ("$1,250.55")
        ("$1,250.", "$1,250.", "$1,250."),  # may go on (cents)
        ("$1,500 mil", "$1,500 mil", "$1,500 mil"),  # may go on ("million")
        ("$1,500 million.", "$1,500 million.", "$1,500 million."),  # money with a scale word is spelled later
        ("$1,500 Million.", "$1,500 Million.", "$1,500 Million."),
        ("$2,000 ", "$2,000 ", "$2,000 "),  # may go on
        ("$1,000s of", "$1,000s of", "$1,000s of"),  # not an amount of money followed by a word
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


MONEY = [
    "The house sold for £1,250,000.50 last year.",
    "It costs $2,500,000 now, or about €38,250.05 a year.",
    "Tickets cost $1,000.01 each; the prize is $ 3,000,000,000!",
]


@pytest.mark.parametrize("language", ["en-us", "en-gb"])
def test_money_in_groups_is_said_exactly_as_the_amount(language):
    """Money is spelled out (its currency after the amount) when it is spoken: the groups must say the same."""
    phonemizer = Phonemizer(language)
    for text in MONEY:
        rewritten = number_groups(text + " ", british=language == "en-gb")  # (as at the end of the text)
        assert "$" not in rewritten and "€" not in rewritten and "£" not in rewritten, rewritten
        assert phonemizer.phonemes(spoken(rewritten)) == phonemizer.phonemes(spoken(text)), rewritten


def test_a_piece_can_end_inside_an_amount_of_money():
    """An LLM's "$92,955,807.50" was one word to the splitter and eleven to say, as large numbers were."""
    splitter = TextSplitter(rewrite=number_groups)
    assert splitter.feed("The new house cost about $92,955,80") == ["The new house cost"]
    assert splitter.feed("7.5") == []
    assert splitter.pending.strip() == "about $92,955,807.5"  # the cents may go on
    assert splitter.feed("0 in all") == []
    assert splitter.take_words(12) == "about 92 million"
    assert splitter.flush() == ["955 thousand 807 dollars 50 cents in all"]
    # Without the rewrite the amount is one word: the rest could not be cut before "in".
    assert cut_to_fit("about $92,955,807.50 in all", 9) == ("about $92,955,807.50", "in all")


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

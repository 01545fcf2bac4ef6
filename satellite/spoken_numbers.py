"""Numbers written as they are said ("at 6" → "at six", "50%" → "fifty percent") for the words model.

Whisper writes numbers in digits. The end-of-turn words model, a small language model trained on
written text, reads a request ending on a digit as one likely to go on ("Wake me up at 6" 0.03: "6:30",
"6 am"; "Dim the lights to 50%" 0.02 once the "%" is gone), and such requests waited the longer silence;
spelled out as they were spoken, most of them end ("at six" 0.24). Timers, alarms, thermostats and
lights end on numbers more than any other commands a home assistant hears.
"""

from __future__ import annotations

import re

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]  # fmt: skip
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_GROUPS = ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_ENDINGS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                    "nine": "ninth", "twelve": "twelfth"}  # fmt: skip
LARGEST = 999_999_999_999  # larger numbers stay in digits

_CLOCK = re.compile(r"\b(\d{1,2}):(\d\d)\b")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
_HALF_DAY = re.compile(r"\b([ap])\.\s?m\.", re.IGNORECASE)


def number_words(number: int) -> str:
    """A whole number from 0 to :data:`LARGEST` in words: 21 → "twenty one", 1905 → "one thousand nine hundred five"."""
    if not 0 <= number <= LARGEST:
        raise ValueError(f"{number} is out of range")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    size, name = next((size, name) for size, name in _GROUPS if number >= size)  # "hundred" at least
    count, rest = divmod(number, size)
    return f"{number_words(count)} {name}" + (f" {number_words(rest)}" if rest else "")


def ordinal_words(number: int) -> str:
    """21 → "twenty first", 12 → "twelfth"."""
    spoken = number_words(number).split()
    last = spoken[-1]
    if last in _ORDINAL_ENDINGS:
        spoken[-1] = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        spoken[-1] = last[:-1] + "ieth"
    else:
        spoken[-1] = last + "th"
    return " ".join(spoken)


def say_numbers(text: str) -> str:
    """``text`` with its numbers, times of day, ordinals and percentages in words, as a speaker said them."""
    text = _HALF_DAY.sub(lambda match: f"{match.group(1).lower()}m", text)  # "6 a.m." → "6 am"
    text = _CLOCK.sub(_clock_words, text)
    text = _ORDINAL.sub(_ordinal, text)
    text = _NUMBER.sub(_number, text)
    return text.replace("%", " percent").replace("°", " degrees")


def _clock_words(match: re.Match[str]) -> str:
    """A time of day: "6:30" → "six thirty", "7:05" → "seven oh five", "7:00" → "seven o'clock"."""
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 24 or minute > 59:
        return match.group(0)
    if minute == 0:
        return f"{number_words(hour)} o'clock"
    return f"{number_words(hour)} {'oh ' if minute < 10 else ''}{number_words(minute)}"


def _ordinal(match: re.Match[str]) -> str:
    number = int(match.group(1))
    return ordinal_words(number) if number <= LARGEST else match.group(0)


def _number(match: re.Match[str]) -> str:
    """A number, maybe with thousands separators and decimals: "2.5" → "two point five"."""
    number = int(match.group(1).replace(",", ""))
    if number > LARGEST:
        return match.group(0)
    decimals = match.group(2)
    return number_words(number) + (" point " + " ".join(_ONES[int(d)] for d in decimals) if decimals else "")

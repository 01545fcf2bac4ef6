"""Text clean-up and splitting for speech, without the model."""

from __future__ import annotations

import re

import pytest

from wyoming_chatty_tts.pacing import MARGIN, ListenerClock, SynthesisSpeed
from wyoming_chatty_tts.splitter import TextSplitter, cut_to_fit, merge_pieces
from wyoming_chatty_tts.text import spoken


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Sure!** It is *really* __nice__.", "Sure! It is really nice."),
        ("# Forecast\n- Sunny\n- Windy 🌬️\n1. Rain", "Forecast. Sunny. Windy. Rain."),
        ("See [the docs](https://example.com/x) or https://example.org.", "See the docs or."),
        ("Run `ls` now.\n```bash\nrm -rf /\n```\nDone.", "Run ls now. Done."),
        ("| city | temp |\n|---|---|\n| Paris | 21 |", "city, temp. Paris, 21."),
        ("It costs $21.50, or €1, or $2 million.", "It costs 21 dollars 50 cents, or 1 euro, or 2 million dollars."),
        ("Meet at 3:30 pm, 7:05 a.m. or 15:00.", "Meet at 3 30 PM, 7 oh 5 AM or 15 o'clock."),
        (
            "It is 21°C and 70 °F, wind 15 km/h.",
            "It is 21 degrees Celsius and 70 degrees Fahrenheit, wind 15 kilometers per hour.",
        ),
        ("Dr. Smith met Mr. Jones, e.g. today.", "Doctor Smith met Mister Jones, for example today."),
        ("2*3 = 6 & done 😀", "2 times 3 equals 6 and done"),
    ],
)
def test_spoken_text(text, expected):
    assert spoken(text) == expected


def _split(fragments: list[str]) -> list[str]:
    splitter = TextSplitter()
    pieces = []
    for fragment in fragments:
        pieces += splitter.feed(fragment)
    return pieces + splitter.flush()


def test_first_piece_is_a_short_clause_then_sentences():
    text = "Sure, the weather in Paris is sunny today. Dr. Smith says it will be 21.5 degrees! Bye."
    fragments = [text[i : i + 3] for i in range(0, len(text), 3)]  # as an LLM streams it
    assert _split(fragments) == [
        "Sure,",
        "the weather in Paris is sunny today.",
        "Dr. Smith says it will be 21.5 degrees!",
        "Bye.",
    ]


def test_first_piece_without_a_clause_is_a_few_words():
    pieces = _split(["The weather in Paris is going to be sunny and warm today"])
    assert pieces == ["The weather in Paris", "is going to be sunny and warm today"]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("The capital of France is Paris.", "The capital of France"),  # before "is"
        ("Your next meeting starts at three.", "Your next meeting starts"),  # before "at"
        ("I turned on the kitchen lights.", "I turned on"),  # before "the"
        ("A good pasta sauce needs ripe tomatoes.", "A good pasta"),  # no phrase break: three words
    ],
)
def test_first_piece_ends_at_a_phrase_break_when_there_is_one(text, first):
    assert _split([text])[0] == first


@pytest.mark.parametrize(
    "text",
    [
        "The sky is blue. It scatters sunlight, and blue light scatters most.",
        "Cats sleep a lot. Most sleep between twelve and sixteen hours each day.",
        "The old red barn, it stood in that field for more than a hundred years.",
        "The capital of France is Paris. It is known for its art, food and history.",
        "Water boils at 100 degrees Celsius. At higher altitudes it boils at lower temperatures.",
    ],
)
def test_the_first_piece_is_the_same_however_the_text_arrives(text):
    """Token by token (an LLM, and the speech Chatty's integration prepares from the answer's first words) or
    its first 60 characters at once (Home Assistant starts streaming speech so): the first piece must be the
    same, or the prepared one is not used. A sentence or clause within four words is not cut shorter."""
    tokens = re.findall(r"\s*[^\s.,!?]+|[.,!?]", text)
    at_once = next(i for i in range(len(tokens)) if len("".join(tokens[: i + 1])) > 60) + 1
    first = _split(tokens)[0]
    assert _split(["".join(tokens[:at_once]), *tokens[at_once:]])[0] == first
    assert _split([text])[0] == first
    if (sentence := text.split(". ")[0] + ".").count(" ") < 4:
        assert first == sentence


def test_code_fences_split_across_fragments_are_skipped():
    text = "Here it is: ```python\nprint('hello world')\n``` That was the code. Bye."
    fragments = [text[i : i + 2] for i in range(0, len(text), 2)]
    joined = " ".join(_split(fragments))
    assert "print" not in joined and "hello" not in joined and "`" not in joined
    assert joined == "Here it is: That was the code. Bye."


def test_run_on_text_is_cut_so_memory_stays_bounded():
    splitter = TextSplitter(max_chars=100)
    splitter.feed("start, ")
    pieces = splitter.feed("word " * 1000)
    assert all(len(piece) <= 100 for piece in pieces)
    assert sum(len(piece.split()) for piece in pieces) >= 950


def test_merging_keeps_the_first_two_pieces_short():
    pieces = ["Sure,", "the sun shines.", "It is warm.", "Bring water.", "Have fun."]
    assert merge_pieces(pieces, max_chars=30) == ["Sure,", "the sun shines.", "It is warm. Bring water.", "Have fun."]


@pytest.mark.parametrize(
    ("piece", "max_chars", "expected"),
    [
        ("the United States is New York City.", 20, ("the United States", "is New York City.")),  # before "is"
        (
            "Jupiter, but the largest planet is not a planet at all.",
            35,
            ("Jupiter, but the largest planet is", "not a planet at all."),  # before "not", not at the comma
        ),
        (
            "It is warm, sunny and dry in the whole country today.",
            14,
            ("It is warm,", "sunny and dry in the whole country today."),
        ),
        ("It is a gas giant made mostly of hydrogen.", 25, ("It is a gas giant made", "mostly of hydrogen.")),
        ("the United States is New York City.", 0, ("the United States", "is New York City.")),  # late already
        ("the kitchen light is now off.", 4, ("the kitchen light", "is now off.")),  # not "the kitchen |"
        ("New York City.", 3, ("New York City.", "")),  # a one-word rest is never left
        ("Paris is the capital.", 100, ("Paris is the capital.", "")),  # it fits
    ],
)
def test_a_piece_that_would_not_be_ready_in_time_is_cut_at_a_phrase_break(piece, max_chars, expected):
    assert cut_to_fit(piece, max_chars) == expected


def test_words_waiting_for_their_sentence_to_end_can_be_spoken_now():
    splitter = TextSplitter()
    assert splitter.feed("The capital of the United States is New") == ["The capital of"]
    assert splitter.take_words(20) == "the United States"  # complete words only, before "is"
    assert splitter.pending == " is New"
    assert splitter.take_words(20) is None  # "New" may go on ("Newark"): one complete word is not a piece
    assert splitter.feed(" York City. It is") == ["is New York City."]
    assert splitter.flush() == ["It is"]


def test_the_speed_of_synthesis_is_learned_from_the_pieces_made():
    speed = SynthesisSpeed(per_phoneme=0.03)
    for _ in range(20):
        speed.record(40, 0.6)  # 0.01 s a phoneme with the call's overhead
    assert speed.seconds(40) == pytest.approx(0.6, rel=0.05)
    assert speed.length_within(0.6) == pytest.approx(40, abs=3)
    assert speed.length_within(0.0) == 0
    assert SynthesisSpeed.timed(40, 0.6).seconds(40) == pytest.approx(0.6)


def test_the_listener_clock_counts_down_the_audio_sent():
    clock = ListenerClock()
    assert not clock.started and clock.left() == 0.0
    clock.sent(1.0)
    clock.sent(0.5)
    assert clock.started and 1.4 < clock.left() <= 1.5
    assert clock.budget() == pytest.approx(clock.left() - MARGIN, abs=0.01)

"""The end-of-turn words model on written requests whose end is known: whole ones and cut ones.

The turn corpus (``turn_corpus.py``) measures the whole end of turn on speech; this measures the words
model alone, on the text Whisper writes, for kinds of request the corpus has few of. The ``numbers``
sets are requests that end on a number, as Whisper writes them (digits, "%", "6:30", "a.m."): timers,
alarms, thermostats and lights, the commands a voice assistant in a home hears most. ``tune`` was used
to design the satellite's reading of numbers; ``held_out`` was written before that and not used for it.

    .venv/bin/python bench/words_bench.py [--set numbers-tune|numbers-held-out|all] [--threshold 0.06]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from satellite.end_of_turn import TurnTaking
from satellite.turn_text import TextTurnModel, unfinished

# (whole requests, requests cut where a speaker might pause and go on)
SETS: dict[str, tuple[list[str], list[str]]] = {
    "numbers-tune": (
        [
            "Set a timer for 5 minutes",
            "Set an alarm for 7",
            "Wake me up at 6",
            "Set the temperature to 21",
            "Set the thermostat to 68",
            "Dim the lights to 50%",
            "Set the volume to 3",
            "Remind me at 9",
            "Set a timer for 10 minutes",
            "Turn the heat up to 22 degrees",
            "Set an alarm for 6:30",
            "What is 2 plus 2",
            "What is 12 times 4",
            "Remind me to call mom at 5",
            "Play track 4",
            "Set the fan to speed 2",
            "Set the lights to 30 percent",
            "Set a timer for 1 hour",
            "Wake me up at 7 am",
            "Set the oven to 180 degrees",
        ],
        [
            "Set a timer for",
            "Wake me up at",
            "What is 2 plus",
            "Dim the lights to",
            "Set the volume to",
            "What is 12 times",
            "Remind me to call mom at 5 and",
            "Set the thermostat to 68 in the",
        ],
    ),
    "numbers-held-out": (
        [
            "Set the bedroom lights to 40%",
            "Turn the volume up to 8",
            "Set a timer for 15 minutes",
            "Wake me up at 5:45",
            "Set the living room to 19 degrees",
            "Remind me to take my pills at 8",
            "Set an alarm for 6 a.m.",
            "What is 15 times 3",
            "Change the channel to 7",
            "Set the brightness to 75%",
            "Set a timer for 3 minutes",
            "Call me at 4",
            "Set the heating to 20",
            "Remind me in 2 hours",
            "Skip to song 3",
            "What is 100 divided by 4",
            "Set the air conditioning to 24",
            "Turn the kitchen lights down to 10%",
            "Start the washing machine at 9",
            "Set an alarm for 7:15",
            "How much is 20 plus 35",
            "Set the timer to 90 seconds",
            "Set the blinds to 50%",
            "Add 2 liters of milk to the shopping list",
            "Set the fan speed to 3",
        ],
        [
            "What is 15 times",
            "What is 100 divided by",
            "How much is 20 plus",
            "Remind me in 2",
            "Add 2",
            "Call me at",
            "Turn the volume up to",
            "Set the living room to",
            "Set an alarm for 7:15 on",
            "Wake me up at 5:45 every",
        ],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=[*SETS, "all"], default="all")
    parser.add_argument("--threshold", type=float, default=TurnTaking.words_threshold)
    parser.add_argument("--verbose", action="store_true", help="each request's probability")
    args = parser.parse_args()
    model = TextTurnModel()
    try:
        for name in SETS if args.set == "all" else [args.set]:
            whole, cut = SETS[name]
            whole_scores = [_probability(model, text, args.verbose) for text in whole]
            ended_whole = [score for score in whole_scores if score >= args.threshold]
            ended_cut = [text for text in cut if _probability(model, text, args.verbose) >= args.threshold]
            print(
                f"{name}: whole requests taken as ended {len(ended_whole)} of {len(whole)} "
                f"(median probability {statistics.median(whole_scores):.3f}); "
                f"cut requests taken as ended {len(ended_cut)} of {len(cut)}"
            )
            for text in ended_cut:
                print(f"  cut, taken as ended: {text!r}")
    finally:
        model.close()


def _probability(model: TextTurnModel, text: str, verbose: bool) -> float:
    """The probability that a request ends after ``text``, as the satellite reckons it (0 for words that
    cannot end one)."""
    probability = 0.0 if unfinished(text) else model.complete(text)
    if verbose:
        print(f"  {probability:.3f}  {text}")
    return probability


if __name__ == "__main__":
    main()

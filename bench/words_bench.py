"""The end-of-turn words model on written requests whose end is known: whole ones and cut ones.

The turn corpus (``turn_corpus.py``) measures the whole end of turn on speech; this measures the words
model alone, on the text Whisper writes, for kinds of request the corpus has few of. The ``numbers``
sets are requests that end on a number, as Whisper writes them (digits, "%", "6:30", "a.m."): timers,
alarms, thermostats and lights, the commands a voice assistant in a home hears most. ``tune`` was used
to design the satellite's reading of numbers; ``held_out`` was written before that and not used for it.
The ``commands`` sets are everyday commands and questions to a smart home without numbers (lights, locks,
media, lists, weather, "Stop"), with cuts where a speaker might pause and go on; ``held-out`` was written
with ``tune``, before the words model's requests that are whole on their own (``WHOLE_ALONE``), but its
low scorers were seen when they were chosen. A whole request under ``--sure`` (0.3) is heard a second time.
The ``de``, ``fr``, ``es`` and ``it`` sets are smart-home requests in German, French, Spanish and Italian
(the languages of Chatty's other voices), written after the satellite stopped applying the English rule on
the last word to them and not used to tune anything; each is also scored with that English rule, as before.

    .venv/bin/python bench/words_bench.py [--set numbers-tune|...|all] [--threshold 0.06] [--verbose]
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
    "commands-tune": (
        [
            "Turn on the kitchen lights",
            "Turn off the lights",
            "Turn off the living room lights",
            "Switch on the fan",
            "Turn on the TV",
            "Open the garage door",
            "Close the blinds",
            "Lock the front door",
            "Unlock the back door",
            "Is the front door locked",
            "Are the lights on in the kitchen",
            "What's the temperature inside",
            "What's the weather like",
            "What's the weather tomorrow",
            "Will it rain today",
            "Add milk to the shopping list",
            "Add eggs to my shopping list",
            "What's on my shopping list",
            "Start the vacuum",
            "Stop the music",
            "Pause the music",
            "Play some jazz",
            "Next song",
            "Turn up the volume",
            "Turn it down",
            "Good night",
            "Cancel the timer",
            "How much time is left on the timer",
            "Turn on the bedroom lamp",
            "Turn off all the lights",
            "Make the lights brighter",
            "Set the lights to blue",
            "Is the washing machine done",
            "Open the curtains in the bedroom",
            "Turn on the heating",
            "Turn off the air conditioning",
            "What time is it",
            "What's the date today",
            "Who are you",
            "Thank you",
            "Turn the lights on",
            "Turn the bedroom lights off",
            "Stop",
            "Never mind",
        ],
        [
            "Turn on the kitchen",
            "Turn off the living room",
            "Switch on",
            "Open the garage",
            "Lock the front",
            "Is the front door",
            "Are the lights on in",
            "What's the temperature in",
            "What's the weather in",
            "Add milk to the shopping",
            "Add eggs",
            "What's on my",
            "Start the",
            "Play some",
            "Turn up",
            "Cancel the",
            "How much time is left on",
            "Turn on the bedroom",
            "Make the lights",
            "Set the lights to",
            "Open the curtains in",
            "Turn on the heating in",
            "Turn off the air",
            "Turn the bedroom lights",
            "Turn off the lights in",
            "Play some music in",
            "Set a timer for",
            "Remind me to",
            "Is the washing",
        ],
    ),
    "commands-held-out": (
        [
            "Turn on the hallway light",
            "Switch off the bedroom fan",
            "Turn off the porch light",
            "Open the front gate",
            "Close the garage",
            "Is the back door open",
            "Lock all the doors",
            "Turn on the coffee maker",
            "Start the dishwasher",
            "What's the humidity in the bathroom",
            "Is it going to snow tomorrow",
            "How cold is it outside",
            "Turn the heater off",
            "Set the living room to warm white",
            "Make it warmer",
            "Turn the music down",
            "Skip this song",
            "Play the news",
            "Resume the music",
            "Mute the TV",
            "What's playing",
            "Remove bread from the shopping list",
            "Add bananas to the grocery list",
            "Cancel all timers",
            "How long is left on the pasta timer",
            "Turn everything off",
            "Turn on the Christmas lights",
            "Dim the kitchen lights",
            "Brighten the office",
            "Turn on the porch light and the garage light",
            "What's the forecast",
            "Good morning",
            "Where is my phone",
            "Is anyone home",
            "Turn off the sprinklers",
            "Close the shades in the office",
            "Arm the alarm",
            "Disarm the alarm",
            "Thanks",
            "Cancel",
        ],
        [
            "Turn on the hallway",
            "Switch off the bedroom",
            "Open the front",
            "Is the back door",
            "Lock all",
            "What's the humidity in",
            "Turn the heater",
            "Set the living room",
            "Turn the music",
            "Remove bread from",
            "Remove bread from the shopping",
            "Add bananas to the grocery",
            "Cancel all",
            "How long is left on",
            "How long is left on the pasta",
            "Turn on the Christmas",
            "Dim the kitchen",
            "Turn on the porch light and the garage",
            "Is anyone",
            "Close the shades in",
            "What's the forecast for",
            "Turn on the living",
            "Turn off the lights in",
            "Play some music in",
            "Turn on the lights in the dining",
            "Set the office lights",
            "Open the blinds in",
            "Switch the fan",
            "Turn the oven",
        ],
    ),
    "de": (
        [
            "Mach das Licht im Flur an",
            "Schalte den Fernseher aus",
            "Mach die Rollläden zu",
            "Stell die Heizung im Bad auf zweiundzwanzig Grad",
            "Wie wird das Wetter heute",
            "Spiel etwas Jazz im Wohnzimmer",
            "Ist die Haustür abgeschlossen",
            "Setz Milch auf die Einkaufsliste",
            "Mach die Musik leiser",
            "Wecke mich morgen um sechs",
            "Schalte die Kaffeemaschine ein",
            "Wie spät ist es",
        ],
        [
            "Mach das Licht im",
            "Schalte den",
            "Stell die Heizung im Bad auf",
            "Wie wird das Wetter in",
            "Spiel etwas Jazz im",
            "Setz Milch auf die",
            "Wecke mich morgen um",
            "Schalte die Kaffeemaschine und",
            "Mach das Licht",
        ],
    ),
    "fr": (
        [
            "Allume la lumière du salon",
            "Éteins la télévision",
            "Ferme les volets de la chambre",
            "Quel temps fera-t-il demain",
            "Mets de la musique dans la cuisine",
            "Est-ce que la porte d'entrée est fermée",
            "Ajoute du lait à la liste de courses",
            "Baisse le volume",
            "Réveille-moi demain à sept heures",
            "Règle le chauffage sur vingt degrés",
            "Quelle heure est-il",
        ],
        [
            "Allume la lumière du",
            "Éteins la",
            "Ferme les volets de la",
            "Quel temps fera-t-il à",
            "Mets de la musique dans la",
            "Ajoute du lait à la",
            "Réveille-moi demain à",
            "Règle le chauffage sur",
        ],
    ),
    "es": (
        [
            "Enciende la luz del pasillo",
            "Apaga el televisor",
            "Cierra las persianas del dormitorio",
            "Qué tiempo hace hoy",
            "Pon música en la cocina",
            "Está cerrada la puerta principal",
            "Añade leche a la lista de la compra",
            "Baja el volumen",
            "Despiértame mañana a las siete",
            "Sube la calefacción a veintidós grados",
            "Qué hora es",
        ],
        [
            "Enciende la luz del",
            "Apaga el",
            "Cierra las persianas del",
            "Qué tiempo hace en",
            "Pon música en la",
            "Añade leche a la",
            "Despiértame mañana a las",
            "Sube la calefacción a",
        ],
    ),
    "it": (
        [
            "Accendi la luce del corridoio",
            "Spegni la televisione",
            "Chiudi le tapparelle della camera",
            "Che tempo fa oggi",
            "Metti un po' di musica in cucina",
            "La porta di casa è chiusa",
            "Aggiungi il latte alla lista della spesa",
            "Abbassa il volume",
            "Svegliami domani alle sette",
            "Imposta il riscaldamento a ventuno gradi",
            "Che ore sono",
        ],
        [
            "Accendi la luce del",
            "Spegni la",
            "Chiudi le tapparelle della",
            "Che tempo fa a",
            "Metti un po' di musica in",
            "Aggiungi il latte alla",
            "Svegliami domani alle",
            "Imposta il riscaldamento a",
        ],
    ),
}
LANGUAGES = {"de": "de", "fr": "fr", "es": "es", "it": "it"}  # the sets not in English


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=[*SETS, "all"], default="all")
    parser.add_argument("--threshold", type=float, default=TurnTaking.words_threshold)
    parser.add_argument("--sure", type=float, default=TurnTaking.sure_words, help="no second hearing from here")
    parser.add_argument("--verbose", action="store_true", help="each request's probability")
    args = parser.parse_args()
    model = TextTurnModel()
    try:
        for name in SETS if args.set == "all" else [args.set]:
            whole, cut = SETS[name]
            language = LANGUAGES.get(name)
            whole_scores = [_probability(model, text, args.verbose, language) for text in whole]
            ended_whole = [score for score in whole_scores if score >= args.threshold]
            sure_whole = [score for score in whole_scores if score >= args.sure]
            ended_cut = [text for text in cut if _probability(model, text, args.verbose, language) >= args.threshold]
            print(
                f"{name}: whole requests taken as ended {len(ended_whole)} of {len(whole)} "
                f"(median probability {statistics.median(whole_scores):.3f}; {len(sure_whole)} surely); "
                f"cut requests taken as ended {len(ended_cut)} of {len(cut)}"
            )
            for text in ended_cut:
                print(f"  cut, taken as ended: {text!r}")
            if language is not None:
                english = [text for text in whole if _probability(model, text, False, None) >= args.threshold]
                print(f"  with the English rule on the last word: whole ones taken as ended {len(english)}")
    finally:
        model.close()


def _probability(model: TextTurnModel, text: str, verbose: bool, language: str | None = None) -> float:
    """The probability that a request ends after ``text``, as the satellite reckons it in ``language`` (0 for
    words that cannot end one)."""
    probability = 0.0 if unfinished(text, language) else model.complete(text)
    if verbose:
        print(f"  {probability:.3f}  {text}")
    return probability


if __name__ == "__main__":
    main()

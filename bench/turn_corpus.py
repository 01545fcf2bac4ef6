"""Spoken clips for end-of-turn work (issue 16): complete questions, and the same with a hesitation.

Each question is spoken by espeak-ng as one sentence, so a pause inserted with SSML ``<break>`` keeps
the sentence's prosody (a hesitating speaker does not end the first half as a statement). Kinds:

- ``complete``: the whole question, nothing inserted;
- ``hesitation``: a pause of 0.5 to 1.2 s at a word boundary inside it, at two places per question:
  after a function word ("the", "of", "to": the words alone show it is not over) and after a content
  word ("What time does the bakery ... close": only the prosody, or nothing, shows it);
- ``filler``: the question, then a trailing "um" and a pause (is it over? usually not);
- ``list``: items with a pause before the last ("milk, eggs, and ... bread");
- ``two_hesitations``: the question with a pause of 0.8 s at both of its places ("What is the ...
  boiling ... point of water?"): at the second pause the acoustic model hears only the phrase
  since the first.

Questions and voices are split: the ``tune`` part may be looked at while choosing thresholds, the
``held_out`` part (other sentences, other voices) only to report on. None of these sentences is in
tests/data. ``manifest.json`` lists every clip with its text, kind, pause, voice and part, and the
text spoken before the pause.

    python bench/turn_corpus.py --out bench/out/turn_corpus   (needs Debian's espeak-ng)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr

RATE = 16000
PAUSES = (0.5, 0.8, 1.0, 1.2)
VOICES = {"tune": ["en-us", "en-gb"], "held_out": ["en-us+f3", "en-gb-scotland", "en-029"]}
# (question, the words after which a hesitation goes: their indexes in the question's words)
QUESTIONS = {
    "tune": [
        ("What is the boiling point of water?", (2, 3)),
        ("How far is it to the nearest train station?", (6, 7)),
        ("Can you turn down the heating in the bedroom?", (4, 2)),
        ("What time does the bakery close on Sundays?", (3, 4)),
        ("Who wrote the novel about the white whale?", (2, 6)),
        ("Set a timer for twelve minutes please.", (3, 4)),
        ("How many days are there in a leap year?", (4, 7)),
        ("Is it going to rain in the afternoon?", (5, 2)),
    ],
    "held_out": [
        ("What is the tallest mountain in Africa?", (2, 3)),
        ("Remind me to call my sister at six.", (3, 2)),
        ("How long should I boil an egg for?", (5, 1)),
        ("Which planet has the most moons?", (3, 1)),
        ("Turn on the lamp in the living room.", (4, 6)),
        ("What is the population of Canada?", (4, 3)),
        ("When does the next bus to the airport leave?", (5, 7)),
        ("How do you say thank you in Japanese?", (3, 4)),
    ],
}
LISTS = {
    "tune": [("Add milk, eggs, and", "bread to the shopping list.")],
    "held_out": [("Put apples, rice, and", "coffee on my list.")],
}


def speak(ssml: str, voice: str) -> np.ndarray:
    """16 kHz mono float audio of ``ssml`` in ``voice``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-m", "-v", voice, "-s", "155", "-w", str(path), ssml], check=True)
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return soxr.resample(pcm, rate, RATE)


def write(path: Path, audio: np.ndarray) -> None:
    lead = np.zeros(int(0.3 * RATE), dtype=np.float32)
    pcm = (np.clip(np.concatenate([lead, audio]), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/turn_corpus"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []

    def clip(name: str, ssml: str, voice: str, part: str, text: str, kind: str, pause: float, before: str) -> None:
        write(args.out / f"{name}.wav", speak(ssml, voice))
        manifest.append({"file": f"{name}.wav", "text": text, "kind": kind, "pause": pause, "voice": voice,
                         "part": part, "before_pause": before})  # fmt: skip

    for part, questions in QUESTIONS.items():
        for voice in VOICES[part]:
            tag = voice.replace("+", "_")
            for number, (text, places) in enumerate(questions):
                words = text.split()
                clip(f"{part}-{tag}-q{number}-complete", text, voice, part, text, "complete", 0.0, text)
                for after in places:
                    head, tail = " ".join(words[: after + 1]), " ".join(words[after + 1 :])
                    for pause in PAUSES:
                        ssml = f'{head} <break time="{int(pause * 1000)}ms"/> {tail}'
                        clip(f"{part}-{tag}-q{number}-w{after}-pause{int(pause * 1000)}", ssml, voice, part, text,
                             "hesitation", pause, head)  # fmt: skip
                first, second = sorted(places)
                pieces = (words[: first + 1], words[first + 1 : second + 1], words[second + 1 :])
                ssml = ' <break time="800ms"/> '.join(" ".join(piece) for piece in pieces)
                clip(f"{part}-{tag}-q{number}-two", ssml, voice, part, text, "two_hesitations", 0.8,
                     " ".join(words[: second + 1]))  # fmt: skip
                ssml = f'{text.rstrip("?.")}, um <break time="800ms"/>'
                clip(f"{part}-{tag}-q{number}-filler", ssml, voice, part, text, "filler", 0.8, text)
            for number, (head, tail) in enumerate(LISTS[part]):
                text = f"{head} {tail}"
                ssml = f'{head} <break time="1000ms"/> {tail}'
                clip(f"{part}-{tag}-list{number}", ssml, voice, part, text, "list", 1.0, head)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    counts: dict[str, int] = {}
    for item in manifest:
        key = f"{item['part']}/{item['kind']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(manifest)} clips in {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()

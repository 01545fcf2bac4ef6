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
tests/data. The ``kokoro`` part is the held-out sentences again, spoken by Kokoro (Chatty's own TTS model
and its bundled voices, none of which the tuning heard): a neural voice's prosody, nearer a person's than
espeak-ng's. Kokoro has no ``<break>``; it speaks the whole sentence, and the pause is put in at the word
boundary its duration predictor gives (a frame before the next word's first sound), so the words
before it keep the sentence's prosody as with espeak-ng. Also report only. The ``commands`` part is the
everyday smart-home commands of ``bench/words_bench.py``'s held-out set ("Turn off the porch light",
"Cancel"), complete, in the held-out espeak-ng voices and the Kokoro voices: how long a finished command
waits; the ``commands_tune`` part (``--only commands``) is ``commands-tune``'s commands in the tune
espeak-ng voices and two Kokoro voices of their own (jf_alpha, jf_tebukuro), for choosing things on.
``manifest.json`` lists every clip with its text, kind, pause, voice and part, and the text spoken
before the pause.

    python bench/turn_corpus.py --out bench/out/turn_corpus   (needs Debian's espeak-ng and the TTS installed;
                                                              ``--no-kokoro`` leaves the Kokoro voices out,
                                                              ``--only commands`` makes that part alone)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import wave
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import soxr
from words_bench import SETS

RATE = 16000
PAUSES = (0.5, 0.8, 1.0, 1.2)
VOICES = {"tune": ["en-us", "en-gb"], "held_out": ["en-us+f3", "en-gb-scotland", "en-029"]}
KOKORO_VOICES = ["jf_nezumi", "jm_kumo", "jf_gongitsune"]  # bundled in kokoro-onnx's package; accented English
STRESS = "ˈˌ"
FADE = 0.008  # s of fade on each side of a pause put into Kokoro's speech (no click)
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
COMMANDS = [f"{text}." for text in SETS["commands-held-out"][0]]  # as a speaker says them (punctuation for espeak)
TUNE_COMMANDS = [f"{text}." for text in SETS["commands-tune"][0]]
KOKORO_TUNE_VOICES = ["jf_alpha", "jf_tebukuro"]  # the other two bundled voices
LISTS = {
    "tune": [("Add milk, eggs, and", "bread to the shopping list.")],
    "held_out": [("Put apples, rice, and", "coffee on my list.")],
}


def with_breaks(text: str, pauses: dict[int, float], after: float = 0.0) -> str:
    """``text`` as espeak-ng SSML: a ``<break>`` of ``pauses[i]`` s after its word ``i``, ``after`` s at the end."""
    words = text.split()
    for word, seconds in sorted(pauses.items(), reverse=True):
        words.insert(word + 1, f'<break time="{int(seconds * 1000)}ms"/>')
    if after:
        words.append(f'<break time="{int(after * 1000)}ms"/>')
    return " ".join(words)


def speak(ssml: str, voice: str) -> np.ndarray:
    """16 kHz mono float audio of ``ssml`` in ``voice``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-m", "-v", voice, "-s", "155", "-w", str(path), ssml], check=True)
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return soxr.resample(pcm, rate, RATE)


class KokoroSpeaker:
    """Chatty's Kokoro model (the form its TTS server chose) speaking a sentence, with pauses put in at word
    boundaries: the model is given a second output, the frames each phoneme lasts."""

    def __init__(self, data_dir: Path, folder: Path) -> None:
        import onnx
        from onnx import helper

        from wyoming_chatty_tts.engine import SAMPLE_RATE, KokoroEngine, trim
        from wyoming_chatty_tts.models import prepare_model
        from wyoming_chatty_tts.voices import VoiceBank

        self.voices = VoiceBank()
        self.voices.add_bundled()
        options = {"threads": None, "device": "cpu", "language": "en-us"}
        chosen = prepare_model(None, data_dir / "kokoro", "auto", self.voices, voice=KOKORO_VOICES[0], **options)
        model = onnx.load(str(chosen))
        caps = next(node for node in model.graph.node if node.name == "chatty_caps")
        model.graph.output.append(helper.make_tensor_value_info(caps.output[0], onnx.TensorProto.FLOAT, None))
        path = folder / "kokoro-with-durations.onnx"
        onnx.save(model, str(path))
        self.engine = KokoroEngine(path, threads=2)  # its second output: the durations
        self.rate, self.trim = SAMPLE_RATE, trim
        self.hop = 600  # audio samples per frame of the duration predictor

    def speak(self, text: str, pauses: dict[int, float], after: float = 0.0, *, voice: str) -> np.ndarray:
        """16 kHz mono float audio of ``text`` in ``voice``, with a pause of ``pauses[i]`` s after its word ``i``
        and ``after`` s of silence at the end."""
        phonemizer = self.engine.phonemizer
        phonemes = phonemizer.phonemes(text)
        feed = self.engine.feed(phonemizer.tokens(phonemes), self.voices.style(voice), 1.0)
        audio, durations = self.engine.session.run(None, feed)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        starts = np.concatenate([[0], np.cumsum(np.asarray(durations).reshape(-1))]) * self.hop  # [0, *tokens, 0]
        pieces, begun = [], 0
        spaces = [i for i, symbol in enumerate(phonemes) if symbol == " "]
        for word, seconds in sorted(pauses.items()):
            if len(spaces) == len(text.split()) - 1:  # one space between each two words: the one after ``word``
                token = spaces[word] + 1  # its index in the model's input (after the start token)
            else:  # espeak-ng joined some words ("on the": "ɔnðə"): where the words up to the pause, alone, end
                # (stress marks left out: "in" alone is stressed, "in the" not)
                head = phonemizer.phonemes(" ".join(text.split()[: word + 1])).rstrip(",.?!")
                head = "".join(symbol for symbol in head if symbol not in STRESS)
                sounds = [i for i, symbol in enumerate(phonemes) if symbol not in STRESS]
                if not "".join(phonemes[i] for i in sounds).startswith(head):
                    raise ValueError(f"{text!r}: no word boundary after {head!r} in {phonemes!r}")
                token = sounds[len(head)] + 1
            # A frame before the boundary the predictor gives: the next word's sound begins about that early in
            # Kokoro's audio (cut in the middle of the space, tiny.en heard "living room" in 7 of 48 such heads,
            # "... in the living" among them; a frame earlier, 2 of 48, and no more words of its own lost).
            cut = int(starts[token] - self.hop)
            pieces += [audio[begun:cut], np.zeros(int(seconds * self.rate), dtype=np.float32)]
            begun = cut
        pieces.append(audio[begun:])
        fade = int(FADE * self.rate)
        for i, piece in enumerate(pieces):
            if i % 2 == 0 and len(piece) > 2 * fade:
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                if i > 0:
                    piece[:fade] *= ramp
                if i < len(pieces) - 1:
                    piece[-fade:] *= ramp[::-1]
        spoken = self.trim(np.concatenate(pieces))
        return np.concatenate([soxr.resample(spoken, self.rate, RATE), np.zeros(int(after * RATE), np.float32)])


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
    parser.add_argument("--no-kokoro", action="store_true", help="leave out the part spoken by Kokoro")
    parser.add_argument("--tts-data-dir", type=Path, help="the TTS server's data folder (its chosen model form)")
    parser.add_argument("--only", choices=("questions", "commands"), help="make only these parts")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []

    def clip(name: str, audio: np.ndarray, voice: str, part: str, text: str, kind: str, pause: float,
             before: str) -> None:  # fmt: skip
        write(args.out / f"{name}.wav", audio)
        manifest.append({"file": f"{name}.wav", "text": text, "kind": kind, "pause": pause, "voice": voice,
                         "part": part, "before_pause": before})  # fmt: skip

    def espeak(voice: str) -> Callable[[str, dict[int, float], float], np.ndarray]:
        def say(text: str, pauses: dict[int, float], after: float = 0.0) -> np.ndarray:
            return speak(with_breaks(text, pauses, after), voice)

        return say

    speakers = [(part, voice, espeak(voice)) for part in QUESTIONS for voice in VOICES[part]]
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_kokoro:
            from chatty_common.cli import default_data_dir

            kokoro = KokoroSpeaker(args.tts_data_dir or default_data_dir("tts"), Path(folder))
            speakers += [("kokoro", voice, partial(kokoro.speak, voice=voice)) for voice in KOKORO_VOICES]
        if args.only != "questions":
            tuning = [(voice, say) for part, voice, say in speakers if part == "tune"]
            if not args.no_kokoro:
                tuning += [(voice, partial(kokoro.speak, voice=voice)) for voice in KOKORO_TUNE_VOICES]
            for voice, say in tuning:
                for number, text in enumerate(TUNE_COMMANDS):
                    clip(f"commands_tune-{voice}-c{number}", say(text, {}), voice, "commands_tune", text, "complete",
                         0.0, text)  # fmt: skip
            for part, voice, say in speakers:
                if part != "tune":  # the held-out voices, espeak-ng's and Kokoro's
                    for number, text in enumerate(COMMANDS):
                        clip(f"commands-{voice.replace('+', '_')}-c{number}", say(text, {}), voice, "commands", text,
                             "complete", 0.0, text)  # fmt: skip
        for part, voice, say in speakers if args.only != "commands" else []:
            sentences = "held_out" if part == "kokoro" else part
            tag = voice.replace("+", "_")
            for number, (text, places) in enumerate(QUESTIONS[sentences]):
                words = text.split()
                clip(f"{part}-{tag}-q{number}-complete", say(text, {}), voice, part, text, "complete", 0.0, text)
                for after in places:
                    head = " ".join(words[: after + 1])
                    for pause in PAUSES:
                        clip(f"{part}-{tag}-q{number}-w{after}-pause{int(pause * 1000)}", say(text, {after: pause}),
                             voice, part, text, "hesitation", pause, head)  # fmt: skip
                first, second = sorted(places)
                clip(f"{part}-{tag}-q{number}-two", say(text, {first: 0.8, second: 0.8}), voice, part, text,
                     "two_hesitations", 0.8, " ".join(words[: second + 1]))  # fmt: skip
                clip(f"{part}-{tag}-q{number}-filler", say(f"{text.rstrip('?.')}, um", {}, 0.8), voice, part, text,
                     "filler", 0.8, text)  # fmt: skip
            for number, (head, tail) in enumerate(LISTS[sentences]):
                text = f"{head} {tail}"
                clip(f"{part}-{tag}-list{number}", say(text, {len(head.split()) - 1: 1.0}), voice, part, text, "list",
                     1.0, head)  # fmt: skip
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    counts: dict[str, int] = {}
    for item in manifest:
        key = f"{item['part']}/{item['kind']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(manifest)} clips in {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()

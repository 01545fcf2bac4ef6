"""Whisper's encoder window fitted to the utterance against the classic 30 s window.

Spoken questions and commands (espeak-ng in three voices, and Chatty's own TTS
in two Kokoro voices) plus the test clips. Each starts after a random 0-0.6 s
of silence (where speech sits in the window changes what Whisper hears) and
ends 0.15 s after its last sound, as the satellite sends it when the speaker
pauses. Both ways decode every utterance in this process on the same model.
Prints word error rate, decode time (median, p95) and how often the fitted
window fell back to the full one.

    .venv/bin/python bench/stt_window.py [--model tiny.en] [--beam-size 1] [--rounds 3] [--min-window 10]
        [--tail 0.15] [--lead S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stt_bench import percentile, word_errors  # noqa: E402
from stt_bench import words as stt_words  # noqa: E402

from chatty_common.threads import limit_blas_threads  # noqa: E402
from wyoming_chatty_stt.models import ModelSource, resolve_model  # noqa: E402
from wyoming_chatty_stt.transcriber import DecodeOptions, Transcriber  # noqa: E402

SENTENCES = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is the boiling point of water?",
    "Who wrote Romeo and Juliet?",
    "What color is the sky?",
    "How many days are in a week?",
    "What is the largest planet?",
    "What do bees make?",
    "What is two plus two?",
    "Which animal is the king of the jungle?",
    "Turn on the kitchen lights and close the garage door.",
    "Set a timer for ten minutes.",
    "What's the weather going to be like tomorrow in Amsterdam?",
    "Play some relaxing music in the living room.",
    "Remind me to call my mother at six o'clock this evening.",
    "How far away is the moon from the earth?",
    "Turn off all the lights downstairs.",
]
VOICES = ["en-us", "en-gb+f3", "en-us+m5"]
KOKORO_VOICES = ["jf_alpha", "jm_kumo"]
TAIL_SECONDS = 0.15
LEAD_SECONDS = 0.6


def words(text: str) -> list[str]:
    return stt_words(text.replace("colour", "color"))


def errors(expected: str, heard: str) -> int:
    return word_errors(words(expected), words(heard))


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        pcm = pcm.reshape(-1, wav.getnchannels())[:, 0]
        audio = pcm.astype(np.float32) / 32768
        return soxr.resample(audio, wav.getframerate(), 16000).astype(np.float32)


def as_decoded(
    audio: np.ndarray, rng: np.random.Generator, tail: float = TAIL_SECONDS, lead: float | None = None
) -> np.ndarray:
    """The speech after a lead-in of silence (``lead`` seconds, else random), up to its last sound, then
    ``tail`` seconds of silence."""
    loud = np.nonzero(np.abs(audio) > 0.01)[0]
    audio = audio[loud[0] : loud[-1] + 1] if loud.size else audio
    before = np.zeros(int((rng.uniform(0, LEAD_SECONDS) if lead is None else lead) * 16000), dtype=np.float32)
    return np.concatenate([before, audio, np.zeros(int(tail * 16000), dtype=np.float32)])


def kokoro_speech(work: Path) -> dict[tuple[str, str], np.ndarray]:
    """Every sentence in every Kokoro voice, from a TTS server started for the purpose."""
    from stt_bench import free_port

    from wyoming_chatty_tts.client import speak

    port = free_port()
    log = (work / "tts.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "wyoming_chatty_tts", "--uri", f"tcp://127.0.0.1:{port}"], stdout=log, stderr=log
    )
    try:
        speech = {}
        for voice in KOKORO_VOICES:
            for sentence in SENTENCES:
                for _ in range(600):  # the first start may rewrite the model: about a minute
                    try:
                        result = asyncio.run(speak(f"tcp://127.0.0.1:{port}", sentence, voice=voice))
                        break
                    except OSError:
                        if server.poll() is not None:
                            sys.exit(f"the TTS server exited; see {work / 'tts.log'}")
                        time.sleep(0.5)
                start = next(event for _, event in result.events if event.type == "audio-start")
                pcm = np.frombuffer(result.audio, dtype="<i2").astype(np.float32) / 32768
                speech[(voice, sentence)] = soxr.resample(pcm, start.data["rate"], 16000).astype(np.float32)
        return speech
    finally:
        server.terminate()
        server.wait(30)


def utterances(work: Path) -> list[tuple[np.ndarray, str, str]]:
    """(speech without lead-in or tail, text, where it came from)."""
    items = []
    for sentence in SENTENCES:
        for voice in VOICES:
            raw = work / "say.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), sentence], check=True)
            items.append((read_wav(raw), sentence, "espeak-ng"))
    for (_, sentence), audio in kokoro_speech(work).items():
        items.append((audio, sentence, "Kokoro"))
    clips = json.loads((ROOT / "tests/data/clips/clips.json").read_text())
    for name, text in clips.items():
        if name.endswith(".wav"):
            items.append((read_wav(ROOT / "tests/data/clips" / name), text, "test clips"))
    return items


def load_transcriber(source: ModelSource, work: Path, min_window: float) -> Transcriber:
    return Transcriber(
        source,
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
        workers=1,
        download_root=str(work),
        local_files_only=True,
        min_window=min_window,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--language", default="en", help="the language passed to Whisper (default: en)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-window", type=float, default=10.0)
    parser.add_argument("--tail", type=float, default=TAIL_SECONDS, help="seconds of silence after the last sound")
    parser.add_argument("--lead", type=float, help="seconds of silence before the speech (default: random)")
    args = parser.parse_args()
    limit_blas_threads()  # as the STT server does
    if shutil.which("espeak-ng") is None:
        sys.exit("this benchmark makes its speech with espeak-ng: apt-get install espeak-ng")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = resolve_model(args.model, ROOT / "bench" / "out" / "data")
        ways = {
            "full 30 s window": load_transcriber(source, work, min_window=30.0),
            "fitted window": load_transcriber(source, work, min_window=args.min_window),
        }
        options = DecodeOptions(language=args.language, beam_size=args.beam_size)
        for transcriber in ways.values():
            transcriber.warm_up(options)
        items = utterances(work)
        sources = list(dict.fromkeys(source for _, _, source in items))
        times: dict[str, list[float]] = {name: [] for name in ways}
        wrong = {(name, source): 0 for name in ways for source in sources}
        said = dict.fromkeys(sources, 0)
        fallbacks = dict.fromkeys(ways, 0)
        for round_ in range(args.rounds):
            rng = np.random.default_rng(round_)  # a different lead-in for every utterance in every round
            for speech, text, source in items:
                audio = as_decoded(speech, rng, args.tail, args.lead)
                said[source] += len(words(text))
                for name, transcriber in ways.items():
                    recognition = transcriber.transcribe(audio, options)
                    times[name].append(recognition.seconds * 1000)
                    wrong[name, source] += errors(text, recognition.text)
                    fallbacks[name] += recognition.window == 30.0
    decodes = len(items) * args.rounds
    print(
        f"\nWhisper {args.model}, beam {args.beam_size}, {len(items)} utterances x {args.rounds} rounds, "
        f"{'random' if args.lead is None else f'{args.lead:g} s of'} silence before the speech, "
        f"{args.tail:g} s after its last sound, "
        f"each round with new lead-ins ({', '.join(f'{sum(s == x for *_, s in items)} {x}' for x in sources)})\n"
    )
    print(
        "| way | word error rate | "
        + " | ".join(f"WER {source}" for source in sources)
        + " | decode median (ms) | decode p95 (ms) | decoded in a 30 s window |"
    )
    print("|---|" + "---:|" * (len(sources) + 4))
    for name in ways:
        total = sum(wrong[name, source] for source in sources) / sum(said.values())
        per_source = " | ".join(f"{wrong[name, source] / said[source]:.3f}" for source in sources)
        print(
            f"| {name} | {total:.3f} | {per_source} | {np.median(times[name]):.0f} | "
            f"{percentile(times[name], 95):.0f} | {fallbacks[name]} of {decodes} |"
        )
    full, fitted = (np.median(times[name]) for name in ways)
    print(f"\nfitted / full decode time (median): {fitted / full:.2f}")


if __name__ == "__main__":
    main()

"""Speech Whisper cannot make sense of: how long the STT server's fallback decode takes, and its words.

When the fitted window's decode fails Whisper's checks (a loop, low confidence), the server decodes
the utterance again in Whisper's 30 s window, where faster-whisper retries a failing decode at five
rising temperatures with five samples each. This times that decode with the server's token budget
(at most 12 tokens per second of audio) and without it (faster-whisper's default, up to the model's
448-token context), in turns on the same model, on spoken questions in three espeak-ng voices:
played backwards (nothing to recognise), under white noise at 0 and 5 dB SNR (hard but real), and
clean (the control). Prints, per form, how often the fitted window gave up, the fallback's time
(median, p95, max) and its word error rate both ways.

    .venv/bin/python bench/stt_garbled.py [--beam-size 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stt_bench import percentile, word_errors  # noqa: E402
from stt_bench import words as stt_words  # noqa: E402
from stt_window import load_transcriber, read_wav  # noqa: E402

from wyoming_chatty_stt.models import resolve_model  # noqa: E402
from wyoming_chatty_stt.transcriber import SAMPLE_RATE, DecodeOptions, token_budget  # noqa: E402

QUESTIONS = [  # the end-to-end benchmark's questions and the turn corpus's held-out ones
    "What is the capital of France?",
    "Who wrote Romeo and Juliet?",
    "What is the largest planet?",
    "Which animal is the king of the jungle?",
    "What is the tallest mountain in Africa?",
    "Remind me to call my sister at six.",
    "How long should I boil an egg for?",
    "When does the next bus to the airport leave?",
]
VOICES = ["en-us+m3", "en-gb-x-rp", "en-029"]


def noisy(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(audio.size).astype(np.float32)
    noise *= np.sqrt(np.mean(audio**2) / 10 ** (snr_db / 10)) / np.sqrt(np.mean(noise**2))
    return (audio + noise).astype(np.float32)


def forms(work: Path) -> dict[str, list[tuple[np.ndarray, str]]]:
    spoken = []
    for question in QUESTIONS:
        for voice in VOICES:
            raw = work / "say.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), question], check=True)
            tail = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
            spoken.append((np.concatenate([read_wav(raw), tail]), question))
    return {
        "clean": spoken,
        "noise 5 dB": [(noisy(audio, 5, n), text) for n, (audio, text) in enumerate(spoken)],
        "noise 0 dB": [(noisy(audio, 0, n), text) for n, (audio, text) in enumerate(spoken)],
        "backwards": [(audio[::-1].copy(), "") for audio, _ in spoken],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beam-size", type=int, default=1, help="the server's default is 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        transcriber = load_transcriber(resolve_model("tiny.en", work), work, 10.0)
        options = DecodeOptions(language="en", beam_size=args.beam_size)
        transcriber.warm_up(options)

        def fallback(audio: np.ndarray, budget: int | None) -> tuple[float, str]:
            started = time.perf_counter()
            segments, _ = transcriber.model.transcribe(
                audio, language="en", beam_size=args.beam_size, condition_on_previous_text=False,
                without_timestamps=True, vad_filter=False, max_new_tokens=budget,
            )  # fmt: skip
            text = " ".join(segment.text.strip() for segment in segments)
            return time.perf_counter() - started, text

        print(f"{'form':<11} {'fitted gave up':>14}  {'fallback ms, budget: median / p95 / max':>40}"
              f"  {'no budget':>20}  {'WER budget / none':>18}")  # fmt: skip
        for name, items in forms(work).items():
            gave_up = sum(transcriber.transcribe_if_quick(audio, options) is None for audio, _ in items)
            times: dict[str, list[float]] = {"budget": [], "none": []}
            errors = {"budget": 0, "none": 0}
            total = 0
            for audio, text in items:  # both ways in turns, so that a busy moment falls on both
                for way, budget in (("budget", token_budget(audio.size / SAMPLE_RATE)), ("none", None)):
                    seconds, heard = fallback(audio, budget)
                    times[way].append(seconds * 1000)
                    errors[way] += word_errors(stt_words(text), stt_words(heard))
                total += max(1, len(stt_words(text)))
            row = {way: f"{percentile(t, 50):.0f} / {percentile(t, 95):.0f} / {max(t):.0f}" for way, t in times.items()}
            wer = "n/a" if name == "backwards" else f"{errors['budget'] / total:.3f} / {errors['none'] / total:.3f}"
            print(f"{name:<11} {gave_up:>6} of {len(items):<6}  {row['budget']:>40}  {row['none']:>20}  {wer:>18}")


if __name__ == "__main__":
    main()

"""Whisper's words with and without an initial prompt, on the complete clips of ``bench/turn_corpus.py``.

Each clip decoded in this process as Chatty's STT server decodes the speech at its end (the fitted
window, greedy, the speech and 0.3 s of silence after it), once with no prompt and once after
``--prompt``. Printed per part: word error rate, clips heard exactly, decodes Whisper was unsure of,
decode time (median), and the error rate per voice. Choose on the ``tune`` and ``commands_tune`` parts;
report the others.

    .venv/bin/python bench/stt_prompt.py --corpus bench/out/turn_corpus [--corpus DIR ...] [--prompt TEXT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from stt_bench import word_errors, words
from stt_window import load_transcriber, read_wav

from chatty_common.cli import default_data_dir
from chatty_common.threads import limit_blas_threads
from wyoming_chatty_stt.models import resolve_model
from wyoming_chatty_stt.transcriber import DEFAULT_MIN_WINDOW, DecodeOptions

REQUESTS = (
    "Lock the front door. Turn on the kitchen lights. What's the weather like today? Set a timer for ten minutes. "
    "Play some music."
)
AFTER = 0.3  # seconds of silence the server decodes after the speech


def as_heard(path: Path) -> np.ndarray:
    """The clip (its own 0.3 s of silence before the speech) up to :data:`AFTER` seconds after its last sound.

    Not ``stt_window.as_decoded``: its cut at the first loud sample takes soft first sounds off, and the
    words change with it."""
    audio = read_wav(path)
    voiced = np.nonzero(np.abs(audio) > 0.01)[0]
    return audio[: min(audio.size, voiced[-1] + int(AFTER * 16000))] if voiced.size else audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, action="append", required=True, help="a folder made by bench/turn_corpus.py (repeatable)"
    )
    parser.add_argument("--prompt", default=REQUESTS)
    args = parser.parse_args()
    limit_blas_threads()  # as the STT server does
    items = [
        {**item, "path": folder / item["file"]}
        for folder in args.corpus
        for item in json.loads((folder / "manifest.json").read_text())
        if item["kind"] == "complete"
    ]
    with tempfile.TemporaryDirectory() as work:
        transcriber = load_transcriber(
            resolve_model("tiny.en", default_data_dir("stt")), Path(work), DEFAULT_MIN_WINDOW
        )
    ways = {"no prompt": DecodeOptions("en", 1), "prompt": DecodeOptions("en", 1, initial_prompt=args.prompt)}
    for options in ways.values():
        transcriber.transcribe(as_heard(items[0]["path"]), options)  # warm up
    print(f"prompt: {args.prompt!r}; {len(items)} complete clips", file=sys.stderr)
    for part in sorted({item["part"] for item in items}):
        clips = [(item, as_heard(item["path"])) for item in items if item["part"] == part]
        for way, options in ways.items():
            errors = spoken = exact = unsure = 0
            seconds: list[float] = []
            per_voice: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for item, audio in clips:
                heard = transcriber.transcribe(audio, options)
                wrong, said = word_errors(words(item["text"]), words(heard.text)), len(words(item["text"]))
                errors, spoken, exact, unsure = (
                    errors + wrong,
                    spoken + said,
                    exact + (wrong == 0),
                    unsure + (not heard.sure),
                )
                seconds.append(heard.seconds)
                per_voice[item["voice"]][0] += wrong
                per_voice[item["voice"]][1] += said
            voices = ", ".join(f"{voice} {wrong / said:.2f}" for voice, (wrong, said) in sorted(per_voice.items()))
            print(f"{part:14s} {way:10s} WER {errors / spoken:.3f}  exact {exact}/{len(clips)}  unsure {unsure}  "
                  f"decode median {statistics.median(seconds) * 1000:.0f} ms  ({voices})")  # fmt: skip


if __name__ == "__main__":
    main()

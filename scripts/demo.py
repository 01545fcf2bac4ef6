"""The main job: a whole spoken turn, from the wake word to the played answer, on the embedded defaults.

Started by scripts/demo.sh. It runs the STT, LLM (llama.cpp in-process with the
bundled SmolLM2) and TTS servers on loopback with zeroconf, then the satellite
in direct mode, which finds them by browsing _wyoming._tcp.local. on
127.0.0.1. The satellite's microphone is a bundled WAV file ("Okay Nabu. What
is the capital of France?"), its speaker a WAV file. It hears the wake word,
streams the question to the STT server, sends the transcript to the LLM
server, streams the answer into the TTS server as it is written and plays the
audio as it comes. The demo prints the transcript, the answer and the turn's
latency figures.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chatty_common.zeroconf import WyomingService, browse

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "tests" / "data" / "satellite" / "nabu_capital.wav"  # text in clips.json beside it
OUTPUT = ROOT / "demo-reply.wav"
SERVICES = {
    "chatty-stt-demo": "wyoming_chatty_stt",
    "chatty-llm-demo": "wyoming_chatty_llm",
    "chatty-tts-demo": "wyoming_chatty_tts",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def find(name: str, process: subprocess.Popen, timeout: float = 300) -> WyomingService:
    """Browse zeroconf until the service appears and accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"The {name} server exited; see its log above.")
        found = await browse(2.0, interface="127.0.0.1", name_prefix=name, wait_for=1)
        if found:
            return found[0]
    raise SystemExit(f"{name} did not appear on zeroconf within {timeout:.0f} s.")


async def run() -> int:
    servers = {}
    for name, module in SERVICES.items():
        port = free_port()
        print(f"Starting {module} on 127.0.0.1:{port} (zeroconf name {name}) ...")
        servers[name] = subprocess.Popen(
            [sys.executable, "-m", module, "--uri", f"tcp://127.0.0.1:{port}",
             "--zeroconf", name, "--zeroconf-host", "127.0.0.1"],
        )  # fmt: skip
    try:
        for name in SERVICES:
            service = await find(name, servers[name])
            print(f"Found by zeroconf: {service.name} at {service.uri}")
        with tempfile.TemporaryDirectory() as work:
            metrics = Path(work) / "turns.jsonl"
            print(f"Starting the satellite in direct mode; its microphone plays {QUESTION.name} ...")
            satellite = subprocess.run(
                [sys.executable, "-m", "satellite", "--mode", "direct", "--mic-file", str(QUESTION),
                 "--snd-file", str(OUTPUT), "--metrics-file", str(metrics), "--zeroconf-host", "127.0.0.1",
                 "--no-follow-up", *[arg for kind in ("stt", "llm", "tts")
                                     for arg in (f"--{kind}-name", f"chatty-{kind}-demo")]],
            )  # fmt: skip
            turns = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
        if satellite.returncode != 0 or not turns:
            print("The satellite did not finish a turn; see its log above.")
            return 1
        turn = turns[-1]
        print()
        print(f"  TRANSCRIPT: {turn['transcript']}")
        print(f"  ANSWER:     {turn['answer']}")
        for figure in ("QUESTION-TO-RESPONSE_MS", "VOICE-TO-VOICE_MS", "STT_MS", "LLM-TTF_MS", "LLM-TOTAL_MS",
                       "TTS-TTFA_MS"):  # fmt: skip
            value = turn.get(figure)
            print(f"  {figure}: {'-' if value is None else f'{value:.0f}'}")
        print(f"  what the speaker played (on the microphone's clock) is in {OUTPUT}")
        return 0 if turn["outcome"] == "answered" else 1
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(30)


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))

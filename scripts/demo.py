"""The main job, as far as it is built: a spoken question through a real STT server found by zeroconf.

Started by scripts/demo.sh. It runs the STT server on loopback with zeroconf,
finds it by browsing _wyoming._tcp.local. on 127.0.0.1, streams a spoken
question at real-time pace, and prints the transcript and how soon after the
end of the audio it arrived.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from chatty_common.zeroconf import browse
from wyoming_chatty_stt.client import stream_wav

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "tests" / "data" / "clips" / "weather.wav"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run() -> int:
    port = free_port()
    print(f"Starting the speech-to-text server on 127.0.0.1:{port} (zeroconf name chatty-stt-demo) ...")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wyoming_chatty_stt",
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--zeroconf",
            "chatty-stt-demo",
            "--zeroconf-host",
            "127.0.0.1",
        ],
    )
    try:
        started = time.monotonic()
        services = []
        while not services and time.monotonic() - started < 120:
            if server.poll() is not None:
                print("The STT server exited; see its log above.")
                return 1
            services = await browse(2.0, interface="127.0.0.1", name_prefix="chatty-stt-demo", wait_for=1)
        if not services:
            print("The STT server did not appear on zeroconf within 2 minutes.")
            return 1
        service = services[0]
        print(f"Found {service.name} by zeroconf at {service.uri}")
        for _ in range(100):  # zeroconf can announce a moment before the model is warm
            try:
                with socket.create_connection((service.host, service.port), timeout=1):
                    break
            except OSError:
                await asyncio.sleep(0.5)
        print(f"Speaking {QUESTION.name} to it at real-time pace ...")
        result = await stream_wav(service.uri, QUESTION, realtime=True)
        if result.error:
            print(f"Error from the server: {result.error}")
            return 1
        partial = "".join(e.data["text"] for _, e in result.events if e.type == "transcript-chunk")
        print()
        print(f"  partial text while speaking: {partial!r}")
        print(f"  TRANSCRIPT: {result.transcript}")
        print(f"  STT_MS (audio-stop to transcript): {result.latency * 1000:.0f}")
        print()
        print("The complete spoken turn (wake word, LLM answer, spoken reply and the per-turn latency")
        print("log) arrives with the TTS, LLM and satellite services.")
        return 0
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))

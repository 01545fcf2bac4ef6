"""The main job, as far as it is built: a spoken question through real servers found by zeroconf.

Started by scripts/demo.sh. It runs the STT and TTS servers on loopback with
zeroconf, finds them by browsing _wyoming._tcp.local. on 127.0.0.1, streams a
spoken question to the STT server at real-time pace, has the TTS server say
what it understood (streamed in fragments, as the LLM's answer will be), and
writes that to a WAV file. The LLM answer and the satellite come with the
next services.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from chatty_common.zeroconf import WyomingService, browse
from wyoming_chatty_stt.client import stream_wav
from wyoming_chatty_tts.client import speak

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "tests" / "data" / "clips" / "weather.wav"
OUTPUT = ROOT / "demo-reply.wav"
SERVICES = {"chatty-stt-demo": "wyoming_chatty_stt", "chatty-tts-demo": "wyoming_chatty_tts"}


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
        stt = await find("chatty-stt-demo", servers["chatty-stt-demo"])
        tts = await find("chatty-tts-demo", servers["chatty-tts-demo"])
        print(f"Found by zeroconf: {stt.name} at {stt.uri}, {tts.name} at {tts.uri}")

        print(f"Speaking {QUESTION.name} to the STT server at real-time pace ...")
        heard = await stream_wav(stt.uri, QUESTION, realtime=True)
        if heard.error or heard.transcript is None:
            print(f"STT error: {heard.error}")
            return 1
        reply = f"You asked: {heard.transcript}"
        words = [word + " " for word in reply.split()]
        spoken = await speak(tts.uri, words, streaming=True)
        if spoken.error:
            print(f"TTS error: {spoken.error}")
            return 1
        spoken.write_wav(str(OUTPUT))
        print()
        print(f"  TRANSCRIPT: {heard.transcript}")
        print(f"  STT_MS (audio-stop to transcript): {heard.latency * 1000:.0f}")
        print(f"  TTS_FIRST_AUDIO_MS: {spoken.first_audio * 1000:.0f}  ({spoken.seconds():.1f} s of speech)")
        print(f"  spoken reply written to {OUTPUT}")
        print()
        print("The LLM answer and the satellite (wake word, playback, per-turn latency log) come with the")
        print("next services; this run shows the speech-to-text and text-to-speech halves of a turn.")
        return 0
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(30)


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))

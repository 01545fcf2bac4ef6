"""The main job, as far as it is built: a spoken question answered by real servers found by zeroconf.

Started by scripts/demo.sh. It runs the STT, LLM (llama.cpp in-process with the
bundled SmolLM2) and TTS servers on loopback with zeroconf, finds them by
browsing _wyoming._tcp.local. on 127.0.0.1, streams a spoken question to the
STT server at real-time pace, sends the transcript to the LLM server and its
answer, piece by piece as it is written, to the TTS server, and writes the
spoken answer to a WAV file. The satellite (wake word, microphone, playback)
comes next.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from chatty_common.zeroconf import WyomingService, browse
from wyoming_chatty_llm.client import ask
from wyoming_chatty_stt.client import stream_wav
from wyoming_chatty_tts.client import speak

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "tests" / "data" / "clips" / "weather.wav"
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
        stt, llm, tts = [await find(name, servers[name]) for name in SERVICES]
        print(f"Found by zeroconf: {', '.join(f'{s.name} at {s.uri}' for s in (stt, llm, tts))}")

        print(f"Speaking {QUESTION.name} to the STT server at real-time pace ...")
        heard = await stream_wav(stt.uri, QUESTION, realtime=True)
        if heard.error or heard.transcript is None:
            print(f"STT error: {heard.error}")
            return 1

        # The answer goes to the TTS server piece by piece, as the LLM writes it.
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        async def answer_pieces():
            while (piece := await pieces.get()) is not None:
                yield piece

        async def ask_llm():
            try:
                answer = await ask(llm.uri, heard.transcript, on_chunk=pieces.put_nowait)
                if not answer.chunks:  # not handled: say why
                    pieces.put_nowait(answer.text)
                return answer
            finally:
                pieces.put_nowait(None)

        answer, spoken = await asyncio.gather(ask_llm(), speak(tts.uri, answer_pieces(), streaming=True))
        if spoken.error:
            print(f"TTS error: {spoken.error}")
            return 1
        spoken.write_wav(str(OUTPUT))
        print()
        print(f"  TRANSCRIPT: {heard.transcript}")
        print(f"  ANSWER:     {answer.text}")
        print(f"  STT_MS (audio-stop to transcript): {heard.latency * 1000:.0f}")
        if answer.first_chunk is not None:
            print(f"  LLM-TTF_MS: {answer.first_chunk * 1000:.0f}")
        print(f"  LLM-TOTAL_MS: {(answer.done or 0) * 1000:.0f}")
        print(f"  TTS first audio after the transcript (ms): {spoken.first_audio * 1000:.0f}")
        print(f"  spoken answer ({spoken.seconds():.1f} s) written to {OUTPUT}")
        print()
        print("The satellite (wake word, microphone, playback and the per-turn latency log) comes next.")
        return 0
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(30)


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))

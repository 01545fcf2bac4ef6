"""A Wyoming wake word service for the tests, as wyoming-openwakeword 2.x behaves (its 2.x is not on PyPI
here): ``describe`` → ``info`` with a wake program; ``detect`` (names), ``audio-start``, ``audio-chunk``s →
a ``detection`` each time a model fires; ``audio-stop`` → ``not-detected`` if none did. Detection runs on
the models bundled in pyopen-wakeword.

    python tests/wake_server.py --port N
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.wake import Detect, Detection, NotDetected

from satellite.wake import LocalWakeDetector, WakeWord

MODELS = ("okay_nabu", "hey_jarvis", "alexa")
ATTRIBUTION = Attribution(name="test", url="https://github.com/dscripka/openWakeWord")


class WakeHandler(AsyncEventHandler):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.detector: LocalWakeDetector | None = None
        self.detected = False

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            models = [WakeModel(name=m, description=m, attribution=ATTRIBUTION, installed=True, version=None,
                                languages=["en"], phrase=m.replace("_", " ")) for m in MODELS]  # fmt: skip
            await self.write_event(
                Info(
                    wake=[
                        WakeProgram(
                            name="openwakeword",
                            description="test",
                            attribution=ATTRIBUTION,
                            installed=True,
                            version="2",
                            models=models,
                        )
                    ]
                ).event()
            )
        elif Detect.is_type(event.type):
            names = Detect.from_event(event).names or ["okay_nabu"]
            self.detector = LocalWakeDetector([WakeWord("openwakeword", n) for n in names if n in MODELS])
        elif AudioStart.is_type(event.type):
            if self.detector is None:
                self.detector = LocalWakeDetector([WakeWord("openwakeword", "okay_nabu")])
            self.detected = False
        elif AudioChunk.is_type(event.type) and self.detector is not None:
            chunk = AudioChunk.from_event(event)
            for i in range(0, len(chunk.audio), 320):
                name = self.detector.process(chunk.audio[i : i + 320])
                if name is not None:
                    self.detected = True
                    await self.write_event(Detection(name=name, timestamp=chunk.timestamp).event())
        elif AudioStop.is_type(event.type) and not self.detected:
            await self.write_event(NotDetected().event())
        return True


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = AsyncServer.from_uri(f"tcp://127.0.0.1:{args.port}")
    await server.run(partial(WakeHandler))


if __name__ == "__main__":
    asyncio.run(main())

"""The floor under an idle satellite: the same PortAudio devices opened the same way, silence moved through
them on two threads, and nothing else (no wake word, no event loop). Run by bench/idle_bench.py.

    python bench/device_floor.py --mic-device NAME --snd-device NAME [--snd-rate 24000]
"""

from __future__ import annotations

import argparse
import signal
import threading

from satellite.audio_io import FRAME_SAMPLES, MIC_RATE, _PortAudioStream
from satellite.player import SILENCE_BLOCK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mic-device", required=True)
    parser.add_argument("--snd-device", required=True)
    parser.add_argument("--snd-rate", type=int, default=24000)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # As PyAudioMicrophone and PyAudioSpeaker open them, and as much per read and write.
    mic = _PortAudioStream(args.mic_device, "input", MIC_RATE, FRAME_SAMPLES * 2)
    speaker = _PortAudioStream(args.snd_device, "output", args.snd_rate, args.snd_rate // 100 * 2)
    mic.open()
    speaker.open()
    silence = bytes(int(args.snd_rate * SILENCE_BLOCK) * 2)

    def read() -> None:
        while not stop.is_set():
            mic.stream.read(FRAME_SAMPLES * 2, exception_on_overflow=False)

    def write() -> None:
        while not stop.is_set():
            speaker.stream.write(silence)

    threads = [threading.Thread(target=read), threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(1)
    mic.release()
    speaker.release()


if __name__ == "__main__":
    main()

"""What an idle satellite costs: CPU and memory while it listens to silence on real PortAudio devices.

The satellite runs on the virtual microphone and speaker of a private PulseAudio daemon (the tests'
``tests/helpers/audio_devices.py``), nobody speaks, and its CPU time is read every ``--window`` seconds for
``--seconds``. Reported per wake word engine: the median and p95 of the windows as a percentage of one
core, and the resident memory at the end. The sound server's own CPU is reported beside it (a real
device has no such cost). Direct mode with servers that are not there: the satellite only listens.

    bench/run_idle.sh [--seconds 60] [--window 5] [--engines micro,openwakeword]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.audio_devices import PulseAudioDevices  # noqa: E402
from stt_bench import free_port, percentile  # noqa: E402

WAKE_WORDS = {"micro": "micro:okay_nabu", "openwakeword": "openwakeword:hey_jarvis"}


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def measure(devices: PulseAudioDevices, engine: str, seconds: float, window: float, folder: Path) -> dict:
    closed = f"tcp://127.0.0.1:{free_port()}"
    log = (folder / f"satellite-{engine}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "satellite", "--mode", "direct", "--mic-device", "chatty_mic",
         "--snd-device", "chatty_speaker", "--wake-word", WAKE_WORDS[engine],
         "--stt-uri", closed, "--llm-uri", closed, "--tts-uri", closed],
        env=devices.env, stderr=log,
    )  # fmt: skip
    try:
        satellite = psutil.Process(process.pid)
        sound = [psutil.Process(devices.daemon.pid)]
        time.sleep(5)  # models loaded, devices running
        windows, sound_windows = [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            before, sound_before, started = cpu_seconds([satellite]), cpu_seconds(sound), time.monotonic()
            time.sleep(window)
            elapsed = time.monotonic() - started
            windows.append(100 * (cpu_seconds([satellite]) - before) / elapsed)
            sound_windows.append(100 * (cpu_seconds(sound) - sound_before) / elapsed)
        rss = satellite.memory_info().rss
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        log.close()
    return {
        "engine": engine,
        "cpu_percent_median": round(percentile(windows, 50), 2),
        "cpu_percent_p95": round(percentile(windows, 95), 2),
        "rss_mb": round(rss / 2**20, 1),
        "sound_server_cpu_percent_median": round(percentile(sound_windows, 50), 2),
        "windows": len(windows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--engines", default="micro,openwakeword")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "idle.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        devices = PulseAudioDevices(Path(tmp))
        try:
            for engine in args.engines.split(","):
                results.append(measure(devices, engine, args.seconds, args.window, Path(tmp)))
                print(json.dumps(results[-1]), flush=True)
        finally:
            devices.close()
    print(f"{'engine':<14}{'CPU % median':>14}{'p95':>8}{'RSS MB':>9}{'sound server %':>16}")
    for r in results:
        print(
            f"{r['engine']:<14}{r['cpu_percent_median']:>14.2f}{r['cpu_percent_p95']:>8.2f}{r['rss_mb']:>9.1f}"
            f"{r['sound_server_cpu_percent_median']:>16.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

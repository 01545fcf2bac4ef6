"""What an idle satellite costs: CPU and memory while it listens to silence on real PortAudio devices.

The satellite runs on the virtual microphone and speaker of a private PulseAudio daemon (the tests'
``tests/helpers/audio_devices.py``), nobody speaks, and its CPU time is read every ``--window`` seconds for
``--seconds``. Reported per wake word engine: the median and p95 of the windows as a percentage of one
core, and the resident memory at the end. The sound server's own CPU is reported beside it (a real
device has no such cost). Direct mode with servers that are not there: the satellite only listens.

``devices`` is the floor under it, measured in the same run: bench/device_floor.py opens the same
devices the same way and moves silence through them, nothing else; on these virtual devices most of
that is the ALSA pulse plugin, which a sound card's own ALSA device does not have. The engines are
measured in turn, ``--rounds`` times over (VM noise then hits them alike), and each figure is the
median and p95 over all of an engine's windows.

    bench/run_idle.sh [--seconds 60] [--window 5] [--rounds 3] [--engines devices,micro,openwakeword]
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
    log = (folder / f"satellite-{engine}.log").open("a")
    if engine == "devices":
        argv = [str(ROOT / "bench" / "device_floor.py"), "--mic-device", "chatty_mic", "--snd-device", "chatty_speaker"]
    else:
        argv = ["-m", "satellite", "--mode", "direct", "--mic-device", "chatty_mic",
                "--snd-device", "chatty_speaker", "--wake-word", WAKE_WORDS[engine],
                "--stt-uri", closed, "--llm-uri", closed, "--tts-uri", closed]  # fmt: skip
    process = subprocess.Popen([sys.executable, *argv], env=devices.env, stderr=log)
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
    return {"engine": engine, "windows": windows, "sound_windows": sound_windows, "rss_mb": round(rss / 2**20, 1)}


def summary(runs: list[dict]) -> dict:
    """One engine's runs: median and p95 over all their windows."""
    windows = [w for run in runs for w in run["windows"]]
    sound = [w for run in runs for w in run["sound_windows"]]
    return {
        "engine": runs[0]["engine"],
        "cpu_percent_median": round(percentile(windows, 50), 2),
        "cpu_percent_p95": round(percentile(windows, 95), 2),
        "rss_mb": max(run["rss_mb"] for run in runs),
        "sound_server_cpu_percent_median": round(percentile(sound, 50), 2),
        "windows": len(windows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--engines", default="devices,micro,openwakeword")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "idle.json")
    args = parser.parse_args()
    engines = args.engines.split(",")
    runs: dict[str, list[dict]] = {engine: [] for engine in engines}
    with tempfile.TemporaryDirectory() as tmp:
        devices = PulseAudioDevices(Path(tmp))
        try:
            for _ in range(args.rounds):
                for engine in engines:
                    runs[engine].append(measure(devices, engine, args.seconds, args.window, Path(tmp)))
                    print(json.dumps(summary(runs[engine][-1:])), flush=True)
        finally:
            devices.close()
    results = [summary(runs[engine]) for engine in engines]
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

"""Make a held-out STT clip set: new sentences in voices the project never tuned on.

Sixteen questions and commands, none of them in bench/*.py, tests/data/*/clips.json
or tests/**/*.py (checked here), each spoken by espeak-ng in three voices and by
Chatty's TTS server (Kokoro) in two. Every clip is 16 kHz mono 16-bit with 0.3 s
of silence before the speech. ``manifest.json`` maps each file to its text and voice;
``bench/stt_bench.py --clips DIR`` reads it.

    .venv/bin/python bench/stt_heldout.py [--out bench/out/stt_heldout]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr
from stt_bench import free_port, wait_ready, words

from wyoming_chatty_tts.client import speak

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
LEAD_SILENCE = 0.3
ESPEAK_VOICES = ["en-us+m3", "en-gb-x-rp", "en-us+f4"]
KOKORO_VOICES = ["jf_nezumi", "jm_kumo"]
SENTENCES = [
    "Send a text to my brother saying dinner is ready.",
    "How many ounces are in a cup?",
    "Add eggs and butter to my shopping list.",
    "How deep is the Pacific Ocean?",
    "Dim the hallway lamp a little.",
    "Who painted the ceiling of the Sistine Chapel?",
    "Open the blinds in the study.",
    "Put on a podcast about gardening.",
    "Skip to the next song.",
    "Find a pharmacy that is open late tonight.",
    "Wake me up early on weekdays.",
    "Translate good morning into Spanish.",
    "Will I need an umbrella on Saturday?",
    "Read me the latest headlines from the news.",
    "Turn the thermostat down a bit.",
    "Cancel my alarm for tomorrow morning.",
]


def check_held_out() -> None:
    """Refuse to run if a sentence appears in the project's benchmarks or tests."""
    files = [*ROOT.glob("bench/*.py"), *ROOT.glob("tests/data/*/clips.json"), *ROOT.glob("tests/**/*.py")]
    corpus = {path: " " + " ".join(words(path.read_text(errors="replace"))) + " " for path in files}
    corpus.pop(Path(__file__).resolve(), None)
    for sentence in SENTENCES:
        found = [str(p.relative_to(ROOT)) for p, text in corpus.items() if f" {' '.join(words(sentence))} " in text]
        if found:
            raise SystemExit(f"not held out: {sentence!r} is in {', '.join(found)}")


def write_clip(path: Path, samples: np.ndarray, rate: int) -> None:
    audio = soxr.resample(samples, rate, RATE) if rate != RATE else samples
    audio = np.concatenate([np.zeros(round(LEAD_SILENCE * RATE), np.int16), audio.astype(np.int16)])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(audio.tobytes())


def espeak(voice: str, text: str, path: Path) -> None:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", "155", "-w", tmp.name, text], check=True)
        with wave.open(tmp.name, "rb") as wav:
            assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
            rate, samples = wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    write_clip(path, samples, rate)


async def kokoro(out: Path, data_dir: Path) -> dict[str, dict[str, str]]:
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    command = [sys.executable, "-m", "wyoming_chatty_tts", "--uri", uri, "--data-dir", str(data_dir)]
    log = (out / "tts.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    manifest = {}
    try:
        print("starting Chatty's TTS server (1-3 min the first time) ...", file=sys.stderr)
        await wait_ready(uri, process, timeout=600)
        for voice in KOKORO_VOICES:
            for i, text in enumerate(SENTENCES, 1):
                result = await speak(uri, text, voice=voice)
                if result.error or not result.audio:
                    raise RuntimeError(f"TTS {voice}: {text!r}: {result.error or 'no audio'}")
                (rate, width, channels), *others = result.formats
                assert not others and width == 2 and channels == 1, result.formats
                name = f"kokoro-{voice}-{i:02d}.wav"
                write_clip(out / name, np.frombuffer(result.audio, np.int16), rate)
                manifest[name] = {"text": text, "voice": f"kokoro {voice}"}
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "stt_heldout")
    parser.add_argument("--tts-data-dir", type=Path, default=Path("/tmp/stt_heldout_tts"))
    args = parser.parse_args()
    check_held_out()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, object] = {"_about": "Made by bench/stt_heldout.py; text is what was spoken."}
    for voice in ESPEAK_VOICES:
        for i, text in enumerate(SENTENCES, 1):
            name = f"espeak-{voice}-{i:02d}.wav"
            espeak(voice, text, args.out / name)
            manifest[name] = {"text": text, "voice": f"espeak {voice}"}
    manifest.update(asyncio.run(kokoro(args.out, args.tts_data_dir)))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest) - 1} clips and manifest.json in {args.out}")


if __name__ == "__main__":
    main()

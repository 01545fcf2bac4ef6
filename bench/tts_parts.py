"""Benchmark: can Kokoro's first piece be heard before the whole piece is synthesized?

Splits the server's chosen model (the data folder's cache) into its front
(text -> aligned features, pitch and energy per frame) and its decoder
(features -> audio), times each, and measures how far three ways of vocoding
less at once sound from the whole piece vocoded at once, on the trimmed speech:
band-energy distance (as in ``wyoming_chatty_tts.models``), the most energy
lost between 4 and 12 kHz in any 100 ms (a fricative fading: "Paris is" losing
its s), and how much shorter the speech gets. The int8 vocoder against its
float form is the baseline (what the server already accepts):

* ``parts``: the decoder run on successive parts of the frames (the first ends
  300 ms into the speech, each next one is twice as long) with context on both
  sides, the harmonic source's phase carried across parts (an added
  ``phase_offset`` input), stitched;
* ``speech window``: the decoder run only on the frames whose predicted energy
  says speech, plus a margin (the edges' silence is trimmed anyway);
* ``lead cap``: the start token's predicted duration capped (the leading silence).

    .venv/bin/python bench/tts_parts.py [--data-dir DIR] [--voices N]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, utils

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatty_common.cli import default_data_dir  # noqa: E402
from wyoming_chatty_tts.engine import KokoroEngine, open_session, trim  # noqa: E402
from wyoming_chatty_tts.models import _band_energies, median_time, prepare_model  # noqa: E402
from wyoming_chatty_tts.voices import VoiceBank  # noqa: E402

# The decoder's inputs in Kokoro v1.0's export (and in our rewrites of it).
ASR, F0, ENERGY = "/encoder/MatMul_1_output_0", "/encoder/Reshape_output_0", "/encoder/Reshape_1_output_0"
CUMSUM = "/decoder/decoder/generator/m_source/l_sin_gen/CumSum_output_0"
HOP = 600  # audio samples per frame (pitch and energy come two per frame)
HARMONICS = 9
TEXTS = [
    "Sure.", "The lights are", "It is sunny today,", "Yes, it is.", "Hmm, let's see.",
    "Okay, I have set a timer for ten minutes.", "The capital of France is Paris.", "Fish and chips",
    "She sells sea shells", "Whisper softly", "Happy birthday!", "It's six fifteen",
    "The weather in Paris today is sunny and warm.", "Okay, I have set a timer for ten minutes in the kitchen.",
    "Your train leaves from platform four in ten minutes.", "She sells sea shells by the sea shore.",
]  # fmt: skip


def split(model: Path, folder: Path) -> tuple[Path, Path]:
    """The model's front and its decoder (with a phase_offset input and phase_cycles output), as files."""
    whole = onnx.load(str(model))
    extractor = utils.Extractor(whole)
    front = extractor.extract_model([i.name for i in whole.graph.input], [ASR, F0, ENERGY])
    decoder = extractor.extract_model([ASR, F0, ENERGY, "style"], ["audio"])
    graph = decoder.graph
    for node in graph.node:
        node.input[:] = ["phase_cycles" if name == CUMSUM else name for name in node.input]
    graph.node.append(helper.make_node("Add", [CUMSUM, "phase_offset"], ["phase_cycles"], name="phase_offset_add"))
    graph.input.append(helper.make_tensor_value_info("phase_offset", TensorProto.FLOAT, [1, 1, HARMONICS]))
    graph.output.append(helper.make_tensor_value_info("phase_cycles", TensorProto.FLOAT, None))
    paths = folder / "front.onnx", folder / "decoder.onnx"
    onnx.save(front, str(paths[0]))
    onnx.save(decoder, str(paths[1]))
    return paths


class Split:
    """The front and decoder sessions of one model."""

    def __init__(self, front: Path, decoder: Path) -> None:
        self.front = open_session(front, 2, "cpu")
        self.decoder = open_session(decoder, 2, "cpu")

    def features(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.front.run([ASR, F0, ENERGY], feed)

    def decode(self, features, style, start, end, offset=None) -> tuple[np.ndarray, np.ndarray]:
        asr, f0, energy = features
        feed = {
            ASR: asr[:, :, start:end], F0: f0[:, 2 * start : 2 * end], ENERGY: energy[:, 2 * start : 2 * end],
            "style": style, "phase_offset": np.zeros((1, 1, HARMONICS), np.float32) if offset is None else offset,
        }  # fmt: skip
        audio, cycles = self.decoder.run(None, feed)
        return np.asarray(audio).reshape(-1), cycles

    def in_parts(self, features, style, bounds: list[int], left: int, right: int) -> np.ndarray:
        """Decode frames bounds[i]..bounds[i+1] with context, carrying the harmonic phase, and stitch."""
        frames = features[0].shape[-1]
        offset, parts = None, []
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            start, end = max(0, a - left), min(frames, b + right)
            audio, cycles = self.decode(features, style, start, end, offset)
            parts.append(audio[(a - start) * HOP : (b - start) * HOP])
            if i + 2 < len(bounds):
                # The phase (in cycles) just before the next part's window starts; only its value modulo
                # 1/300 matters (the source multiplies it by 300 and takes the sine).
                index = 2 * (max(0, b - left) - start) - 1
                offset = None if index < 0 else np.mod(cycles[:, index : index + 1, :], 1 / 300).astype(np.float32)
        return np.concatenate(parts)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    count = min(len(a), len(b))
    ea, eb = _band_energies(a[:count]), _band_energies(b[:count])
    return float(np.mean(np.abs(ea - eb)))


def hiss(audio: np.ndarray) -> np.ndarray:
    """Energy (dB) between 4 and 12 kHz in each 100 ms: where fricatives (s, sh, f) live."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    power = (np.abs(np.fft.rfft(frames)) ** 2)[:, 170:512].sum(axis=1)
    count = len(power) // 10 * 10
    return 10 * np.log10(power[:count].reshape(-1, 10).sum(axis=1) + 1e-9)


def hiss_lost(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The most 4-12 kHz energy (dB) the candidate lacks in any 100 ms where the reference has some."""
    a, b = hiss(reference), hiss(candidate)
    count = min(len(a), len(b))
    a, b = a[:count], b[:count]
    heard = a > a.max() - 20
    return float(np.max(a[heard] - b[heard]))


def median_ms(run, repeats: int = 5) -> float:
    return 1000 * median_time(run, repeats)


def speech_window(energy: np.ndarray, frames: int, lead: int = 4, tail: int = 8) -> tuple[int, int]:
    loud = np.flatnonzero(energy.reshape(-1, 2).max(axis=1) > -2.0)
    if loud.size == 0:
        return 0, frames
    return max(0, int(loud[0]) - lead), min(frames, int(loud[-1]) + 1 + tail)


def report(name: str, values: dict[str, list[float]]) -> None:
    cells = "  ".join(f"{key} median {statistics.median(v):.3f} max {max(v):.3f}" for key, v in values.items())
    print(f"{name:34s} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir("tts"))
    parser.add_argument("--voices", type=int, default=5, help="how many bundled voices to speak in")
    args = parser.parse_args()
    voices = VoiceBank()
    voices.add_bundled()
    kokoro = args.data_dir / "kokoro"
    options = {"threads": None, "device": "cpu", "language": "en-us"}
    chosen = prepare_model(None, kokoro, "auto", voices, voice=voices.names[0], **options)
    floating = prepare_model(None, kokoro, "optimized", voices, voice=voices.names[0], **options)
    print(f"model: {chosen.name}")
    engine, reference = KokoroEngine(chosen), KokoroEngine(floating)
    with tempfile.TemporaryDirectory() as folder:
        parts = Split(*split(chosen, Path(folder)))

        print("\nTime of the front and the decoder (ms, median of 5):")
        style = voices.style(voices.names[0])
        for text in ["Sure.", "The lights are", "It is sunny today,", "The weather in Paris today is sunny and warm."]:
            feed = engine.feed(engine.phonemizer.tokens(engine.phonemizer.phonemes(text)), style, 1.0)
            features = parts.features(feed)
            frames = features[0].shape[-1]
            whole = median_ms(lambda feed=feed: engine.session.run(None, feed))
            front = median_ms(lambda feed=feed: parts.features(feed))
            decoder = median_ms(lambda f=features, n=frames, s=feed["style"]: parts.decode(f, s, 0, n))
            print(f"  {text:48s} frames {frames:3d}  whole {whole:5.0f}  front {front:4.0f}  decoder {decoder:5.0f}")

        results: dict[str, dict[str, list[float]]] = {}

        def note(name: str, key: str, value: float) -> None:
            results.setdefault(name, {}).setdefault(key, []).append(value)

        for voice in voices.names[: args.voices]:
            style = voices.style(voice)
            for text in TEXTS:
                feed = engine.feed(engine.phonemizer.tokens(engine.phonemizer.phonemes(text)), style, 1.0)
                features = parts.features(feed)
                frames = features[0].shape[-1]
                whole, _ = parts.decode(features, feed["style"], 0, frames)
                speech = trim(whole)
                floated = trim(reference.session.run(None, feed)[0].reshape(-1))
                name = "int8 vocoder vs float (baseline)"
                note(name, "dist", distance(floated, speech))
                note(name, "hiss lost dB", hiss_lost(floated, speech))
                onset, _ = speech_window(features[2], frames, lead=0, tail=0)
                for context in (16, 24, 40):
                    bounds = [0, onset + 12]
                    while bounds[-1] < frames:
                        bounds.append(min(frames, bounds[-1] + 2 * (bounds[-1] - bounds[-2])))
                    joined = trim(parts.in_parts(features, feed["style"], bounds, context, context))
                    name = f"parts, context {context}/{context}"
                    note(name, "dist", distance(speech, joined))
                    note(name, "hiss lost dB", hiss_lost(speech, joined))
                start, end = speech_window(features[2], frames)
                windowed, _ = parts.decode(features, feed["style"], start, end)
                name = "speech window (4 before, 8 after)"
                note(name, "dist", distance(trim(whole), trim(windowed)))
                note(name, "shorter ms", (len(trim(whole)) - len(trim(windowed))) / 24)
                note(name, "frames saved", 1 - (end - start) / frames)
                for cap in (3, 8):
                    capped = dict(feed)
                    capped["max_durations"] = feed["max_durations"].copy()
                    capped["max_durations"][0, 0] = cap
                    audio = trim(engine.session.run(None, capped)[0].reshape(-1))
                    name = f"lead cap {cap} frames"
                    note(name, "dist", distance(trim(whole)[::-1], audio[::-1]))  # aligned at the end
                    note(name, "shorter ms", (len(trim(whole)) - len(audio)) / 24)
        print(f"\nAgainst the whole piece vocoded at once ({args.voices} voices x {len(TEXTS)} phrases):")
        for name, values in results.items():
            report(name, values)


if __name__ == "__main__":
    main()

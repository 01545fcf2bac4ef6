"""Command line and start-up of the TTS server: ``python -m wyoming_chatty_tts``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from huggingface_hub import constants as hub_constants

from chatty_common.cli import (
    add_common_args,
    check_uri,
    positive_int,
    setup_logging,
)
from chatty_common.server import serve
from chatty_common.threads import limit_blas_threads

from .engine import KokoroEngine
from .fetch import VoiceFetcher
from .handler import TtsEventHandler, TtsSettings
from .info import build_info
from .library import VoiceLibrary
from .models import ModelError, prepare_model
from .pacing import SynthesisSpeed
from .recent import RecentPieces
from .voices import VoiceBank, VoiceError

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 10200
WARM_UP = "The lights are on."  # synthesized at start-up, the second time timed


def _speed(text: str) -> float:
    value = float(text)
    if not 0.5 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"must be between 0.5 and 2.0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-chatty-tts", description="Wyoming text-to-speech server on Kokoro-82M (ONNX Runtime)."
    )
    add_common_args(parser, default_port=DEFAULT_PORT, zeroconf_name="chatty-tts", service="tts")
    model = parser.add_argument_group("model and voices")
    model.add_argument(
        "--model",
        help="Kokoro ONNX file (kokoro-v1.0.onnx, .fp16.onnx or .int8.onnx), or fp32, fp16 or int8: Kokoro-82M "
        "v1.0's ONNX export of that precision, downloaded from Hugging Face once; default: the bundled int8 model",
    )
    model.add_argument(
        "--graph",
        choices=("auto", "original", "optimized", "quantized"),
        default="auto",
        help="run the model file as it is, its rewrite (float weights, 2-D convolutions, capped silences), "
        "the rewrite with a statically quantized vocoder, or whichever is fastest on this CPU, measured once "
        "(default: auto)",
    )
    model.add_argument(
        "--voice",
        default="jf_alpha",
        help="default voice, or a blend a:0.7+b:0.3; a Kokoro-82M voice that is not here yet (af_heart, bf_emma, ...) "
        "is downloaded from Hugging Face into --data-dir the first time (default: jf_alpha)",
    )
    model.add_argument(
        "--voices", type=Path, action="append", default=[], metavar="FILE",
        help="a voice pack such as voices-v1.0.bin (repeatable)",
    )  # fmt: skip
    model.add_argument(
        "--voices-dir",
        type=Path,
        help="folder of voice files (.npy, .pt, .pth: shape 510x1x256) and voice packs",
    )
    model.add_argument(
        "--language",
        default="en-us",
        help="espeak-ng language of the text for voices without a language of their own, such as the bundled "
        "Japanese ones (Kokoro's af_*/bf_* voices speak en-us/en-gb, and so on) (default: en-us)",
    )
    model.add_argument("--speed", type=_speed, default=1.0, help="speaking rate, 0.5 to 2.0 (default: 1.0)")
    model.add_argument(
        "--threads",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="threads per synthesis (default: all cores)",
    )
    model.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default: cpu)")
    serving = parser.add_argument_group("serving")
    serving.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="syntheses that run at once; clients take turns (default: 1)",
    )
    serving.add_argument(
        "--samples-per-chunk",
        type=positive_int,
        default=1024,
        help="samples per audio-chunk event (default: 1024)",
    )
    serving.add_argument(
        "--max-text-chars",
        type=positive_int,
        default=20_000,
        help="longest text spoken for one synthesize, or one stream's chunks together; longer gets a "
        "text-too-long error (default: 20000, about 20 minutes of speech)",
    )
    return parser


def load_voices(args: argparse.Namespace) -> VoiceLibrary:
    """The voices on this machine, and the default voice (fetched first if it is a Kokoro voice not here yet)."""
    voices = VoiceBank()
    voices.add_bundled()
    for pack in args.voices:
        voices.add_pack(pack)
    if args.voices_dir is not None:
        if not args.voices_dir.is_dir():
            raise VoiceError(f"--voices-dir {args.voices_dir} is not a folder")
        voices.add_folder(args.voices_dir)
    library = VoiceLibrary(voices, VoiceFetcher(args.data_dir / "voices"), online=not hub_constants.HF_HUB_OFFLINE)
    library.add_cached()
    library.voice_now(args.voice)  # the default voice must exist
    if not voices.names:
        raise VoiceError("no voices: install chatty[tts] for the bundled ones, or pass --voices / --voices-dir")
    _LOGGER.info("%d voices: %s", len(voices.names), ", ".join(voices.names))
    return library


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_uri(parser, args)
    setup_logging(args)
    limit_blas_threads()
    try:
        voices = load_voices(args)
        model = prepare_model(
            args.model, args.data_dir / "kokoro", args.graph, voices.bank,
            voice=args.voice, threads=args.threads, device=args.device, language=args.language,
        )  # fmt: skip
        engine = KokoroEngine(model, threads=args.threads, device=args.device, language=args.language)
    except (ModelError, VoiceError) as err:
        sys.exit(f"wyoming-chatty-tts: {err}")
    except RuntimeError as err:
        sys.exit(f"wyoming-chatty-tts: {err}")
    # Warm up so the first client gets full speed, and time a short phrase: how fast pieces are made here.
    default = voices.bank.voice(args.voice)
    for _ in range(2):
        started = time.monotonic()
        for _ in engine.synthesize(WARM_UP, default.style, args.speed, language=default.language):
            pass
    speed = SynthesisSpeed.timed(engine.spoken_length(WARM_UP, default.language), time.monotonic() - started)
    settings = TtsSettings(
        default_voice=args.voice,
        speed=args.speed,
        samples_per_chunk=args.samples_per_chunk,
        max_text_chars=args.max_text_chars,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, engine, voices, settings, speed))


async def _serve(
    args: argparse.Namespace, engine: KokoroEngine, voices: VoiceLibrary, settings: TtsSettings, speed: SynthesisSpeed
) -> None:
    executor = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="kokoro")
    try:
        await serve(
            args,
            partial(
                TtsEventHandler,
                info=partial(build_info, voices, args.language),
                engine=engine,
                voices=voices,
                settings=settings,
                executor=executor,
                recent=RecentPieces(),
                speed=speed,
            ),
        )
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        voices.close()


if __name__ == "__main__":
    main()

"""Command line and start-up of the STT server: ``python -m wyoming_chatty_stt``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from chatty_common.cli import (
    add_common_args,
    check_uri,
    non_negative_float,
    positive_float,
    positive_int,
    setup_logging,
)
from chatty_common.server import serve
from chatty_common.threads import limit_blas_threads

from .handler import SttEventHandler, SttSettings
from .info import build_info
from .models import ModelNotFound, resolve_model
from .scheduler import DecodeScheduler
from .transcriber import DEFAULT_MIN_WINDOW, DecodeOptions, Transcriber
from .utterance import StreamingSettings

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 10300


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-chatty-stt", description="Wyoming speech-to-text server on faster-whisper."
    )
    add_common_args(parser, default_port=DEFAULT_PORT, zeroconf_name="chatty-stt", service="stt")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default="tiny.en",
        help="faster-whisper size (tiny.en, base, small, ...), Hugging Face id, or local CTranslate2 "
        "folder; tiny.en and base are bundled and need no network (default: tiny.en)",
    )
    model.add_argument("--language", default="auto", help="language code, or auto to detect (default: auto)")
    model.add_argument("--beam-size", type=positive_int, default=1, help="beam size (default: 1)")
    model.add_argument("--compute-type", help="CTranslate2 compute type (default: int8 on cpu, float16 on cuda)")
    model.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default: cpu)")
    model.add_argument(
        "--cpu-threads",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="threads per decode (default: all cores)",
    )
    model.add_argument(
        "--min-window",
        type=positive_float,
        default=DEFAULT_MIN_WINDOW,
        help="shortest encoder window in seconds; an utterance is encoded in a window just long enough "
        "for it, checked, and decoded again in Whisper's full 30 s window only if the check fails; "
        f"30 always uses the full window (default: {DEFAULT_MIN_WINDOW:g})",
    )
    model.add_argument("--initial-prompt", help="text to prime the decoder with (names, jargon)")
    model.add_argument("--local-files-only", action="store_true", help="never download a model; use only files on disk")
    serving = parser.add_argument_group("serving")
    serving.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="decodes that run at once; more clients queue fairly (default: 1)",
    )
    serving.add_argument(
        "--max-seconds",
        type=positive_float,
        default=30.0,
        help="longest utterance accepted, in seconds (default: 30)",
    )
    serving.add_argument(
        "--endpoint-silence",
        type=positive_float,
        default=0.2,
        help="seconds of silence after speech before the final decode starts speculatively (default: 0.2)",
    )
    serving.add_argument(
        "--partial-interval",
        type=non_negative_float,
        default=1.0,
        help="seconds between partial transcripts while speech streams in; 0 turns them off (default: 1)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_uri(parser, args)
    setup_logging(args)
    limit_blas_threads()
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if args.local_files_only:
        os.environ["HF_HUB_OFFLINE"] = "1"
    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")

    try:
        source = resolve_model(args.model, args.data_dir)
        transcriber = Transcriber(
            source,
            device=args.device,
            compute_type=compute_type,
            cpu_threads=args.cpu_threads,
            workers=args.workers,
            download_root=str(args.data_dir / "models"),
            local_files_only=args.local_files_only,
            min_window=min(args.min_window, 30.0),
        )
    except ModelNotFound as err:
        sys.exit(f"wyoming-chatty-stt: {err}")
    except Exception as err:  # faster-whisper/huggingface raise many kinds
        sys.exit(
            f"wyoming-chatty-stt: could not load model {args.model!r}: {err}\n"
            "Without a network, use a bundled model (--model tiny.en or --model base) "
            "or a local CTranslate2 folder."
        )

    language = None if args.language == "auto" else args.language.split("-")[0].lower()
    if language is None and not transcriber.multilingual:
        # An English-only model: nothing to detect. Said, so that a client that names the language and
        # one that does not ask for the same decode (decodes of the same speech are shared).
        language = "en"
    if language is not None and language not in transcriber.languages:
        sys.exit(
            f"wyoming-chatty-stt: --language {args.language!r} is not supported by {source.name}; "
            f"use auto or one of: {', '.join(transcriber.languages)}"
        )
    options = DecodeOptions(language=language, beam_size=args.beam_size, initial_prompt=args.initial_prompt)
    transcriber.warm_up(options)

    settings = SttSettings(
        options=options,
        languages=tuple(transcriber.languages),
        multilingual=transcriber.multilingual,
        streaming=StreamingSettings(
            max_seconds=args.max_seconds,
            endpoint_silence=args.endpoint_silence,
            progress_interval=args.partial_interval,
        ),
    )
    info = build_info(transcriber, compute_type)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, info, settings, transcriber))


async def _serve(args: argparse.Namespace, info, settings: SttSettings, transcriber: Transcriber) -> None:
    scheduler = DecodeScheduler(transcriber, args.workers)
    scheduler.start()
    vad_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
    try:
        await serve(
            args,
            partial(
                SttEventHandler,
                info=info,
                settings=settings,
                scheduler=scheduler,
                vad_executor=vad_executor,
            ),
        )
    finally:
        await scheduler.close()
        vad_executor.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    main()

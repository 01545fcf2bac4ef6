"""Command line and start-up of the LLM server: ``python -m wyoming_chatty_llm``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from functools import partial
from pathlib import Path

from chatty_common.cli import add_common_args, check_uri, setup_logging
from chatty_common.metrics import MetricsFile
from chatty_common.server import serve
from chatty_common.threads import limit_blas_threads

from .agent import Agent
from .backends.base import ChatBackend
from .config import Config, ConfigError, LlamaCppOptions, OllamaOptions, api_key, load_config
from .handler import LlmEventHandler
from .info import build_info
from .memory import ConversationMemory

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 10500
MAX_WARM_UP_SECONDS = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wyoming-chatty-llm",
        description="Wyoming conversation agent on an LLM: llama.cpp in-process (default), Ollama, or an "
        "OpenAI-compatible API.",
    )
    add_common_args(parser, default_port=DEFAULT_PORT, zeroconf_name="chatty-llm", service="llm")
    parser.add_argument(
        "--config",
        type=Path,
        help="config.json with the backend, system prompt, backend options and memory "
        "(default: DATA_DIR/config.json if it exists, else built-in defaults; see config.example.json)",
    )
    parser.add_argument(
        "--metrics-file", type=Path, help="append each turn's LLM-TTF_MS and LLM-TOTAL_MS as JSON lines"
    )
    return parser


def config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return args.config
    default = args.data_dir / "config.json"
    return default if default.is_file() else None


def make_backend(config: Config, data_dir: Path) -> ChatBackend:
    """The configured backend, ready to use (a local model is loaded here, once)."""
    key = api_key(config)
    options = config.options
    if isinstance(options, LlamaCppOptions):
        from .backends.llama_cpp import LlamaCppBackend, model_file

        return LlamaCppBackend(options, model_file(options, data_dir))
    if isinstance(options, OllamaOptions):
        from .backends.ollama import OllamaBackend

        return OllamaBackend(options, key)
    from .backends.openai import OpenAIBackend

    return OpenAIBackend(options, key)


async def warm_up(agent: Agent) -> None:
    """Make the first answer fast; a backend that is down now is reported, and the server starts anyway."""
    limit = agent.config.options.timeout if agent.backend.name == "llama_cpp" else MAX_WARM_UP_SECONDS
    try:
        await asyncio.wait_for(agent.backend.warm_up(agent.config.system_prompt), limit)
    except Exception as err:
        _LOGGER.warning(
            "Could not warm up the %s backend (%s: %s); starting anyway, turns report what goes wrong",
            agent.backend.name,
            type(err).__name__,
            err,
        )


async def run(args: argparse.Namespace, config: Config, backend: ChatBackend) -> None:
    metrics = MetricsFile(args.metrics_file) if args.metrics_file else None
    agent = Agent(config, backend, ConversationMemory(config.memory), metrics)
    try:
        await warm_up(agent)
        _LOGGER.info("Answering with %s via %s (config: %s)", config.model_name, config.backend, config.source)
        await serve(args, partial(LlmEventHandler, info=build_info(config), agent=agent))
    finally:
        await agent.close()
        if metrics is not None:
            metrics.close()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_uri(parser, args)
    setup_logging(args)
    limit_blas_threads()
    if args.metrics_file is not None and args.metrics_file.is_dir():
        parser.error(f"--metrics-file {args.metrics_file} is a folder")
    try:
        config = load_config(config_path(args))
        backend = make_backend(config, args.data_dir)
    except ConfigError as err:
        sys.exit(f"wyoming-chatty-llm: {err}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args, config, backend))


if __name__ == "__main__":
    main()

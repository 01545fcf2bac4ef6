"""Command-line flags every Chatty server shares, and logging set-up."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from . import __version__

DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_data_dir(service: str) -> Path:
    """Where a service keeps models and caches unless ``--data-dir`` is given."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "chatty" / service


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    default_port: int,
    zeroconf_name: str,
    service: str,
) -> None:
    """Add ``--uri``, ``--zeroconf``, ``--data-dir``, ``--debug`` and friends."""
    parser.add_argument(
        "--uri",
        default=f"tcp://0.0.0.0:{default_port}",
        help=f"where to listen: tcp://HOST:PORT or unix://PATH (default: tcp://0.0.0.0:{default_port})",
    )
    parser.add_argument(
        "--zeroconf",
        nargs="?",
        const=zeroconf_name,
        metavar="NAME",
        help=f"advertise the server with zeroconf as _wyoming._tcp.local. (default name: {zeroconf_name})",
    )
    parser.add_argument(
        "--zeroconf-host",
        metavar="IP",
        help="IPv4 address to advertise and to send mDNS on (default: the address of the default route)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(service),
        help=f"folder for models and caches (default: {default_data_dir(service)})",
    )
    parser.add_argument("--debug", action="store_true", help="log DEBUG messages")
    parser.add_argument("--log-format", default=DEFAULT_LOG_FORMAT, help="format of log lines (Python logging syntax)")
    parser.add_argument("--version", action="version", version=__version__)


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from ``--debug`` and ``--log-format``."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format=args.log_format)
    if not args.debug:
        # Third-party libraries are chatty at INFO; keep our own lines readable.
        for noisy in ("faster_whisper", "httpx", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def tcp_port(uri: str) -> int | None:
    """Return the port of a ``tcp://`` URI, or None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp":
        return None
    return parsed.port


def check_uri(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject a bad ``--uri`` (or ``--zeroconf`` without TCP) with a clear CLI error."""
    parsed = urlparse(args.uri)
    if parsed.scheme not in ("tcp", "unix", "stdio"):
        parser.error(f"--uri {args.uri!r}: use tcp://HOST:PORT, unix://PATH or stdio://")
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.hostname is None or port is None:
            parser.error(f"--uri {args.uri!r}: a tcp:// URI needs a host and a port")
    if args.zeroconf and parsed.scheme != "tcp":
        parser.error("--zeroconf needs a tcp:// --uri")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number of at least 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value

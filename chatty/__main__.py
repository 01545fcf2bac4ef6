"""``chatty``: ``chatty up`` runs the STT, LLM and TTS servers together; ``chatty satellite`` runs the satellite
(direct mode, real microphone and speaker, unless told otherwise); ``chatty report`` draws a latency report."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVICES = (
    ("stt", "wyoming_chatty_stt", 10300),
    ("llm", "wyoming_chatty_llm", 10500),
    ("tts", "wyoming_chatty_tts", 10200),
)


def _relay(name: str, stream, width: int) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:<{width}} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def up(args: argparse.Namespace) -> int:
    """Start the three servers with zeroconf, show their logs prefixed, stop them all on Ctrl-C."""
    processes: dict[str, subprocess.Popen] = {}
    for kind, module, _ in SERVICES:
        port = getattr(args, f"{kind}_port")
        command = [sys.executable, "-m", module, "--uri", f"tcp://{args.host}:{port}",
                   "--zeroconf", f"chatty-{kind}{args.zeroconf_suffix}"]  # fmt: skip
        if args.zeroconf_host:
            command += ["--zeroconf-host", args.zeroconf_host]
        if args.debug:
            command.append("--debug")
        if args.data_dir:
            command += ["--data-dir", str(args.data_dir / kind)]
        processes[kind] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=_relay, args=(kind, processes[kind].stdout, 3), daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"chatty up: STT :{args.stt_port}, LLM :{args.llm_port}, TTS :{args.tts_port} on {args.host}, "
        "advertised with zeroconf; Ctrl-C stops",
        flush=True,
    )
    code = 0
    while not stop.is_set():
        for kind, process in processes.items():
            if process.poll() is not None:
                print(f"chatty up: the {kind} server exited with {process.returncode}; stopping the others")
                stop.set()
                code = 1
        stop.wait(0.5)
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 30
    for process in processes.values():
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
    return code


def report(args: argparse.Namespace) -> int:
    from .report import ReportError, draw, read_turns

    try:
        turns = read_turns(args.metrics)
        draw(turns, args.output)
    except ReportError as err:
        print(f"chatty report: {err}", file=sys.stderr)
        return 1
    print(f"{len(turns)} answered turns → {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatty", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="run the STT, LLM and TTS servers (zeroconf on; Ctrl-C stops all)")
    up_parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    up_parser.add_argument("--zeroconf-host", help="address to advertise (default: the default route's)")
    up_parser.add_argument("--debug", action="store_true")
    up_parser.add_argument("--data-dir", type=Path, help="one folder for all three (DIR/stt, DIR/llm, DIR/tts)")
    for kind, _, port in SERVICES:
        up_parser.add_argument(f"--{kind}-port", type=int, default=port, help=f"(default: {port})")
    up_parser.add_argument("--zeroconf-suffix", default="", help="appended to the names chatty-stt, -llm, -tts")
    commands.add_parser(
        "satellite", help="run the satellite (default: direct mode; any satellite flag works)", add_help=False
    )
    report_parser = commands.add_parser("report", help="draw a latency report from a satellite metrics file")
    report_parser.add_argument("metrics", type=Path, help="the satellite's --metrics-file (JSON lines)")
    report_parser.add_argument("-o", "--output", type=Path, default=Path("latency.png"), help="PNG to write")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["satellite"]:
        from satellite.__main__ import main as satellite_main

        rest = argv[1:]
        satellite_main(rest if any(a.startswith("--mode") for a in rest) else ["--mode", "direct", *rest])
        return 0
    args = parser.parse_args(argv)
    return up(args) if args.command == "up" else report(args)


if __name__ == "__main__":
    sys.exit(main())

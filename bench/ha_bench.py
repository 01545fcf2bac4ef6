"""Benchmark: spoken turns through Home Assistant against direct mode, on the same questions in the same run.

One set of Chatty servers (STT, LLM, TTS) serves three ways of asking, one after the other, each with
a satellite whose microphone plays the same WAV of spoken turns ("Okay Nabu." and a question, a
pause after each) at real time:

- ``direct``: the satellite in direct mode, talking to the three servers itself;
- ``ha-chatty``: the satellite in Home Assistant mode, Home Assistant (2026.2.3, headless, loopback)
  running the pipeline, our three servers through the Chatty integration (``custom_components/chatty``:
  the answer begun at the pause and streamed into the chat log, its first words prepared, TTS as CAF);
- ``ha-wyoming``: the same, with HA's own Wyoming integration for all three (HA's path before Chatty's
  integration: the whole answer, then the whole audio).

The questions are new sentences spoken by several espeak-ng voices (none tuned on). For each way it
prints QUESTION-TO-RESPONSE_MS and VOICE-TO-VOICE_MS (median, p95), the ratio to direct mode, and
for the Home Assistant runs where the time went: Home Assistant's own stage times from its pipeline
debug data, in ms after the last word, next to the satellite's and the Chatty integration's (from its
debug lines: the answer's first piece ready at the TTS server, Home Assistant asking for speech), and
how many answers stalled and whose audio came late (as in ``e2e_bench.py``). Turns whose answer is 60
characters or less (Home Assistant never streams those) are reported apart.

With ``--afterthought SECONDS`` every other question is followed, after that pause, by "Please keep it
short." in the same voice (the question was whole; the satellite may end it at its pause, but the speaker
goes on), and the report counts those questions heard to the end in each mode.

    bench/run_ha.sh [--rounds 1] [--modes direct,ha-chatty,ha-wyoming] [--ha-version 2026.2.3] [--afterthought 0.9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from e2e_bench import (  # noqa: E402
    AFTERTHOUGHT,
    STALL_SECONDS,
    speech,
    stalls,
    start,
    wait_ready,
    waits,
    with_afterthought,
)
from helpers.home_assistant import HA_VERSIONS, HomeAssistant, PipelineRun, setup_home_assistant  # noqa: E402
from stt_bench import free_port, percentile  # noqa: E402

from chatty_common.audio import write_wav  # noqa: E402

# (voice, question): new sentences, in voices the tuning never used.
QUESTIONS = [
    ("en-us", "Why do leaves change colour in autumn?"),
    ("en-gb", "How does a rainbow form in the sky?"),
    ("en-us+f3", "What is a good way to start learning the piano?"),
    ("en-us+m3", "Why is the ocean salty?"),
    ("en-gb", "How far away is the moon?"),
    ("en-us+f3", "What makes thunder so loud?"),
    ("en-us", "Can you tell me how bread rises?"),
    ("en-us+m3", "What is the tallest mountain in the world?"),
    ("en-gb", "Why do cats purr?"),
    ("en-us+f3", "How do bees find their way home?"),
    ("en-us", "What should I pack for a day at the beach?"),
    ("en-us+m3", "How long does it take to boil an egg?"),
]
GAP_SECONDS = 18.0  # after each question: the answer plays (a longer one is cut by the next wake word)
LEAD_SECONDS = 8.0  # before the first wake word: Home Assistant connects to the satellite
LLM_CONFIG = {"opts": {"llama_cpp": {"max_tokens": 60}}}  # voice-length answers, as in the e2e benchmark
STREAM_THRESHOLD = 60  # Home Assistant streams speech only for answers longer than this (pipeline.py)
MODES = ("direct", "ha-chatty", "ha-wyoming")
FIGURES = ("QUESTION-TO-RESPONSE_MS", "VOICE-TO-VOICE_MS")
SATELLITE_STAGES = ("end_of_speech", "transcript", "tts_first_audio", "first_played")  # from its turn records
HA_STAGES = ("stt-end", "first_text", "first_piece_ready", "tts_start_streaming", "speech_asked", "intent-end",
             "tts-start")  # fmt: skip
# The Chatty integration's own debug lines: the answer's first piece made and kept by the TTS server (the
# moment of the line), and Home Assistant asking the TTS entity for speech (the line's moment less its figure).
_TTS_LINE = r"^(\S+ \S+) .*\[custom_components\.chatty\.tts\] "
INTEGRATION_LINES = {
    "first_piece_ready": re.compile(_TTS_LINE + r"First words prepared in \d+ ms"),
    "speech_asked": re.compile(_TTS_LINE + r"First audio (\d+) ms after the request"),
}


def microphone(work: Path, rounds: int, afterthought: float = 0.0, voices: list[str] | None = None) -> Path:
    """The satellite's microphone: lead-in silence, then each question after the wake word, a gap after each;
    with an ``afterthought``, every other question is followed by :data:`AFTERTHOUGHT` after that many seconds;
    with ``voices``, those speak the questions in turn instead of each question's own."""
    silence = lambda seconds: bytes(int(seconds * 16000) * 2)  # noqa: E731
    nabu = speech("Okay Nabu.", work)
    pcm = silence(LEAD_SECONDS)
    for _ in range(rounds):
        for number, (voice, question) in enumerate(QUESTIONS):
            voice = voices[number % len(voices)] if voices else voice
            pauses: dict[int, float] = {}
            if afterthought and number % 2:
                question, pauses = with_afterthought(question, afterthought)
            pcm += nabu + silence(0.6) + speech(question, work, voice, pauses) + silence(GAP_SECONDS)
    return write_wav(work / "questions.wav", pcm)


def run_satellite(args: list[str], mic: Path, logs: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    metrics = logs / f"{mode}-turns.jsonl"
    metrics.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "satellite", "--mic-file", str(mic), "--snd-file", str(logs / f"{mode}-speaker.wav"),
         "--metrics-file", str(metrics), "--no-follow-up", "--name", "bench", *args],
        stderr=(logs / f"{mode}-satellite.log").open("wb"),
    )  # fmt: skip
    return process, metrics


def wait_turns(process: subprocess.Popen, metrics: Path, count: int, timeout: float) -> list[dict]:
    """The satellite's turn records, once ``count`` are written (or the satellite stopped, or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            break
        time.sleep(1)
    time.sleep(2)
    return [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []


def integration_moments(log: str) -> list[tuple[str, float]]:
    """The Chatty integration's moments in Home Assistant's log (its debug lines), as (name, wall-clock time)."""
    moments = []
    for line in log.splitlines():
        for name, pattern in INTEGRATION_LINES.items():
            if match := pattern.match(line):
                at = datetime.fromisoformat(match.group(1)).timestamp()
                moments.append((name, at - int(match.group(2)) / 1000 if name == "speech_asked" else at))
    return moments


def ha_stages(turn: dict, runs: list[PipelineRun], integration: list[tuple[str, float]]) -> dict[str, float | None]:
    """Home Assistant's stage times for a turn, in ms after the last word (its pipeline debug data), and the
    Chatty integration's (its log: the first piece ready, speech asked for; the first of each before the
    first sound)."""
    match = [run for run in runs if run.transcript and run.transcript == turn.get("transcript")]
    if not match or turn.get("first_played_time") is None or turn.get("VOICE-TO-VOICE_MS") is None:
        return {}
    run = match[-1]
    last_word = turn["first_played_time"] - turn["VOICE-TO-VOICE_MS"] / 1000
    moments: dict[str, float | None] = {}
    for stage in ("stt-end", "intent-end", "tts-start"):
        event = run.event(stage)
        moments[stage] = None if event is None else event.received
    deltas = [e for e in run.events if e.type == "intent-progress" and e.data.get("chat_log_delta", {}).get("content")]
    moments["first_text"] = deltas[0].received if deltas else None
    started = [e for e in run.events if e.type == "intent-progress" and e.data.get("tts_start_streaming")]
    moments["tts_start_streaming"] = started[0].received if started else None
    for name in INTEGRATION_LINES:
        seen = [at for kind, at in integration if kind == name and last_word < at <= turn["first_played_time"]]
        moments[name] = seen[0] if seen else None
    return {name: None if at is None else round((at - last_word) * 1000, 1) for name, at in moments.items()}


def summarize(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


async def ha_modes(args, ports: dict[str, int], mic: Path, logs: Path, work: Path) -> dict[str, list[dict]]:
    """Run the Home Assistant ways of asking; returns each mode's turn records (with HA's stage times)."""
    results: dict[str, list[dict]] = {}
    setup_home_assistant(args.ha_version)
    integration = ROOT / "custom_components" / "chatty"
    async with HomeAssistant(
        work / "ha", version=args.ha_version, custom_components=[integration], debug=("custom_components.chatty",)
    ) as ha:
        pipelines = {}
        if "ha-wyoming" in args.modes:
            stt = await ha.add_wyoming("127.0.0.1", ports["stt"])
            llm = await ha.add_wyoming("127.0.0.1", ports["llm"])
            tts = await ha.add_wyoming("127.0.0.1", ports["tts"])
            pipelines["ha-wyoming"] = await ha.create_pipeline(
                "Wyoming", stt_engine=stt.entity("stt"), tts_engine=tts.entity("tts"),
                conversation_engine=llm.entity("conversation"), language="en",
            )  # fmt: skip
        if "ha-chatty" in args.modes:
            agent = await ha.add_integration("chatty", "127.0.0.1", ports["llm"])
            voice = await ha.add_integration("chatty", "127.0.0.1", ports["tts"])
            hearing = await ha.add_integration("chatty", "127.0.0.1", ports["stt"])
            pipelines["ha-chatty"] = await ha.create_pipeline(
                "Chatty", stt_engine=hearing.entity("stt"), tts_engine=voice.entity("tts"),
                conversation_engine=agent.entity("conversation"), language="en",
            )  # fmt: skip
        for mode in [m for m in args.modes if m in pipelines]:
            await ha.ws_call("assist_pipeline/pipeline/set_preferred", pipeline_id=pipelines[mode])
            port = free_port()
            print(f"{mode}: {len(QUESTIONS) * args.rounds} turns ...", file=sys.stderr)
            stt_uri = f"tcp://127.0.0.1:{ports['stt']}"  # the satellite judges pauses with it
            llm_uri = f"tcp://127.0.0.1:{ports['llm']}"  # it judges a pause once its answer has begun, and stops
            # an answer nobody will hear (barge-in, going on)
            ha_args = ["--mode", "ha", "--uri", f"tcp://127.0.0.1:{port}", "--stt-uri", stt_uri, "--llm-uri", llm_uri]
            process, metrics = run_satellite(ha_args, mic, logs, mode)
            try:
                entry = await join(ha, port, process)
                turns = await asyncio.to_thread(wait_turns, process, metrics, len(QUESTIONS) * args.rounds,
                                                LEAD_SECONDS + 60 + len(QUESTIONS) * args.rounds * 20)  # fmt: skip
                runs = await ha.pipeline_runs(pipelines[mode])
                integration = integration_moments(ha.log_path.read_text(errors="replace"))
                for turn in turns:
                    turn["ha_stages_ms"] = ha_stages(turn, runs, integration)
                results[mode] = turns
                await ha.remove_entry(entry)
            finally:
                process.terminate()
                process.wait(30)
        shutil.copy(ha.log_path, logs / "home-assistant.log")
    return results


async def join(ha: HomeAssistant, port: int, process: subprocess.Popen) -> str:
    """Add the satellite to Home Assistant (retrying while it starts); returns the entry id."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return (await ha.add_wyoming("127.0.0.1", port)).entry_id
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            await asyncio.sleep(0.5)


def report(results: dict[str, list[dict]], out: Path, afterthought: float = 0.0) -> None:
    summary: dict[str, Any] = {}
    print()
    for subset, keep in (("answers over 60 characters", True), ("answers of 60 characters or less", False)):
        print(f"{subset}:")
        header = f"  {'mode':<12} {'turns':>5} " + " ".join(f"{f[:-3] + ' median/p95':>34}" for f in FIGURES)
        print(header)
        for mode, turns in results.items():
            answered = [t for t in turns if t.get("outcome") in ("answered", "interrupted")
                        and t.get("first_played_time") is not None
                        and (len(t.get("answer") or "") > STREAM_THRESHOLD) == keep]  # fmt: skip
            row = summary.setdefault(subset, {}).setdefault(mode, {"turns": len(answered)})
            cells = []
            for figure in FIGURES:
                stats = summarize([t[figure] for t in answered if t.get(figure) is not None])
                row[figure] = stats
                cells.append("-" if stats is None else f"{stats['median']:.0f} / {stats['p95']:.0f} ms")
            print(f"  {mode:<12} {len(answered):>5} " + " ".join(f"{c:>34}" for c in cells))
            stages = {s: summarize([t["ha_stages_ms"][s] for t in answered
                                    if t.get("ha_stages_ms", {}).get(s) is not None]) for s in HA_STAGES}  # fmt: skip
            row["ha_stages_ms"] = stages
            row["satellite_stages_ms"] = {s: summarize([t["stages_ms"][s] for t in answered
                                                        if t.get("stages_ms", {}).get(s) is not None])
                                          for s in SATELLITE_STAGES}  # fmt: skip
        direct = summary[subset].get("direct", {}).get("VOICE-TO-VOICE_MS")
        for mode, row in summary[subset].items():
            v2v = row.get("VOICE-TO-VOICE_MS")
            if mode != "direct" and direct and v2v:
                row["v2v_ratio_to_direct"] = round(v2v["median"] / direct["median"], 3)
                print(f"  {mode}: VOICE-TO-VOICE median {row['v2v_ratio_to_direct']:.2f} x direct mode's")
        print()
    print("Where the time went (median ms after the last word; Home Assistant's stage times and the satellite's):")
    subset = "answers over 60 characters"
    for mode, row in summary.get(subset, {}).items():
        parts = [f"{name} {stats['median']:.0f}" for name, stats in {**row.get("satellite_stages_ms", {}),
                 **row.get("ha_stages_ms", {})}.items() if stats]  # fmt: skip
        print(f"  {mode:<12} " + ", ".join(sorted(parts, key=lambda p: float(p.rsplit(" ", 1)[1]))))
    print(f"Answers that stalled (a silence of {STALL_SECONDS} s or more inside), from what each satellite played:")
    for mode in results:
        played = stalls(out / "ha-logs" / f"{mode}-speaker.wav")
        stalled = sorted(s for answer in played for s in answer)
        summary.setdefault("stalled_answers", {})[mode] = {"stalled": sum(1 for a in played if a), "of": len(played),
                                                           "stalls_s": stalled}  # fmt: skip
        print(f"  {mode:<12} {sum(1 for a in played if a)} of {len(played)}; stalls {stalled}")
    print("Answers whose audio came late (the satellite's player heard silence for want of it), from its turn records:")
    for mode, turns in results.items():
        late = waits(turns)
        summary.setdefault("late_answers", {})[mode] = {"late": sum(1 for w in late if w), "of": len(late),
                                                        "waits_s": sorted(s for w in late for s in w)}  # fmt: skip
        print(f"  {mode:<12} {sum(1 for w in late if w)} of {len(late)}; waits {sorted(s for w in late for s in w)}")
    if afterthought:
        print(f"Questions followed by {AFTERTHOUGHT!r} after {afterthought} s, heard to the end:")
        for mode, turns in results.items():
            if not turns or len(turns) % len(QUESTIONS):  # turn i is question i: only when none is missing
                print(f"  {mode:<12} {len(turns)} turns for {len(QUESTIONS)} questions a round: not counted")
                continue
            said = [t.get("transcript") or "" for i, t in enumerate(turns) if i % 2]
            heard = [text for text in said if "short" in text.lower()]
            summary.setdefault("afterthoughts_heard", {})[mode] = {"heard": len(heard), "of": len(said)}
            print(f"  {mode:<12} {len(heard)} of {len(said)}; the others: {[t for t in said if t not in heard]}")
    (out / "ha.json").write_text(json.dumps(summary, indent=2))
    print("\nTarget: ha-chatty VOICE-TO-VOICE median at most 1.15 x direct mode's (answers over 60 characters).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="passes over the questions (default: 1)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--ha-version", default=HA_VERSIONS[-1], choices=HA_VERSIONS)
    parser.add_argument("--llm-nice", type=int, help="nice value of the local LLM's generation (default: its own, 10)")
    parser.add_argument("--debug-servers", action="store_true", help="servers log at debug level (bench/out/ha-logs)")
    parser.add_argument("--voices", help="voices of the questions, taking turns: espeak-ng's, or Kokoro's as "
                        "kokoro:NAME (comma-separated; default: each question's own espeak-ng voice)")  # fmt: skip
    parser.add_argument("--afterthought", type=float, default=0.0, help="every other question goes on after this pause")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(args.modes) - set(MODES):
        parser.error(f"unknown modes: {sorted(unknown)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("espeak-ng") is None:
        sys.exit("this benchmark makes its questions with espeak-ng: apt-get install espeak-ng")
    out = ROOT / "bench" / "out"
    logs = out / "ha-logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mic = microphone(work, args.rounds, args.afterthought, args.voices.split(",") if args.voices else None)
        config = json.loads(json.dumps(LLM_CONFIG))
        if args.llm_nice is not None:
            config["opts"]["llama_cpp"]["nice"] = args.llm_nice
        (work / "llm.json").write_text(json.dumps(config))
        ports = {"stt": free_port(), "llm": free_port(), "tts": free_port()}
        debug = ["--debug"] if args.debug_servers else []
        servers = {
            "stt": start("wyoming_chatty_stt", ports["stt"], logs, *debug),
            "llm": start("wyoming_chatty_llm", ports["llm"], logs, "--config", str(work / "llm.json"), *debug),
            "tts": start("wyoming_chatty_tts", ports["tts"], logs, *debug),
        }
        try:
            for kind, process in servers.items():
                wait_ready(f"tcp://127.0.0.1:{ports[kind]}", process)
            if "direct" in args.modes:
                print(f"direct: {len(QUESTIONS) * args.rounds} turns ...", file=sys.stderr)
                uris = [a for kind, port in ports.items() for a in (f"--{kind}-uri", f"tcp://127.0.0.1:{port}")]
                process, metrics = run_satellite(["--mode", "direct", *uris], mic, logs, "direct")
                try:
                    results["direct"] = wait_turns(process, metrics, len(QUESTIONS) * args.rounds,
                                                   LEAD_SECONDS + 60 + len(QUESTIONS) * args.rounds * 20)  # fmt: skip
                finally:
                    process.terminate()
                    process.wait(30)
            if any(mode.startswith("ha-") for mode in args.modes):
                results.update(asyncio.run(ha_modes(args, ports, mic, logs, work)))
        finally:
            for process in servers.values():
                process.terminate()
            for process in servers.values():
                process.wait(30)
    (out / "ha-turns.json").write_text(json.dumps(results, indent=2))
    report(results, out, args.afterthought)


if __name__ == "__main__":
    main()

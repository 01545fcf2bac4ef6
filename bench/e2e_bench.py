"""Benchmark: whole spoken turns in direct mode, from the wake word to the first sound of the answer.

Starts the STT, LLM and TTS servers on their embedded defaults and the
satellite in direct mode, whose microphone is one WAV file of spoken turns
("Okay Nabu." then a question, made here with espeak-ng), a few seconds apart,
played in at real time. Prints the median and p95 of each figure of the
satellite's per-turn log over all turns and writes them as JSON.

It is also the soak run: it checks that every turn was logged once and none
failed, and reports each process's resident memory (median and peak of each
round of ten turns): growth is the last round's median against the first's.
300 turns back to back: ``bench/run_e2e.sh --rounds 30`` (about an hour and
ten minutes). From what the satellite played it also counts the answers that
stalled: a silence of STALL_SECONDS or more inside an answer, where the next
piece of its audio was not there in time, or a pause Kokoro made inside a piece
(at a comma or colon): and, from the satellite's own turn records, the waits
its player heard (silence inside an answer because the next audio had not come).

    bench/run_e2e.sh [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from stt_bench import free_port, percentile  # noqa: E402
from turn_corpus import KokoroSpeaker, with_breaks  # noqa: E402

from chatty_common.audio import write_wav  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is the boiling point of water?",
    "Who wrote Romeo and Juliet?",
    "What colour is the sky?",
    "How many days are in a week?",
    "What is the largest planet?",
    "What do bees make?",
    "What is two plus two?",
    "Which animal is the king of the jungle?",
]
GAP_SECONDS = 10.0  # after each question: time for the answer to play before the next wake word
LLM_CONFIG = {"opts": {"llama_cpp": {"max_tokens": 60}}}  # voice-length answers (about 15 s at most)
STAGES = ("end_of_speech", "transcript", "llm_first", "tts_first_audio", "first_played")  # in the order they come
STALL_SECONDS = 0.35  # a silence this long inside an answer is a stall (Kokoro's own pauses are shorter)
SOUND_LEVEL = 0.01  # peak amplitude of 10 ms of played audio that counts as sound
ANSWER_APART = 2.5  # s: sounds closer than this belong to one answer
TONE_SECONDS = 0.25  # s: a sound this short before or after an answer is a tone, not speech
FIGURES = ("QUESTION-TO-RESPONSE_MS", "VOICE-TO-VOICE_MS", "STT_MS", "LLM-TTF_MS", "LLM-TOTAL_MS", "TTS-TTFA_MS")


KOKORO = "kokoro:"  # a voice of Chatty's own TTS model ("kokoro:jm_kumo"), as the question's voice
_kokoro: dict[Path, KokoroSpeaker] = {}


def speech(text: str, work: Path, voice: str = "en-us", pauses: dict[int, float] | None = None) -> bytes:
    """16 kHz mono 16-bit speech of ``text`` from espeak-ng in one of its voices (resampled with soxr), or from
    Kokoro (``kokoro:VOICE``), with a pause of ``pauses[i]`` seconds after its word ``i``."""
    import soxr

    if voice.startswith(KOKORO):
        if work not in _kokoro:
            from chatty_common.cli import default_data_dir

            _kokoro[work] = KokoroSpeaker(default_data_dir("tts"), work)
        audio = _kokoro[work].speak(text, pauses or {}, voice=voice.removeprefix(KOKORO))
        return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    raw = work / "say.wav"
    ssml = ["-m"] if pauses else []
    said = with_breaks(text, pauses or {})
    subprocess.run(["espeak-ng", *ssml, "-v", voice, "-s", "150", "-w", str(raw), said], check=True)
    with wave.open(str(raw), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        rate = wav.getframerate()
    return soxr.resample(samples, rate, 16000).astype("<i2").tobytes()


def hesitating(pause: float) -> dict[int, float]:
    """A pause after the question's third word ("What is the ... capital of France?")."""
    return {2: pause}


AFTERTHOUGHT = "Please keep it short."
"""Said after some questions, following a pause: the question was whole, but the speaker goes on."""


def with_afterthought(question: str, pause: float) -> tuple[str, dict[int, float]]:
    """The question followed, after a pause of ``pause`` seconds, by :data:`AFTERTHOUGHT` (its words, its pause)."""
    return f"{question} {AFTERTHOUGHT}", {len(question.split()) - 1: pause}


def microphone(work: Path, rounds: int, voices: list[str], hesitation: float = 0.0, afterthought: float = 0.0) -> Path:
    """The wake word (en-us) and each question in turn, the questions' voices taking turns; with a
    ``hesitation``, every other question has a pause of that many seconds after its third word; with an
    ``afterthought``, every other question is followed by :data:`AFTERTHOUGHT` after that many seconds."""
    silence = lambda seconds: bytes(int(seconds * 16000) * 2)  # noqa: E731
    nabu = speech("Okay Nabu.", work)
    pcm = silence(1.0)
    for number, question in enumerate(QUESTIONS * rounds):
        voice = voices[number % len(voices)]
        pauses = hesitating(hesitation) if hesitation and number % 2 else {}
        if afterthought and number % 2:
            question, pauses = with_afterthought(question, afterthought)
        said = speech(question, work, voice, pauses)
        pcm += nabu + silence(0.6) + said + silence(GAP_SECONDS)
    return write_wav(work / "turns.wav", pcm)


def start(module: str, port: int, work: Path, *args: str) -> subprocess.Popen:
    log = (work / f"{module}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", module, "--uri", f"tcp://127.0.0.1:{port}", *args],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip


def wait_ready(uri: str, process: subprocess.Popen) -> None:
    import asyncio

    from stt_bench import wait_ready as wait

    asyncio.run(wait(uri, process, 300))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def watch_memory(processes: dict[str, subprocess.Popen], metrics: Path, warm_up_turns: int) -> dict[str, dict]:
    """Until the satellite exits, sample each process's resident memory every 2 s; per round of
    ``warm_up_turns`` turns keep the median and the peak. The soak reading compares the medians of the
    first and the last round (a request's working memory comes and goes; a leak raises the median)."""
    samples: dict[str, list[float]] = {name: [] for name in processes}
    by_round: list[dict[str, dict[str, float]]] = []
    satellite = processes["satellite"]

    def close_round() -> None:
        by_round.append({name: {"median": statistics.median(values), "max": max(values)}
                         for name, values in samples.items() if values})  # fmt: skip
        for values in samples.values():
            values.clear()

    while satellite.poll() is None:
        time.sleep(2)
        for name, process in processes.items():
            if process.poll() is None:
                with contextlib.suppress(OSError):  # it may exit between the check and the read
                    samples[name].append(_rss_mb(process.pid))
        done = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        if done >= warm_up_turns * (len(by_round) + 1):
            close_round()
    if any(samples.values()):
        close_round()
    memory = {}
    for name in processes:
        rounds = [r.get(name) for r in by_round]
        medians = [r["median"] for r in rounds if r]
        memory[name] = {"warm_mb": medians[0] if medians else None, "end_mb": medians[-1] if medians else None,
                        "by_round_mb": rounds}  # fmt: skip
    return memory


def stalls(played: Path) -> list[list[float]]:
    """The silences of STALL_SECONDS or more inside each answer the satellite played (s; one list per answer).

    Sounds closer than ANSWER_APART are one answer; an answer is at least 0.4 s of sound. The
    satellite's and Home Assistant's short tones (under TONE_SECONDS) are not part of it, and one
    between two answers keeps them apart (the next question's wake tone 2 s after an answer ends).
    """
    with wave.open(str(played)) as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, channels)[:, 0]
    hop = rate // 100
    blocks = np.abs(pcm[: pcm.size // hop * hop].astype(np.float32)).reshape(-1, hop).max(axis=1) / 32768
    loud = np.flatnonzero(blocks > SOUND_LEVEL)
    answers: list[list[float]] = []
    if loud.size == 0:
        return answers
    silences = np.diff(loud) / 100 - 0.01  # s of silence between consecutive sounding blocks
    start = 0
    for end in [*np.flatnonzero(silences >= ANSWER_APART), loud.size - 1]:
        # islands of sound split by silences of STALL_SECONDS or more: (first block, last block)
        cuts = [start + int(i) for i in np.flatnonzero(silences[start:end] >= STALL_SECONDS)]
        firsts, lasts = [int(start), *[c + 1 for c in cuts]], [*cuts, int(end)]
        islands = list(zip(firsts, lasts, strict=True))
        answer: list[tuple[int, int]] = []
        ends: list[tuple[int, int] | None] = [*islands, None]  # (None: the end)
        for island in ends:
            if island is not None and (loud[island[1]] - loud[island[0]]) / 100 >= TONE_SECONDS:
                answer.append(island)
                continue
            if answer and (loud[answer[-1][1]] - loud[answer[0][0]]) / 100 >= 0.4:
                answers.append([round(float(silences[a[1]]), 2) for a in answer[:-1]])
            answer = []
        start = end + 1
    return answers


def waits(turns: list[dict]) -> list[list[float]]:
    """Per answer, the silences (s) the satellite's player heard inside it because its audio came late."""
    return [t["waits_s"] for t in turns if "waits_s" in t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="passes over the 10 questions (default: 1)")
    parser.add_argument("--satellite-arg", action="append", default=[], help="extra satellite flag (repeatable)")
    parser.add_argument("--llm-threads", type=int, help="threads of the local LLM (default: all cores)")
    parser.add_argument("--voices", default="en-us", help="voices of the questions, taking turns: espeak-ng's, "
                        f"or Kokoro's as {KOKORO}NAME (comma-separated; default: en-us)")  # fmt: skip
    parser.add_argument("--hesitation", type=float, default=0.0,
                        help="every other question pauses this long after its third word (default: none)")  # fmt: skip
    parser.add_argument("--afterthought", type=float, default=0.0,
                        help=f"every other question is followed by {AFTERTHOUGHT!r} after this many seconds "
                        "(default: none)")  # fmt: skip
    parser.add_argument("--out", default="e2e", help="name of the results in bench/out (default: e2e)")
    parser.add_argument("--debug-servers", action="store_true", help="servers log at debug level (bench/out/e2e-logs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below when killed
    if shutil.which("espeak-ng") is None:
        sys.exit("the end-to-end benchmark makes its questions with espeak-ng: apt-get install espeak-ng")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "e2e-logs"  # each server's log, the satellite's, and what it played
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mic = microphone(work, args.rounds, args.voices.split(","), args.hesitation, args.afterthought)
        llm_config = work / "llm.json"
        config = json.loads(json.dumps(LLM_CONFIG))
        if args.llm_threads:
            config["opts"]["llama_cpp"]["threads"] = args.llm_threads
        llm_config.write_text(json.dumps(config))
        ports = {"stt": free_port(), "llm": free_port(), "tts": free_port()}
        debug = ["--debug"] if args.debug_servers else []
        servers = {
            "stt": start("wyoming_chatty_stt", ports["stt"], logs, *debug),
            "llm": start("wyoming_chatty_llm", ports["llm"], logs, "--config", str(llm_config), *debug),
            "tts": start("wyoming_chatty_tts", ports["tts"], logs, *debug),
        }
        satellite: subprocess.Popen | None = None
        try:
            for kind, process in servers.items():
                wait_ready(f"tcp://127.0.0.1:{ports[kind]}", process)
            metrics = work / "turns.jsonl"
            print(f"Running {len(QUESTIONS) * args.rounds} turns ...", file=sys.stderr)
            satellite = subprocess.Popen(
                [sys.executable, "-m", "satellite", "--mode", "direct", "--mic-file", str(mic), "--snd-file",
                 str(logs / "speaker.wav"), "--metrics-file", str(metrics), "--no-follow-up",
                 *[a for kind, port in ports.items() for a in (f"--{kind}-uri", f"tcp://127.0.0.1:{port}")],
                 *args.satellite_arg],
                stderr=(logs / "satellite.log").open("wb"),
            )  # fmt: skip
            memory = watch_memory({**servers, "satellite": satellite}, metrics, warm_up_turns=len(QUESTIONS))
            if satellite.returncode != 0:
                sys.exit(f"the satellite exited with {satellite.returncode}; see {logs / 'satellite.log'}")
            turns = [json.loads(line) for line in metrics.read_text().splitlines()]
            shutil.copy(metrics, out / f"{args.out}-turns.jsonl")
        finally:  # also on Ctrl-C and SIGTERM: no server or satellite is left running
            children = [*servers.values(), *([satellite] if satellite is not None else [])]
            for process in children:
                process.terminate()
            for process in children:
                process.wait(30)

    answered = [t for t in turns if t["outcome"] == "answered"]
    print()
    print(f"End to end, direct mode: {len(answered)} of {len(turns)} turns answered "
          f"({len(QUESTIONS) * args.rounds} asked)")  # fmt: skip
    header = f"{'figure':<26} {'median':>9} {'p95':>9}"
    print(header)
    print("-" * len(header))
    summary = {}
    for figure in FIGURES:
        values = [t[figure] for t in answered if t.get(figure) is not None]
        if values:
            summary[figure] = {"median": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}
            print(f"{figure:<26} {summary[figure]['median']:>6.0f} ms {summary[figure]['p95']:>6.0f} ms")
    # The breakdown: when each stage was reached, in ms after the last voiced frame of the question.
    stages = {}
    print(f"\n{'moment after the last word':<26} {'median':>9} {'p95':>9}")
    print("-" * len(header))
    for stage in STAGES:
        values = [t["stages_ms"][stage] for t in answered if t.get("stages_ms", {}).get(stage) is not None]
        if values:
            stages[stage] = {"median": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}
            print(f"{stage:<26} {stages[stage]['median']:>6.0f} ms {stages[stage]['p95']:>6.0f} ms")
    if len(turns) == len(QUESTIONS) * args.rounds:  # turn i is question i: its voice, its round
        # By round too: later rounds ask the same questions again, and an answer that begins as one a minute
        # before did (the small default LLM repeats itself) has its first piece from the TTS server's recent ones.
        voices = args.voices.split(",")
        groups = {f"voice {voice}": [t for i, t in enumerate(turns) if voices[i % len(voices)] == voice]
                  for voice in voices}  # fmt: skip
        groups |= {f"round {r + 1}": turns[r * len(QUESTIONS) : (r + 1) * len(QUESTIONS)] for r in range(args.rounds)}
        print(f"\n{'turns':<26} {'V2V median':>10} {'p95':>7} {'end of speech':>14}  (answered)")
        summary["groups"] = {}
        for name, group in groups.items():
            done = [t for t in group if t["outcome"] == "answered" and t.get("VOICE-TO-VOICE_MS") is not None]
            if not done:
                continue
            v2v = [t["VOICE-TO-VOICE_MS"] for t in done]
            ends = [t["stages_ms"]["end_of_speech"] for t in done if t.get("stages_ms", {}).get("end_of_speech")]
            figures = {"v2v_median": percentile(v2v, 50), "v2v_p95": percentile(v2v, 95), "n": len(done),
                       "end_of_speech_median": percentile(ends, 50) if ends else None}  # fmt: skip
            summary["groups"][name] = figures
            end = f"{figures['end_of_speech_median']:>11.0f} ms" if ends else f"{'-':>14}"
            print(f"{name:<26} {figures['v2v_median']:>7.0f} ms {figures['v2v_p95']:>4.0f} ms {end}  ({len(done)})")
    if args.hesitation and len(turns) == len(QUESTIONS) * args.rounds:  # turn i is question i
        asked = [q for _ in range(args.rounds) for q in QUESTIONS]
        said = [(asked[i], t.get("transcript") or "") for i, t in enumerate(turns) if i % 2]
        cut = [heard for question, heard in said if len(heard.split()) < 0.7 * len(question.split())]
        print(f"\nquestions with a {args.hesitation} s pause after their third word: {len(cut)} of {len(said)} "
              f"cut off at the pause {cut}")  # fmt: skip
        summary["hesitations_cut_off"] = {"cut": len(cut), "of": len(said)}
    if args.afterthought and len(turns) == len(QUESTIONS) * args.rounds:
        said = [t.get("transcript") or "" for i, t in enumerate(turns) if i % 2]
        heard_out = [text for text in said if "short" in text.lower()]
        print(f"\nquestions followed by {AFTERTHOUGHT!r} after {args.afterthought} s: {len(heard_out)} of {len(said)} "
              f"heard to the end; the others: {[text for text in said if text not in heard_out]}")  # fmt: skip
        summary["afterthoughts_heard"] = {"heard": len(heard_out), "of": len(said)}
    played = stalls(logs / "speaker.wav")
    stalled = [a for a in played if a]
    longest = max((s for a in stalled for s in a), default=0.0)
    print(f"\nanswers that stalled (a silence of {STALL_SECONDS} s or more inside): {len(stalled)} of {len(played)}, "
          f"longest {longest:.2f} s; stalls {sorted(s for a in stalled for s in a)}")  # fmt: skip
    summary["stalled_answers"] = {"stalled": len(stalled), "of": len(played), "longest_s": longest}
    late = waits(turns)
    print(f"answers whose audio came late (the player's own count): {sum(1 for w in late if w)} of {len(late)}; "
          f"waits {sorted(s for w in late for s in w)}")  # fmt: skip
    summary["late_answers"] = {"late": sum(1 for w in late if w), "of": len(late),
                               "waits_s": sorted(s for w in late for s in w)}  # fmt: skip
    went_on = [t for t in turns if t.get("went_on")]
    if went_on:  # commands ended at a pause whose speaker went on before the answer sounded: heard on
        print(f"turns heard on after an early end: {len(went_on)} "
              f"{[(w['heard'], t.get('transcript')) for t in went_on for w in t['went_on']]}")  # fmt: skip
    summary["went_on"] = len(went_on)
    # Soak reading: every turn logged once, none failed, memory growth after the first round.
    failed = [t for t in turns if t["outcome"] not in ("answered", "interrupted")]
    print(f"\n{len(turns)} turns logged for {len(QUESTIONS) * args.rounds} asked; {len(failed)} failed")
    for name, figures in memory.items():
        if figures["warm_mb"] and figures["end_mb"]:
            growth = (figures["end_mb"] / figures["warm_mb"] - 1) * 100
            figures["growth_pct"] = growth
            print(f"  {name:<10} resident memory (median of a round) {figures['warm_mb']:.0f} MB in the first "
                  f"round, {figures['end_mb']:.0f} MB in the last ({growth:+.1f}%)")  # fmt: skip
            rounds = figures["by_round_mb"]
            shown = sorted({0, *range(4, len(rounds), 5), len(rounds) - 1})
            print(" " * 13 + "round: median/peak MB " + ", ".join(
                f"{i + 1}: {rounds[i]['median']:.0f}/{rounds[i]['max']:.0f}" for i in shown if rounds[i]))  # fmt: skip
    (out / f"{args.out}.json").write_text(
        json.dumps(
            {"turns": len(turns), "answered": len(answered), "failed": len(failed), **summary, "stages_ms": stages,
             "memory": memory},
            indent=2,
        )
    )  # fmt: skip
    print("\nTargets: QUESTION-TO-RESPONSE_MS median at most 500 ms, VOICE-TO-VOICE_MS median at most 1000 ms.")
    print(f"Per-turn records: {out / f'{args.out}-turns.jsonl'}")


if __name__ == "__main__":
    main()

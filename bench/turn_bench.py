"""End of turn on the hesitation corpus (issue 16): who is cut off at a pause, how long finished speakers wait.

Runs the satellite's end-of-turn rules over each clip of ``bench/turn_corpus.py``, frame by frame, with
Silero VAD as the satellite runs it, in the same run:

- ``silence``: the fixed silence (``--end-silence``, 0.6 s), the rule before issue 16;
- ``smart``: the clip streams at real time to a real Chatty STT server (started here) as the satellite
  streams a command (:class:`satellite.command_words.CommandWords`, both modes); at a pause of
  ``--turn-pause`` the satellite's :class:`satellite.end_of_turn.TurnJudge` judges the sound (Smart
  Turn) and the words (the server's transcript of that pause); the command ends when the verdict is
  "done" and the speaker has not gone on by the time it is ready (measured: the transcript and the
  judgement take real time here), otherwise after ``--unfinished-silence`` (``--end-silence`` when
  the pause's words did not come).

For a clip with a pause inside (hesitation, list), a *cut-off* is a command that ends before the
speech after the pause begins. For a clip heard to its end, the *end-of-turn delay* is the time from
its last voiced 10 ms frame (by energy) to the end decision: how long a speaker waits once done, after
a hesitation too. A clip trailing off in "um" should wait (its delay is reported, no target). Reported
per part (tune, held_out, kokoro), kind, pause and voice. The corpus is clean speech on digital silence;
``--noise DBFS`` puts pink noise under every clip (a fan, a fridge: a room that is not silent), the words
and pauses still found on the clean clip.

    python bench/turn_corpus.py --out bench/out/turn_corpus
    python bench/turn_bench.py --corpus bench/out/turn_corpus
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
import wave
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.servers import ServerProcess  # noqa: E402
from wyoming.client import AsyncClient  # noqa: E402

from chatty_common.threads import limit_blas_threads  # noqa: E402
from satellite.audio_io import FRAME_BYTES, FRAME_SECONDS, Frame  # noqa: E402
from satellite.command_words import CommandWords  # noqa: E402
from satellite.end_of_turn import (  # noqa: E402
    LATE_WORDS,
    UNSURE_WORDS,
    HearAgain,
    Judgement,
    TurnJudge,
    TurnTaking,
)
from satellite.speech import CommandRules, Endpointer, VoiceActivity  # noqa: E402
from wyoming_chatty_stt.client import LateWords, UnsureWords  # noqa: E402

VOICED_RMS = 300  # 16-bit RMS of a 10 ms frame that counts as voiced (espeak-ng's silences are digital zero)
RULES = ("silence", "smart")


def frames(path: Path) -> list[bytes]:
    with wave.open(str(path), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
    pcm += bytes(3 * 16000 * 2)  # the room goes quiet afterwards
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def with_noise(clip: list[bytes], dbfs: float, seed: int) -> list[bytes]:
    """The clip with pink noise under it at ``dbfs`` (RMS, against a full-scale sine's peak): a room that is
    not silent (a fan, a fridge, traffic). Seeded per clip, so that runs compare."""
    pcm = np.frombuffer(b"".join(clip), dtype="<i2").astype(np.float64)
    white = np.fft.rfft(np.random.default_rng(seed).standard_normal(pcm.size))
    white[1:] /= np.sqrt(np.arange(1, white.size))  # 1/f power
    white[0] = 0.0
    pink = np.fft.irfft(white, pcm.size)
    pink *= 32768.0 * 10 ** (dbfs / 20) / np.sqrt(np.mean(pink**2))
    noisy = np.clip(np.round(pcm + pink), -32768, 32767).astype("<i2").tobytes()
    return [noisy[i : i + FRAME_BYTES] for i in range(0, len(noisy), FRAME_BYTES)]


def voiced(frame: bytes) -> bool:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples**2))) > VOICED_RMS


def speech_probabilities(clip: list[bytes]) -> list[float]:
    vad = VoiceActivity("silero")
    return [vad.process(frame) for frame in clip]


@dataclass
class Ending:
    at: float | None  # seconds into the clip; None: never
    pauses: list[dict[str, object]]


def end_by_silence(speech: list[float], rules: CommandRules) -> Ending:
    heard = silence = 0.0
    for index, probability in enumerate(speech):
        if probability >= rules.threshold:
            heard += FRAME_SECONDS
            silence = 0.0
        else:
            silence += FRAME_SECONDS
        if heard >= rules.min_speech and silence >= rules.end_silence - 1e-9:
            return Ending((index + 1) * FRAME_SECONDS, [])
    return Ending(None, [])


async def connect(uri: str) -> AsyncClient:
    client = AsyncClient.from_uri(uri)
    await client.connect()
    return client


async def end_by_judge(
    clip: list[bytes], speech: list[float], rules: CommandRules, judge: TurnJudge, stt_uri: str, whole: bool = False
) -> Ending:
    """The smart rule, live: the clip streams at real time; each pause is judged while it goes on; the
    command ends at a "done" that is ready before the speaker went on."""
    taking = judge.taking
    words = CommandWords(lambda: connect(stt_uri), "en", taking.pause)
    heard = silence = 0.0
    end_silence = taking.unfinished_silence
    judging: list[tuple[float, asyncio.Task[tuple[Judgement, str | None, float]]]] = []  # (paused at, verdict)
    last_pause = -1.0  # clip time of the pause under way (-1: the speaker is speaking)
    heard_twice = -1.0  # the pause whose words ended a request when heard twice: it ends at heard_twice_silence
    pauses: list[dict[str, object]] = []

    async def judge_pause(pcm: bytes, again: HearAgain, phrase: int) -> tuple[Judgement, str | None, float]:
        began = time.monotonic()
        try:
            text = await words.at_pause()
        except UnsureWords as unsure:  # the satellite's rule: unsure words are never the end, the silence decides
            transcribed = time.monotonic() - began
            return await judge.judge(pcm, unsure.text, None, phrase, unsure=True), unsure.text, transcribed
        except LateWords:  # the satellite's rule: words too late to judge by, the long silence decides
            return Judgement(False, None, None, LATE_WORDS), None, time.monotonic() - began
        except Exception:  # the satellite's rule: no words, the plain silence decides
            text = None
        transcribed = time.monotonic() - began
        return await judge.judge(pcm, text, again, phrase), text, transcribed

    phrases = Endpointer(rules)  # where the last phrase begins, as the satellite finds it (its endings unused)
    started = time.monotonic()
    try:
        for index, probability in enumerate(speech):
            await asyncio.sleep(max(0.0, started + index * FRAME_SECONDS - time.monotonic()))
            words.feed(clip[index])
            phrases.feed(Frame(clip[index], 0.0), probability)
            now = (index + 1) * FRAME_SECONDS
            if probability >= rules.threshold:
                heard += FRAME_SECONDS
                silence = 0.0
                last_pause = -1.0
            else:
                silence += FRAME_SECONDS
            for paused_at, task in [item for item in judging if item[1].done()]:
                judging.remove((paused_at, task))
                verdict, text, transcribed = task.result()
                ready = time.monotonic() - started
                pauses.append({"at": round(paused_at, 2), "ready_s": round(ready - paused_at, 3),
                               "transcript_s": round(transcribed, 3), "text": text, **verdict.as_record()})  # fmt: skip
                if paused_at == last_pause:  # the speaker has not gone on since
                    if text is None and verdict.reason not in (LATE_WORDS, UNSURE_WORDS):
                        end_silence = taking.fallback_silence
                    elif not verdict.done:
                        end_silence = judge.silence_after(verdict)
                    if verdict.done and verdict.again is not None and silence < taking.heard_twice_silence - 1e-9:
                        heard_twice = paused_at  # the satellite's rule: it waits for that much silence
                    elif verdict.done:
                        return Ending(ready, pauses)
            if heard_twice == last_pause >= 0 and silence >= taking.heard_twice_silence - 1e-9:
                return Ending(time.monotonic() - started, pauses)
            if heard >= rules.min_speech and silence >= end_silence - 1e-9:
                return Ending(now, pauses)
            if heard >= rules.min_speech and last_pause < 0 and silence >= taking.pause - 1e-9:
                last_pause = now
                end_silence = taking.unfinished_silence  # until this pause is judged (as the satellite)
                pcm = b"".join(clip[: index + 1])
                judged = judge_pause(pcm, words.second_hearing(), 0 if whole else phrases.phrase_offset)
                judging.append((now, asyncio.create_task(judged)))
        return Ending(None, pauses)
    finally:
        for _, task in judging:
            task.cancel()
        await words.close()


def median_ms(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    if not finite:
        return "-"
    return f"{statistics.median(finite) * 1000:.0f}"


async def run(args: argparse.Namespace) -> None:
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    if args.part != "all":
        manifest = [item for item in manifest if item["part"] == args.part]
    if args.voice:
        manifest = [item for item in manifest if item["voice"] in args.voice]
    if args.kind:
        manifest = [item for item in manifest if item["kind"] in args.kind]
    if args.limit:
        manifest = manifest[: args.limit]
    taking = TurnTaking(
        pause=args.turn_pause, unfinished_silence=args.unfinished_silence,
        sound_threshold=args.sound_threshold, words_threshold=args.words_threshold, sure_words=args.sure_words,
        doubtful_silence=args.doubtful_silence, doubtful_words=args.doubtful_words, doubtful_sound=args.doubtful_sound,
        heard_twice_silence=args.heard_twice_silence, unsure_silence=args.unsure_silence,
    )  # fmt: skip
    judge = await asyncio.to_thread(TurnJudge, taking)
    judge.warm_up()
    silence_rules = CommandRules(end_silence=args.end_silence)
    smart_rules = CommandRules(end_silence=args.unfinished_silence)
    with tempfile.TemporaryDirectory() as tmp:
        stt = ServerProcess("wyoming_chatty_stt", ["--language", "en"], Path(tmp) / "stt.log")
        try:
            await asyncio.to_thread(stt.wait_ready)
            records = []
            for number, item in enumerate(manifest):
                clip = frames(args.corpus / item["file"])
                on = [i for i, frame in enumerate(clip) if voiced(frame)]  # of the clean clip: where the words are
                if args.noise is not None:
                    clip = with_noise(clip, args.noise, zlib.crc32(item["file"].encode()))
                speech = speech_probabilities(clip)
                endings = {
                    "silence": end_by_silence(speech, silence_rules),
                    "smart": await end_by_judge(clip, speech, smart_rules, judge, stt.uri, args.whole_command),
                }
                record: dict[str, object] = {**item}
                for rule, ending in endings.items():
                    record[rule] = {"ended_s": ending.at, "pauses": ending.pauses}
                    last = (on[-1] + 1) * FRAME_SECONDS
                    record[rule]["delay_s"] = None if ending.at is None else round(ending.at - last, 3)  # type: ignore[index]
                    if item["kind"] not in ("complete", "filler"):
                        gaps = sorted((b - a, b) for a, b in itertools.pairwise(on))
                        inserted = gaps[-2:] if item["kind"] == "two_hesitations" else gaps[-1:]
                        resumes = max(b for _, b in inserted) * FRAME_SECONDS  # the speech after the last pause
                        record[rule]["cut_off"] = ending.at is not None and ending.at < resumes  # type: ignore[index]
                records.append(record)
                if (number + 1) % 25 == 0:
                    print(f"  {number + 1}/{len(manifest)} clips", file=sys.stderr, flush=True)
        finally:
            stt.stop()
            judge.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    report(records, args)


def report(records: list[dict], args: argparse.Namespace) -> None:
    print(
        f"silence: {args.end_silence} s; smart: judged at {args.turn_pause} s, unfinished "
        f"{args.unfinished_silence} s (doubtful {args.doubtful_silence} s: words from {args.doubtful_words}, sound "
        f"from {args.doubtful_sound}; unsure words {args.unsure_silence} s), "
        f"thresholds sound {args.sound_threshold} words {args.words_threshold}, "
        f"heard again under {args.sure_words} (ending no sooner than {args.heard_twice_silence} s into the silence)"
        + ("; Smart Turn hears the whole command" if args.whole_command else "")
        + (f"; pink noise at {args.noise:g} dBFS" if args.noise is not None else "")
    )
    cut: dict[tuple[str, str, float], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    delays: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for rule in RULES:
            result = record[rule]
            if "cut_off" in result:
                cut[(record["part"], record["kind"], record["pause"])][rule].append(result["cut_off"])
            if result.get("cut_off"):
                continue  # no end-of-turn delay: the command ended before the speaker did
            if "delay_s" in result:  # (records written before hesitation clips had one have none)
                delay = result["delay_s"]
                value = float("inf") if delay is None else delay
                delays[(record["part"], record["kind"], "all")][rule].append(value)
                delays[(record["part"], record["kind"], record["voice"])][rule].append(value)
    print(f"\n{'part':<10}{'kind':<16}{'pause s':>8}" + "".join(f"{rule + ' cut':>18}" for rule in RULES))
    for (part, kind, pause), by_rule in sorted(cut.items()):
        cells = "".join(f"{sum(by_rule[r]):>11} of {len(by_rule[r]):<4}" for r in RULES)
        print(f"{part:<10}{kind:<16}{pause:>8.1f}{cells}")
    print(f"\nend-of-turn delay, median ms (never ended)\n{'part':<10}{'kind':<16}{'voice':<16}"
          + "".join(f"{rule:>16}" for rule in RULES))  # fmt: skip
    for (part, kind, voice), waits in sorted(delays.items()):
        cells = "".join(f"{median_ms(waits[r]):>11} ({sum(v == float('inf') for v in waits[r])})" for r in RULES)
        print(f"{part:<10}{kind:<16}{voice:<16}{cells}")
    ready = [p["ready_s"] for record in records for p in record["smart"]["pauses"]]
    if ready:
        words = [p["transcript_s"] for record in records for p in record["smart"]["pauses"]]
        print(f"\njudging a pause, from the pause: median {statistics.median(ready) * 1000:.0f} ms (its words "
              f"{statistics.median(words) * 1000:.0f} ms), max {max(ready) * 1000:.0f} ms "
              f"over {len(ready)} pauses")  # fmt: skip
        late = sum(p["reason"] == LATE_WORDS for record in records for p in record["smart"]["pauses"])
        print(f"words too late to judge by (the long silence decided): {late} of {len(ready)} pauses")
        unsure = [p for record in records for p in record["smart"]["pauses"] if p.get("unsure")]
        print(f"words Whisper was unsure of: {len(unsure)} of {len(ready)} pauses, "
              f"{sum(bool(p.get('doubtful')) for p in unsure)} of them would have ended the command")  # fmt: skip
        doubtful = sum(bool(p.get("doubtful")) for record in records for p in record["smart"]["pauses"])
        print(f"judged unfinished on weak evidence only (the doubtful silence): {doubtful} of {len(ready)} pauses")
        again = [p for record in records for p in record["smart"]["pauses"] if "again" in p]
        print(f"heard a second time: {len(again)} pauses, of which "
              f"{sum(not p['done'] for p in again)} were then judged unfinished")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "bench" / "out" / "turn_corpus")
    parser.add_argument("--end-silence", type=float, default=CommandRules().end_silence)
    parser.add_argument("--turn-pause", type=float, default=TurnTaking.pause)
    parser.add_argument("--unfinished-silence", type=float, default=TurnTaking.unfinished_silence)
    parser.add_argument("--doubtful-silence", type=float, default=TurnTaking.doubtful_silence)
    parser.add_argument("--doubtful-words", type=float, default=TurnTaking.doubtful_words)
    parser.add_argument("--doubtful-sound", type=float, default=TurnTaking.doubtful_sound)
    parser.add_argument(
        "--unsure-silence",
        type=float,
        default=TurnTaking.unsure_silence,
        help="the silence after unsure words that would end the command (the long silence: as before 2026-12-05)",
    )
    parser.add_argument("--sound-threshold", type=float, default=TurnTaking.sound_threshold)
    parser.add_argument("--words-threshold", type=float, default=TurnTaking.words_threshold)
    parser.add_argument(
        "--sure-words",
        type=float,
        default=TurnTaking.sure_words,
        help="words less sure than this are heard a second time (1: always, 0: never)",
    )
    parser.add_argument(
        "--heard-twice-silence",
        type=float,
        default=TurnTaking.heard_twice_silence,
        help="the least silence that ends a command on words heard twice (0: as soon as they are judged)",
    )
    parser.add_argument(
        "--part", choices=("all", "tune", "held_out", "kokoro", "commands", "commands_tune"), default="all"
    )
    parser.add_argument(
        "--voice", action="append", help="only the clips in this voice (espeak-ng or Kokoro; repeatable)"
    )
    parser.add_argument("--kind", action="append", help="only the clips of this kind (repeatable)")
    parser.add_argument(
        "--whole-command",
        action="store_true",
        help="the acoustic model hears the whole command, not its last phrase (the rule before c380e9a)",
    )
    parser.add_argument(
        "--noise", type=float, help="pink noise under every clip at this level (dBFS RMS, e.g. -40): a room not silent"
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips (a quick look)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "turn_bench.json")
    parser.add_argument("--report-only", action="store_true", help="print the report of --out again")
    args = parser.parse_args()
    limit_blas_threads()  # as the satellite does: the judge runs in this process
    if args.report_only:
        report(json.loads(args.out.read_text()), args)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

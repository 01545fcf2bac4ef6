"""Benchmark: an answer's first sound in direct mode, from the question's text to the TTS's first audio.

Starts the LLM, TTS and STT servers on their embedded defaults and asks ten
questions the way the satellite does (the LLM's words go on to the TTS as they
are written), timing the LLM's first text, the moment the TTS's first piece is
complete (the server's own splitter, run here on the same text), and the first
audio. Each question is asked in three conditions, each with fresh servers (so
no first piece is reused from an earlier answer):

* ``alone``: nothing else runs;
* ``judge``: the satellite's end-of-turn models judge the question's audio at
  the same moment, as they do at a pause in direct mode;
* ``judge-late``: the same models start when the LLM's first text arrives;
* ``stt``: the STT server transcribes a spoken question at the same moment.

For the two judge conditions, ``judged`` is when the verdict was in.

    bench/run_answer.sh [--rounds 2] [--conditions alone,judge,stt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from e2e_bench import LLM_CONFIG, speech, start  # noqa: E402
from stt_bench import free_port, percentile, wait_ready  # noqa: E402
from turn_bench import connect  # noqa: E402

from chatty_common.threads import limit_blas_threads  # noqa: E402
from satellite.end_of_turn import TurnJudge, TurnTaking  # noqa: E402
from wyoming_chatty_llm.client import AnswerStream  # noqa: E402
from wyoming_chatty_stt.client import TranscriptionStream  # noqa: E402
from wyoming_chatty_tts.client import SpeechStream  # noqa: E402
from wyoming_chatty_tts.splitter import TextSplitter  # noqa: E402

QUESTIONS = [  # not the end-to-end benchmark's questions
    "What is the tallest mountain in the world?",
    "How far away is the moon?",
    "What do cows drink?",
    "Who painted the Mona Lisa?",
    "What is the speed of light?",
    "How many continents are there?",
    "What language do they speak in Brazil?",
    "Why is the sea salty?",
    "What is the freezing point of water?",
    "Who was the first person on the moon?",
]
SPOKEN = "What is the tallest mountain in the world?"  # the audio the judge or the STT works on
MOMENTS = ("llm_first", "first_piece", "first_audio", "audio_after_piece", "judged")


async def transcribe(uri: str, pcm: bytes) -> str:
    client = await connect(uri)
    try:
        stream = TranscriptionStream(client)
        await stream.start()
        for offset in range(0, len(pcm), 3200):
            await stream.send(pcm[offset : offset + 3200])
        return await stream.finish(60)
    finally:
        await client.disconnect()


async def answer(
    uris: dict[str, str],
    question: str,
    moments: dict[str, float] | None = None,
    first_text: asyncio.Event | None = None,
) -> dict[str, float]:
    """Ask one question as the satellite does; the moments (ms after asking) its answer reached.
    ``first_text`` is set when the LLM's first text arrives."""
    llm, tts = await connect(uris["llm"]), await connect(uris["tts"])
    moments = {} if moments is None else moments
    started = time.monotonic()
    moments["asked_at"] = started

    def mark(name: str) -> None:
        moments.setdefault(name, (time.monotonic() - started) * 1000)

    try:
        speech_stream = SpeechStream(tts)
        await speech_stream.start()

        async def listen() -> None:
            async for _chunk in speech_stream.audio(60):
                mark("first_audio")

        listening = asyncio.create_task(listen())
        agent = AnswerStream(llm)
        await agent.ask(question)
        splitter = TextSplitter()
        async for piece in agent.pieces(60):
            mark("llm_first")
            if first_text is not None:
                first_text.set()
            if splitter.feed(piece):
                mark("first_piece")
            await speech_stream.add(piece)
        mark("first_piece")  # a short answer's only piece is complete when it ends
        await speech_stream.finish()
        await listening
    finally:
        await llm.disconnect()
        await tts.disconnect()
    moments["audio_after_piece"] = moments["first_audio"] - moments["first_piece"]
    return moments


async def run_condition(condition: str, rounds: int, work: Path) -> list[dict[str, float]]:
    ports = {kind: free_port() for kind in ("llm", "tts", "stt")}
    uris = {kind: f"tcp://127.0.0.1:{port}" for kind, port in ports.items()}
    config = work / "llm.json"
    config.write_text(json.dumps(LLM_CONFIG))
    servers = {
        "llm": start("wyoming_chatty_llm", ports["llm"], work, "--config", str(config)),
        "tts": start("wyoming_chatty_tts", ports["tts"], work),
        "stt": start("wyoming_chatty_stt", ports["stt"], work),
    }
    judge = TurnJudge(TurnTaking())
    try:
        for kind, process in servers.items():
            await wait_ready(uris[kind], process, 300)
        judge.warm_up()
        pcm = speech(SPOKEN, work)
        rows = []
        for round_ in range(rounds):
            for question in QUESTIONS:
                asked = question if round_ == 0 else f"{question[:-1]}, please?"
                load = None
                moments: dict[str, float] = {}
                first_text = asyncio.Event()

                async def judged(after: asyncio.Event | None, moments: dict[str, float] = moments) -> None:
                    if after is not None:
                        await after.wait()
                    await judge.judge(pcm, SPOKEN)
                    moments["judged"] = (time.monotonic() - moments["asked_at"]) * 1000

                if condition == "judge":
                    load = asyncio.create_task(judged(None))
                elif condition == "judge-late":
                    load = asyncio.create_task(judged(first_text))
                elif condition == "stt":
                    load = asyncio.create_task(transcribe(uris["stt"], pcm))
                row = await answer(uris, asked, moments, first_text)
                if load is not None:
                    await load
                del row["asked_at"]
                rows.append(row)
                await asyncio.sleep(0.5)
        return rows
    finally:
        judge.close()
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            process.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the ten questions (default: 2)")
    parser.add_argument("--conditions", default="alone,judge,stt", help="which (default: alone,judge,stt)")
    parser.add_argument("--out", default="answer", help="name of the results in bench/out (default: answer)")
    args = parser.parse_args()
    limit_blas_threads()  # as the satellite does: the judge runs in this process
    results = {}
    print(f"{'condition':<10}" + "".join(f"{m + ' med/p95':>26}" for m in MOMENTS))
    for condition in args.conditions.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            rows = await run_condition(condition, args.rounds, Path(tmp))
        figures = {}
        for moment in MOMENTS:
            if values := [row[moment] for row in rows if moment in row]:
                figures[moment] = {"median": percentile(values, 50), "p95": percentile(values, 95)}
        results[condition] = figures
        cells = [
            f"{figures[m]['median']:>17.0f} /{figures[m]['p95']:>5.0f} ms" if m in figures else f"{'-':>26}"
            for m in MOMENTS
        ]
        print(f"{condition:<10}" + "".join(cells))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps(results, indent=2))
    print(f"\nms after the question was sent; {args.rounds * len(QUESTIONS)} answers per condition; "
          f"raw figures: {out / (args.out + '.json')}")  # fmt: skip


if __name__ == "__main__":  # the end-of-turn words model runs in a worker process
    asyncio.run(main())

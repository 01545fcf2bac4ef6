"""Benchmark: what the Chatty LLM server adds to a backend's time to first token and total time.

Two backends, each measured directly and through the server in the same run, on
the same questions, alternating (so drift hits both alike), at temperature 0
(so both produce the same tokens):

* OpenAI API: ``llama_cpp.server`` on the bundled SmolLM2. Direct: the official
  ``openai`` client streaming from it. Through Chatty: a Wyoming ``transcript``
  to the server with ``backend: openai`` pointed at the same ``llama_cpp.server``,
  timed to the first ``handled-chunk`` and to ``handled``.
* llama.cpp in-process: Chatty's default backend. Direct: ``llama_cpp.Llama`` in
  this process with the same file, threads and settings. Through Chatty: the
  server with ``backend: llama_cpp``.

Every request uses a new conversation id, so the prompt (system prompt and
question) is the same on both paths, and both paths start from the same prompt
cache (only the system prompt cached). The overhead is the per-question
difference through-Chatty minus direct.

    bench/run_llm.sh [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from stt_bench import free_port, percentile, wait_ready  # noqa: E402

from wyoming_chatty_llm.backends.llama_cpp import bundled_model  # noqa: E402
from wyoming_chatty_llm.client import ask  # noqa: E402
from wyoming_chatty_llm.config import DEFAULT_SYSTEM_PROMPT  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is the boiling point of water?",
    "Who wrote Romeo and Juliet?",
    "What colour is the sky on a clear day?",
    "How many days are in a week?",
    "What is the largest planet in our solar system?",
    "What do bees make?",
    "What is two plus two?",
    "Which animal is known as the king of the jungle?",
]
MAX_TOKENS = 60


def start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *argv],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )


def wait_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": question}]


async def reset_prompt_cache(client) -> None:
    """llama_cpp.server reuses the previous prompt: a different question in between leaves only the system
    prompt cached, so the direct and the Chatty request of a pair start from the same cache."""
    await client.chat.completions.create(
        model="smollm2", messages=messages("Say yes."), temperature=0, max_tokens=1, stream=False
    )


async def direct_openai(client, question: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    stream = await client.chat.completions.create(
        model="smollm2", messages=messages(question), temperature=0, max_tokens=MAX_TOKENS, stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


def direct_llama(llama, question: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    for chunk in llama.create_chat_completion(
        messages=messages(question), temperature=0, max_tokens=MAX_TOKENS, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content") and first is None:
            first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


async def through_chatty(uri: str, question: str) -> tuple[float, float]:
    answer = await ask(uri, question, f"bench-{uuid.uuid4().hex}")
    assert answer.handled, answer.text
    return answer.first_chunk or float("nan"), answer.done or float("nan")


def summary(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50) * 1000, percentile(values, 95) * 1000


async def run(args: argparse.Namespace, work: Path) -> dict:
    import openai
    from llama_cpp import Llama

    model = str(bundled_model())
    threads = str(args.threads)
    api_port, chatty_api_port, chatty_local_port = free_port(), free_port(), free_port()
    api = start(
        ["-m", "llama_cpp.server", "--model", model, "--model_alias", "smollm2", "--host", "127.0.0.1",
         "--port", str(api_port), "--n_ctx", "2048", "--n_threads", threads],
        work / "llama-cpp-server.log",
    )  # fmt: skip
    opts = {"temperature": 0, "max_tokens": MAX_TOKENS}
    configs = {
        "openai": {"backend": "openai", "opts": {"openai": {
            "base_url": f"http://127.0.0.1:{api_port}/v1", "model": "smollm2", "api_key_env": None, **opts}}},
        "llama_cpp": {"backend": "llama_cpp", "opts": {"llama_cpp": {"threads": args.threads, **opts}}},
    }  # fmt: skip
    servers = []
    for name, port in (("openai", chatty_api_port), ("llama_cpp", chatty_local_port)):
        path = work / f"{name}.json"
        path.write_text(json.dumps(configs[name]))
        servers.append(
            start(
                ["-m", "wyoming_chatty_llm", "--uri", f"tcp://127.0.0.1:{port}", "--config", str(path),
                 "--data-dir", str(work)],
                work / f"chatty-{name}.log",
            )
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{api_port}/v1/models", api)
        # The OpenAI-backed server warms up against llama_cpp.server, so it starts after it.
        await wait_ready(f"tcp://127.0.0.1:{chatty_api_port}", servers[0])
        await wait_ready(f"tcp://127.0.0.1:{chatty_local_port}", servers[1])
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{api_port}/v1", api_key="none", max_retries=0)
        llama = Llama(model_path=model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
        loop = asyncio.get_running_loop()
        paths = {
            "openai direct": lambda q: direct_openai(client, q),
            "openai via chatty": lambda q: through_chatty(f"tcp://127.0.0.1:{chatty_api_port}", q),
            "llama.cpp direct": lambda q: loop.run_in_executor(None, direct_llama, llama, q),
            "llama.cpp via chatty": lambda q: through_chatty(f"tcp://127.0.0.1:{chatty_local_port}", q),
        }
        for measure in paths.values():  # warm every path (prompt caches, connections)
            await measure("Hello.")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for round_no in range(args.rounds):
            print(f"round {round_no + 1} of {args.rounds} ...", file=sys.stderr)
            for question in QUESTIONS:
                for name, measure in paths.items():
                    if name.startswith("openai"):
                        await reset_prompt_cache(client)
                    times[name].append(await measure(question))
        await client.close()
        return times
    finally:
        for process in (api, *servers):
            process.terminate()
        for process in (api, *servers):
            process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 10 questions (default: 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        times = asyncio.run(run(args, Path(work)))

    n = len(QUESTIONS) * args.rounds
    print()
    print(f"LLM: SmolLM2-135M-Instruct Q4_1, {args.threads} threads, temperature 0, {n} questions per path")
    header = f"{'path':<22} {'TTF median':>11} {'TTF p95':>9} {'TOTAL median':>13} {'TOTAL p95':>10}"
    print(header)
    print("-" * len(header))
    for name, values in times.items():
        ttf = summary([t for t, _ in values])
        total = summary([t for _, t in values])
        print(f"{name:<22} {ttf[0]:>8.1f} ms {ttf[1]:>6.1f} ms {total[0]:>10.1f} ms {total[1]:>7.1f} ms")
    print()
    header = f"{'overhead (via - direct)':<24} {'TTF median':>11} {'TTF p95':>9} {'TOTAL median':>13} {'TOTAL p95':>10}"
    print(header)
    print("-" * len(header))
    result = {"questions": n, "threads": args.threads, "paths": times, "overhead_ms": {}}
    for backend in ("openai", "llama.cpp"):
        direct, via = times[f"{backend} direct"], times[f"{backend} via chatty"]
        ttf = summary([v[0] - d[0] for d, v in zip(direct, via, strict=True)])
        total = summary([v[1] - d[1] for d, v in zip(direct, via, strict=True)])
        result["overhead_ms"][backend] = {"ttf_median": ttf[0], "ttf_p95": ttf[1], "total_median": total[0],
                                          "total_p95": total[1]}  # fmt: skip
        print(f"{backend:<24} {ttf[0]:>8.1f} ms {ttf[1]:>6.1f} ms {total[0]:>10.1f} ms {total[1]:>7.1f} ms")
    (out / "llm.json").write_text(json.dumps(result, indent=2))
    print(f"\nTarget: median overhead at most 5 ms. Raw figures: {out / 'llm.json'}")


if __name__ == "__main__":
    main()

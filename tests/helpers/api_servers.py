"""Local stand-ins for LLM services that cannot run on the test machines, backed by the real bundled model.

``python tests/helpers/api_servers.py ollama --port N`` speaks Ollama's HTTP API as Ollama
0.12 does (``/api/chat`` streaming NDJSON, ``/api/tags``, ``/api/version``): no
Ollama server installs from PyPI. ``python tests/helpers/api_servers.py openai --port N``
speaks OpenAI's chat completions (SSE) and moderation endpoints; the moderation
"model" flags questions that contain words of a small list, standing in for
OpenAI's cloud classifier. Both generate with SmolLM2 through llama-cpp-python,
so the answers are real model output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from llama_cpp import Llama
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from wyoming_chatty_llm.backends.llama_cpp import bundled_model

FLAGGED_WORDS = {"bomb": "violence", "weapon": "violence", "poison": "illicit"}
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)  # fmt: skip


class Model:
    """The GGUF model, one generation at a time (as one Ollama runner)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.llama = Llama(model_path=str(bundled_model()), n_ctx=2048, n_threads=2, verbose=False)
        self.lock = threading.Lock()

    def stream(
        self,
        messages: list[dict],
        temperature: float,
        max_tokens: int,
        stop: list[str] | None = None,
        gone: threading.Event | None = None,
    ) -> Iterator[str]:
        """The answer's pieces; stops generating (and frees the model) once ``gone`` is set."""
        with self.lock:
            for chunk in self.llama.create_chat_completion(
                messages=messages, temperature=temperature, max_tokens=max_tokens, stop=stop, stream=True
            ):
                if gone is not None and gone.is_set():
                    return
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    yield text


async def _until_client_leaves(make: Callable[[threading.Event], Iterator[bytes]]) -> AsyncIterator[bytes]:
    """Run a generating iterator in a worker thread; when the client hangs up, stop generating, as Ollama does."""
    gone = threading.Event()
    parts = make(gone)
    try:
        while (part := await run_in_threadpool(next, parts, None)) is not None:
            yield part
    finally:
        gone.set()
        # Close it here: left to the garbage collector, a generator paused inside the model's lock keeps it.
        with contextlib.suppress(ValueError):  # still running in its thread: it sees ``gone`` at the next piece
            parts.close()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def ollama_app(model: Model) -> Starlette:
    async def root(request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "0.12.0"})

    async def tags(request: Request) -> Response:
        return JSONResponse(
            {
                "models": [
                    {
                        "name": model.name,
                        "model": model.name,
                        "modified_at": _now(),
                        "size": Path(bundled_model()).stat().st_size,
                        "digest": "0" * 64,
                        "details": {"format": "gguf", "family": "llama", "parameter_size": "135M",
                                    "quantization_level": "Q4_1"},
                    }
                ]
            }
        )  # fmt: skip

    async def chat(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid request body"}, status_code=400)
        if body.get("model") != model.name:
            return JSONResponse(
                {"error": f'model "{body.get("model")}" not found, try pulling it first'}, status_code=404
            )
        messages = body.get("messages") or []
        if not messages:  # Ollama loads the model and answers at once
            return JSONResponse(
                {"model": model.name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                 "done_reason": "load", "done": True}
            )  # fmt: skip
        options = body.get("options") or {}
        temperature = float(options.get("temperature", 0.8))
        max_tokens = int(options.get("num_predict", 128))
        stop = options.get("stop")
        started = time.perf_counter_ns()

        def final(count: int) -> dict:
            elapsed = time.perf_counter_ns() - started
            return {
                "model": model.name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                "done_reason": "stop", "done": True, "total_duration": elapsed, "load_duration": 0,
                "prompt_eval_count": len(messages), "prompt_eval_duration": 0, "eval_count": count,
                "eval_duration": elapsed,
            }  # fmt: skip

        def lines(gone: threading.Event) -> Iterator[bytes]:
            count = 0
            for text in model.stream(messages, temperature, max_tokens, stop, gone):
                count += 1
                part = {"model": model.name, "created_at": _now(),
                        "message": {"role": "assistant", "content": text}, "done": False}  # fmt: skip
                yield (json.dumps(part) + "\n").encode()
            yield (json.dumps(final(count)) + "\n").encode()

        if body.get("stream", True) is False:
            text = "".join(model.stream(messages, temperature, max_tokens, stop))
            result = final(1)
            result["message"]["content"] = text
            return JSONResponse(result)
        return StreamingResponse(_until_client_leaves(lines), media_type="application/x-ndjson")

    return Starlette(
        routes=[
            Route("/", root, methods=["GET", "HEAD"]),
            Route("/api/version", version),
            Route("/api/tags", tags),
            Route("/api/chat", chat, methods=["POST"]),
        ]
    )


def openai_app(model: Model) -> Starlette:
    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0, "owned_by": "local"}]}
        )

    async def moderations(request: Request) -> Response:
        body = await request.json()
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        results = []
        for text in texts:
            hits = {category for word, category in FLAGGED_WORDS.items() if word in text.lower()}
            results.append(
                {
                    "flagged": bool(hits),
                    "categories": {c: c in hits for c in MODERATION_CATEGORIES},
                    "category_scores": {c: 0.9 if c in hits else 0.001 for c in MODERATION_CATEGORIES},
                    "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
                }
            )
        model_name = body.get("model", "omni-moderation-latest")
        return JSONResponse({"id": f"modr-{uuid.uuid4().hex}", "model": model_name, "results": results})

    async def completions(request: Request) -> Response:
        body = await request.json()
        temperature = float(body.get("temperature", 1.0))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 128)
        ident = f"chatcmpl-{uuid.uuid4().hex}"

        def chunk(delta: dict, finish: str | None) -> bytes:
            data = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model.name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            return f"data: {json.dumps(data)}\n\n".encode()

        def events(gone: threading.Event) -> Iterator[bytes]:
            yield chunk({"role": "assistant", "content": ""}, None)
            for text in model.stream(body["messages"], temperature, max_tokens, gone=gone):
                yield chunk({"content": text}, None)
            yield chunk({}, "stop")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(_until_client_leaves(events), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/moderations", moderations, methods=["POST"]),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("api", choices=("ollama", "openai"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-name", default="smollm2:135m")
    args = parser.parse_args()
    model = Model(args.model_name)
    app = ollama_app(model) if args.api == "ollama" else openai_app(model)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

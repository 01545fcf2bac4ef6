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
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from chatty_common.metrics import MetricsFile

from .backends.base import BackendError, ChatBackend, Failure
from .config import Config
from .echoes import Echo, EchoWatch
from .loops import LoopWatch, without_loop
from .memory import ConversationMemory, Message

_LOGGER = logging.getLogger(__name__)

_WORD = re.compile(r"[\w']+")

FORGET_WITHIN = 120.0  # s: how far back a question's answer is forgotten when its listener asks
ASK_WITHIN = 0.2  # s a watch on a question waits for it to be asked (it is asked about when it is watched)
BEGUN_RECENTLY = 2.0  # s an answer's first text counts for a watch on its question that comes after it


def as_said(question: str) -> str:
    """A question as a listener would say it again: its words, without case or punctuation."""
    return " ".join(_WORD.findall(question.casefold()))


class _Writing:
    """An answer being written, which a listener may ask to stop."""

    def __init__(self, question: str) -> None:
        self.question = as_said(question)
        self.stop = asyncio.Event()

    async def next_piece(self, stream: AsyncIterator[str]) -> str | None:
        """The stream's next piece; None at its end, or as soon as the answer is stopped (the piece being
        written is not waited for: a model that shares the CPU with speech may take a second for it)."""
        if self.stop.is_set():
            return None
        piece = asyncio.ensure_future(anext(stream, None))
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait((piece, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not piece.done():
                piece.cancel()  # ends the stream: the backend stops writing
                await asyncio.wait((piece,))
        return piece.result() if not piece.cancelled() else None


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended. ``text`` is the answer, or the failure's sentence."""

    text: str
    failure: Failure | None
    ttf_s: float | None
    total_s: float
    pieces: int
    question: str = ""  # as asked (stripped): what memory keeps with the answer
    stopped: bool = False  # its listener stopped it (``chatty-stop``): what it has is all it will say
    asked_at: float = 0.0  # time.monotonic() when it was asked (see :meth:`Agent.remember`)

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
        self._preparing: set[asyncio.Task[None]] = set()
        self._writing: list[_Writing] = []
        self._forgotten: deque[tuple[str, float]] = deque(maxlen=16)  # question as said, when
        self._begun: deque[tuple[str, float]] = deque(maxlen=16)  # question as said, when its answer's first text came
        self._news = asyncio.Event()  # set, and replaced, when an answer is asked, writes its first text, or ends

    def stop_writing(self, question: str) -> int:
        """Stop the answers being written to ``question`` (case and punctuation aside).

        Each ends at once as an answer of what it has written so far. Home Assistant's pipeline runs until its
        agent's answer is written, and a satellite cannot start the next run before (a barge-in waited
        for a whole story to be written): the satellite asks for this when it is interrupted.
        Returns how many answers were stopped.
        """
        said = as_said(question)
        stopping = [writing for writing in self._writing if writing.question == said and not writing.stop.is_set()]
        for writing in stopping:
            writing.stop.set()
        return len(stopping)

    async def first_text(self, question: str, within: float) -> tuple[bool, bool]:
        """Wait until an answer to ``question`` (any connection's; case and punctuation aside) has written its
        first text, for at most ``within`` s; returns whether it has, and whether the question was asked at all
        (it is given :data:`ASK_WITHIN` s to be).

        A satellite in Home Assistant mode asks for this at a pause: Home Assistant puts the pause's words to
        this server as a speculative question at that moment, and the satellite's end-of-turn models, run at
        once, would take the two cores from the answer's first words (at the LLM's lower priority they came
        about 0.2 s later); their verdict is needed only when the answer's first audio is ready.
        """
        said = as_said(question)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        asked_by = loop.time() + min(ASK_WITHIN, within)
        asked = False
        while True:
            now = time.monotonic()
            if any(begun == said and now - at <= BEGUN_RECENTLY for begun, at in self._begun):
                return True, True
            writing = any(answer.question == said for answer in self._writing)
            if asked and not writing:
                return False, True  # it ended without any text
            asked = asked or writing
            until = deadline if asked else asked_by
            if loop.time() >= until:
                return False, asked
            news = self._news
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(until):
                    await news.wait()

    def _tell(self) -> None:
        """Wake the watches on questions (:meth:`first_text`): an answer was asked, began or ended."""
        self._news.set()
        self._news = asyncio.Event()

    def forget(self, question: str) -> bool:
        """Forget the answer to ``question`` (case and punctuation aside): the last one remembered in the last
        FORGET_WITHIN s is dropped, and those still being written, or waiting to be committed, are never
        remembered.

        A satellite whose speaker went on after it had ended the command early asks for this: the question
        was half of the speaker's, and its answer, if any came, was never heard. It does not know Home
        Assistant's conversation id: the last answer is the one it asked for (it asks within seconds).
        Returns whether a remembered turn was dropped.
        """
        said = as_said(question)
        self._forgotten.append((said, time.monotonic()))
        return self.memory.forget_last(lambda asked: as_said(asked) == said, FORGET_WITHIN)

    def prompt(
        self, conversation_id: str, question: str, extra_prompt: str = "", history: Sequence[Message] | None = None
    ) -> list[Message]:
        """System prompt (and the client's addition to it), the conversation so far (``history``, if given,
        instead), and the question.

        The addition is a message of its own after the configured prompt, so the prompt's start
        stays the same for every turn (llama.cpp keeps it evaluated).
        """
        extra = [Message("system", extra_prompt)] if extra_prompt.strip() else []
        return [
            Message("system", self.config.system_prompt),
            *extra,
            *(self.memory.history(conversation_id) if history is None else history),
            Message("user", question),
        ]

    def remember(
        self, conversation_id: str, question: str, answer: str, extra_prompt: str = "", asked_at: float | None = None
    ) -> None:
        """Keep a turn in the conversation's memory; the backend reads the next prompt's start right away.

        Not if its question, asked at ``asked_at``, was forgotten since (:meth:`forget`).

        When the memory drops its older half, the next prompt's start has changed, and reading it again
        when the next question comes made that question's first words about a second later on two
        cores (one turn in four with the default memory). Read now, while the answer is being spoken.
        """
        if asked_at is not None and self._was_forgotten(question, asked_at):
            _LOGGER.debug("The answer for conversation %s was forgotten before it was remembered", conversation_id)
            return
        self.memory.remember(conversation_id, question, without_loop(answer))
        if self.config.memory.turns == 0:
            return  # the prompt's start is the system prompt, read once
        start = self.prompt(conversation_id, "", extra_prompt)[:-1]
        task = asyncio.get_running_loop().create_task(self._prepare(start), name="prepare the next prompt")
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)

    def _was_forgotten(self, question: str, asked_at: float) -> bool:
        said = as_said(question)
        return any(forgotten == said and at >= asked_at for forgotten, at in self._forgotten)

    async def prepared(self) -> None:
        """Wait until the backend has read what :meth:`remember` gave it."""
        while self._preparing:
            await asyncio.gather(*self._preparing)

    async def close(self) -> None:
        """Stop reading ahead, and release the backend."""
        for task in self._preparing:
            task.cancel()
        await asyncio.gather(*self._preparing, return_exceptions=True)
        await self.backend.close()

    async def _prepare(self, start: list[Message]) -> None:
        try:
            await self.backend.prepare(start)
        except Exception as err:  # only a head start: the next question reads it anyway
            _LOGGER.debug("Could not read the next prompt's start ahead: %s", err)

    async def answer(
        self,
        question: str,
        conversation_id: str,
        on_piece: Callable[[str], None],
        extra_prompt: str = "",
        *,
        remember: bool = True,
    ) -> TurnResult:
        """Answer ``question``; ``on_piece`` gets each piece of text as soon as it may be said.

        ``extra_prompt`` (e.g. Home Assistant's instructions for this turn) is added to the system prompt.
        Without ``remember`` the turn is not added to the conversation's memory (a speculative answer,
        which the caller adds with :meth:`remember` if it is used).
        """
        started = time.perf_counter()
        asked_at = time.monotonic()
        pieces: list[str] = []
        ttf: float | None = None
        outcome = "cancelled"
        looping = LoopWatch()
        writing = _Writing(question)
        self._writing.append(writing)
        self._tell()
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
            async with contextlib.aclosing(self._pieces(question, conversation_id, extra_prompt)) as stream:
                while (piece := await writing.next_piece(stream)) is not None:
                    if ttf is None:
                        ttf = time.perf_counter() - started
                        self._begun.append((writing.question, time.monotonic()))
                        self._tell()
                    if looping.feed(piece):  # leaving the stream stops the backend writing
                        _LOGGER.warning(
                            "The answer for conversation %s went round in a loop: stopped it after %d characters",
                            conversation_id,
                            len("".join(pieces)),
                        )
                        break
                    pieces.append(piece)
                    on_piece(piece)
            if writing.stop.is_set():
                _LOGGER.info(
                    "The answer for conversation %s was stopped by its listener after %d characters",
                    conversation_id,
                    len("".join(pieces)),
                )
            text = "".join(pieces).strip()
            if not text:
                stopped = writing.stop.is_set()
                raise BackendError(
                    Failure.EMPTY, "stopped before it wrote anything" if stopped else "the model's answer was empty"
                )
            if remember:
                self.remember(conversation_id, question, text, extra_prompt, asked_at)
            outcome = "handled"
            took = time.perf_counter() - started
            return TurnResult(text, None, ttf, took, len(pieces), question, writing.stop.is_set(), asked_at)
        except BackendError as err:
            failure: Failure = err.failure
            outcome = f"not-handled:{failure.name.lower()}"
            _LOGGER.warning("No answer for conversation %s (%s): %s", conversation_id, failure.name.lower(), err.detail)
            took = time.perf_counter() - started
            return TurnResult(failure.value, failure, ttf, took, len(pieces), stopped=writing.stop.is_set())
        except Exception:
            failure = Failure.ERROR
            outcome = "not-handled:error"
            _LOGGER.exception("The %s backend failed unexpectedly", self.backend.name)
            return TurnResult(failure.value, failure, ttf, time.perf_counter() - started, len(pieces))
        finally:
            self._writing.remove(writing)
            self._tell()
            self._record(conversation_id, outcome, ttf, time.perf_counter() - started, pieces, speculative=not remember)

    async def _next_piece(self, stream: AsyncIterator[str], deadline: float) -> str | None:
        """The next piece of the answer (None at its end), within the timeouts."""
        options = self.config.options
        until = min(asyncio.get_running_loop().time() + options.timeout, deadline)
        try:
            async with asyncio.timeout_at(until):
                return await anext(stream, None)
        except TimeoutError:
            if until >= deadline:
                raise BackendError(
                    Failure.TIMEOUT, f"the answer took longer than {options.total_timeout:g} s"
                ) from None
            raise BackendError(Failure.TIMEOUT, f"no answer for {options.timeout:g} s") from None

    async def _pieces(self, question: str, conversation_id: str, extra_prompt: str) -> AsyncGenerator[str, None]:
        """The answer under the timeouts; held back until the question check (if any) passes."""
        deadline = asyncio.get_running_loop().time() + self.config.options.total_timeout
        stream = self._unechoed(question, conversation_id, extra_prompt, deadline)
        try:
            if not self.backend.checks_questions:
                async for piece in stream:
                    yield piece
                return
            # The model writes while the check runs; what it writes waits in a queue.
            queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

            async def produce() -> None:
                try:
                    async for piece in stream:
                        queue.put_nowait(piece)
                    queue.put_nowait(None)
                except Exception as err:
                    queue.put_nowait(err)

            check = asyncio.create_task(self.backend.check_question(question))
            producer = asyncio.create_task(produce())
            try:
                until = min(asyncio.get_running_loop().time() + self.config.options.timeout, deadline)
                try:
                    async with asyncio.timeout_at(until):
                        await check  # raises BackendError when the question is refused
                except TimeoutError:
                    raise BackendError(Failure.TIMEOUT, "the question check did not finish in time") from None
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                for task in (check, producer):
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        finally:
            await stream.aclose()

    async def _unechoed(
        self, question: str, conversation_id: str, extra_prompt: str, deadline: float
    ) -> AsyncGenerator[str, None]:
        """The backend's answer under the timeouts. One that starts by repeating an earlier answer of the
        conversation word for word (:mod:`.echoes`) is not said: the backend writes it again without the
        conversation."""
        history = self.memory.history(conversation_id)
        watch = EchoWatch(question, history)
        held: list[str] = []
        prompt = self.prompt(conversation_id, question, extra_prompt, history)
        async with contextlib.aclosing(self._written(prompt, deadline)) as written:
            async for piece in written:
                seen = watch.feed(piece)
                if seen is Echo.ECHO:
                    break
                held.append(piece)
                if seen is Echo.PASS:
                    for passed in held:
                        yield passed
                    held.clear()
            else:
                if watch.end() is Echo.PASS:
                    for passed in held:
                        yield passed
                    return
        _LOGGER.info(
            "The answer for conversation %s began as an earlier answer of it, word for word (%r): writing it "
            "again without the conversation",
            conversation_id,
            "".join(held).strip(),
        )
        prompt = self.prompt(conversation_id, question, extra_prompt, history=[])
        async with contextlib.aclosing(self._written(prompt, deadline)) as written:
            async for piece in written:
                yield piece

    async def _written(self, prompt: list[Message], deadline: float) -> AsyncGenerator[str, None]:
        """The backend's stream for ``prompt`` under the timeouts; closed when left."""
        stream = self.backend.stream(prompt)
        try:
            while (piece := await self._next_piece(stream, deadline)) is not None:
                yield piece
        finally:
            await stream.aclose()

    def _record(
        self, conversation_id: str, outcome: str, ttf: float | None, total: float, pieces: list[str], speculative: bool
    ) -> None:
        ttf_ms = None if ttf is None else round(ttf * 1000, 1)
        total_ms = round(total * 1000, 1)
        _LOGGER.info(
            "LLM-TTF_MS=%s LLM-TOTAL_MS=%.0f conversation=%s backend=%s model=%s outcome=%s%s",
            "-" if ttf_ms is None else f"{ttf_ms:.0f}",
            total_ms,
            conversation_id,
            self.backend.name,
            self.config.model_name,
            outcome,
            " (speculative)" if speculative else "",
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
                    "speculative": speculative,
                }
            )

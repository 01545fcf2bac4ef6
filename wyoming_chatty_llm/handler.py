"""Per-connection Wyoming event handler of the LLM server.

``transcript`` in; out: ``handled-start``, a ``handled-chunk`` per piece of text
as the model writes it, the final ``handled`` with the whole answer (the only
event Home Assistant reads), then ``handled-stop``. A turn that fails sends
``not-handled`` with a sentence the user can hear. Questions on one
connection are answered in order; a client that disconnects cancels its
generation. ``chatty-stop`` (any connection) ends the answers being written to a
question with what they have so far: a satellite whose answer was interrupted
sends it, so that Home Assistant's run of that answer ends. The ``handled`` (or
``not-handled``) of a stopped answer says so (``"chatty": {"stopped": true}``):
Chatty's Home Assistant integration then stops speaking it too. With
``"forget": true`` the answer to that question is also forgotten (a satellite
that ended a command early, whose speaker went on: the question was half of theirs).
``chatty-first-text`` (``{"question": ..., "within": seconds}``) is answered with ``chatty-begun``
(``{"begun": bool, "asked": bool}``) once an answer to that question (any connection's) has written its
first text, or when ``within`` has passed, or when the question is not asked at about that moment: a
satellite in Home Assistant mode judges a pause only then, so that its models do not hold back the first
words of the answer Home Assistant asked for at that pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Intent

from chatty_common.heap import release_free_memory_soon
from chatty_common.protocol import LimitedEventHandler, RequestError, chatty_flag

from .agent import Agent

_LOGGER = logging.getLogger(__name__)

MAX_WAITING_TURNS = 4  # questions queued on one connection behind the one being answered
COMMIT = "chatty-commit"  # keep the connection's speculative answer in the conversation's memory
STOP = "chatty-stop"  # {"question": ..., "forget": bool}: stop writing the answers to this question (any
# connection's), and forget them
STOPPED = "chatty-stopped"  # the reply to STOP: {"stopped": answers stopped, "forgotten": remembered ones dropped}
FIRST_TEXT = "chatty-first-text"  # {"question": ..., "within": s}: reply BEGUN when an answer to it has its first text
BEGUN = "chatty-begun"  # the reply to FIRST_TEXT: {"begun": bool, "asked": bool (the question was asked at all)}
MAX_WITHIN = 5.0  # s a FIRST_TEXT may wait


class _Speculation:
    """The connection's latest speculative turn: committed or not, and its answer once it is there."""

    def __init__(self) -> None:
        self.committed = False
        self.answer: tuple[str, str, str, str, float] | None = None  # conversation id, question, answer,
        # extra prompt, when it was asked


class LlmEventHandler(LimitedEventHandler):
    """Answers ``transcript`` events with the shared :class:`Agent`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, info: Info, agent: Agent) -> None:
        super().__init__(reader, writer)
        self._info = info
        self._agent = agent
        self._connection_id = f"connection-{uuid.uuid4().hex[:12]}"
        self._turn_lock = asyncio.Lock()
        self._turns: set[asyncio.Task[None]] = set()
        self._speculation: _Speculation | None = None
        self._watches: set[asyncio.Task[None]] = set()

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            self.send(self._info.event())
        elif Transcript.is_type(event.type):
            text = event.data.get("text")
            if not isinstance(text, str):
                raise RequestError("transcript needs a 'text' string")
            context = event.data.get("context")
            if context is not None and not isinstance(context, dict):
                raise RequestError("transcript 'context' must be a JSON object")
            extra_prompt = (context or {}).get("extra_system_prompt") or ""
            if not isinstance(extra_prompt, str) or len(extra_prompt) > self._agent.config.max_question_chars:
                raise RequestError(
                    "transcript context 'extra_system_prompt' must be a string of at most "
                    f"{self._agent.config.max_question_chars} characters (max_question_chars)"
                )
            if len(self._turns) > MAX_WAITING_TURNS:
                raise RequestError(f"more than {MAX_WAITING_TURNS} questions are waiting on this connection", "busy")
            speculation = _Speculation() if chatty_flag(event, "speculative") else None
            self._speculation = speculation  # a new question ends the last one's chance to be committed
            task = asyncio.create_task(
                self._turn(text, dict(context or {}), extra_prompt, speculation), name="llm turn"
            )
            self._turns.add(task)
            task.add_done_callback(self._turns.discard)
        elif event.type == COMMIT:
            self._commit()
        elif event.type == STOP:
            question = event.data.get("question")
            if not isinstance(question, str) or not question.strip():
                raise RequestError(f"{STOP} needs a 'question' string")
            forget = event.data.get("forget", False)
            if not isinstance(forget, bool):
                raise RequestError(f"{STOP} 'forget' must be true or false")
            stopped = self._agent.stop_writing(question)
            forgotten = int(self._agent.forget(question)) if forget else 0
            _LOGGER.debug("Asked to stop the answers to %r: %d stopped, %d forgotten", question, stopped, forgotten)
            self.send(Event(STOPPED, {"stopped": stopped, "forgotten": forgotten}))
        elif event.type == FIRST_TEXT:
            question, within = event.data.get("question"), event.data.get("within")
            if not isinstance(question, str) or not question.strip():
                raise RequestError(f"{FIRST_TEXT} needs a 'question' string")
            if isinstance(within, bool) or not isinstance(within, (int, float)) or not 0 < within <= MAX_WITHIN:
                raise RequestError(f"{FIRST_TEXT} needs 'within': seconds, more than 0 and at most {MAX_WITHIN:g}")
            if len(self._watches) >= MAX_WAITING_TURNS:
                raise RequestError(f"more than {MAX_WAITING_TURNS} watches are waiting on this connection", "busy")
            task = asyncio.create_task(self._first_text(question, float(within)), name="watch for an answer")
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)
        elif Intent.is_type(event.type):
            raise RequestError("this conversation agent answers transcript events, not intent", "unsupported")
        return True

    async def _first_text(self, question: str, within: float) -> None:
        begun, asked = await self._agent.first_text(question, within)
        _LOGGER.debug("Watched for the first text of an answer to %r: begun %s, asked %s", question, begun, asked)
        self.send(Event(BEGUN, {"begun": begun, "asked": asked}))

    def _commit(self) -> None:
        speculation = self._speculation
        if speculation is None:
            _LOGGER.debug("%s without a speculative question on this connection: ignored", COMMIT)
            return
        speculation.committed = True
        if speculation.answer is not None:
            self._agent.remember(*speculation.answer)
            speculation.answer = None
            _LOGGER.debug("Speculative answer committed")

    def _conversation_id(self, context: dict[str, Any]) -> str:
        conversation_id = context.get("conversation_id")
        if isinstance(conversation_id, str) and conversation_id.strip():
            return conversation_id
        return self._connection_id

    async def _turn(
        self, text: str, context: dict[str, Any], extra_prompt: str, speculation: _Speculation | None
    ) -> None:
        async with self._turn_lock:
            conversation_id = self._conversation_id(context)
            # Returned in every reply, so a client without an id can continue this conversation.
            context["conversation_id"] = conversation_id
            started = False

            def on_piece(piece: str) -> None:
                nonlocal started
                if not started:
                    self.send(HandledStart(context=context).event())
                    started = True
                self.send(HandledChunk(text=piece).event())

            result = await self._agent.answer(
                text, conversation_id, on_piece, extra_prompt, remember=speculation is None
            )
            if speculation is not None and result.handled:
                answer = (conversation_id, result.question, result.text, extra_prompt, result.asked_at)
                if speculation.committed:
                    self._agent.remember(*answer)
                else:
                    speculation.answer = answer
            end = (Handled if result.handled else NotHandled)(text=result.text, context=context).event()
            if result.stopped:  # its listener went away: whoever speaks it may stop too
                end.data["chatty"] = {"stopped": True}
            self.send(end)
            if started:
                self.send(HandledStop().event())
            release_free_memory_soon()

    async def disconnect(self) -> None:
        tasks = [*self._turns, *self._watches]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

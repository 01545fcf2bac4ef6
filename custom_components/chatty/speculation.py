"""Work begun before Home Assistant's pipeline asks for it: the answer at a pause, the first words' audio.

Home Assistant runs a pipeline's stages one after the other: the agent is asked only when
speech-to-text has ended, which is when the satellite has heard enough silence (0.6 s for Chatty's
satellite), and speech starts only once the agent has written more than 60 characters. Two things
begin earlier here:

- Chatty's STT server decodes at the first 0.2 s of silence and offers what the transcript will be if
  the speaker is done (a candidate). The Chatty STT entity hands it here with the conversation id of
  the pipeline's chat session, and the question is put at once to the Chatty agent that answered last,
  as a speculative question (Chatty's LLM server keeps it out of the conversation's memory until it
  is committed). When the pipeline asks that agent the same question in the same conversation, the
  answer so far is replayed at once and the rest follows as it is written; otherwise it is dropped:
  the speaker went on, or Home Assistant handled the command itself.
- As soon as an answer's first words are there, the Chatty TTS entity that spoke this agent's
  answers before prepares them (Chatty's TTS server makes the first piece and keeps it), so that
  when the pipeline asks for speech the audio is ready.

And one thing ends earlier: an answer whose listener interrupted it (Chatty's satellite asks the LLM
server to stop it, which says so in the answer's last event) is no longer spoken: the TTS entity
speaking it closes its stream, so the TTS server stops synthesizing text that nobody will hear while
the listener asks the next question.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant

from .client import AgentTurn, Reply, ReplyKind, ServiceError
from .const import DOMAIN

if TYPE_CHECKING:
    from .conversation import ChattyConversationEntity
    from .tts import ChattyTtsEntity

_LOGGER = logging.getLogger(__name__)

UNUSED_TIMEOUT = 15.0  # seconds a speculative answer waits to be asked for
AFTER_TRANSCRIPT = 2.0  # seconds after the transcript by which the pipeline asks the agent, if it does
RECENT_ANSWERS = 8  # answers remembered to learn which TTS entity speaks an agent's answers


def same_text(first: str, second: str) -> bool:
    """Are two transcripts the same question (case and spacing aside)?"""
    return " ".join(first.split()).casefold() == " ".join(second.split()).casefold()


class TextFeed:
    """Text handed on as it arrives (an answer's chunks), read by one consumer as an async iterator."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(self, text: str) -> None:
        self._queue.put_nowait(text)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[str]:
        while (text := await self._queue.get()) is not None:
            yield text


@dataclass
class Speculation:
    """A question put to the agent before the pipeline asked it, and its reply so far."""

    conversation_id: str
    text: str
    agent: ChattyConversationEntity
    extra_prompt: str
    turn: AgentTurn
    replies: list[Reply] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    created: float = field(default_factory=time.monotonic)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self, hass: HomeAssistant, feed: TextFeed | None) -> None:
        self._task = hass.async_create_background_task(self._read(feed), f"{DOMAIN} speculative answer")

    async def _read(self, feed: TextFeed | None) -> None:
        try:
            await self.turn.ask()
            async for reply in self.turn.replies():
                self.replies.append(reply)
                if feed is not None and reply.kind is ReplyKind.CHUNK:
                    feed.put(reply.text)
                self._changed.set()
        except (OSError, TimeoutError, ServiceError) as err:
            self.error = err
        finally:
            self.done = True
            if feed is not None:
                feed.close()
            self._changed.set()

    async def stream(self) -> AsyncGenerator[Reply]:
        """The reply: what has arrived at once, then the rest as it comes; raises what broke it."""
        index = 0
        while True:
            while index < len(self.replies):
                index += 1
                yield self.replies[index - 1]
            if self.error is not None:
                raise self.error
            if self.done:
                return
            self._changed.clear()
            await self._changed.wait()

    async def cancel(self) -> None:
        """Drop it: the connection closes, so the server stops writing and forgets the answer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.turn.close()


@dataclass
class WrittenAnswer:
    """An answer being written by an agent: its text tells which TTS entity speaks it; its listener may stop it."""

    agent: ChattyConversationEntity
    text: str = ""
    at: float = field(default_factory=time.monotonic)
    stopped: bool = False
    _speech: list[asyncio.Event] = field(default_factory=list)  # set when it is stopped: each stream speaking it

    def add(self, text: str) -> None:
        self.text += text

    def stop(self) -> None:
        """Its listener stopped it: whoever speaks it stops too."""
        self.stopped = True
        for speech in self._speech:
            speech.set()

    def spoken(self, stop: asyncio.Event) -> None:
        """A stream speaks this answer: ``stop`` is set when the answer is stopped (at once if it was)."""
        self._speech.append(stop)
        if self.stopped:
            stop.set()


class Speculator:
    """The integration's shared state for early work (one per Home Assistant, in ``hass.data``)."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.last_agent: ChattyConversationEntity | None = None
        self._agents: list[ChattyConversationEntity] = []  # every Chatty agent in Home Assistant
        self._speculations: dict[str, Speculation] = {}
        self._speakers: dict[str, tuple[ChattyTtsEntity, str | None]] = {}  # agent entity id -> TTS, voice
        self._answers: deque[WrittenAnswer] = deque(maxlen=RECENT_ANSWERS)

    # Speculative answers --------------------------------------------------------------------------------------

    def candidate(self, conversation_id: str, text: str, language: str | None) -> None:
        """The STT server's candidate transcript for this conversation: put it to the last agent now
        (before any has answered: the only agent, if there is one)."""
        agent = self.last_agent or (self._agents[0] if len(self._agents) == 1 else None)
        if agent is None or not text.strip():
            return
        current = self._speculations.get(conversation_id)
        if current is not None and same_text(current.text, text) and current.agent is agent:
            return
        self._drop(conversation_id)
        speculation = agent.speculate(conversation_id, text, language)
        if speculation is None:
            return
        _LOGGER.debug("Asking %s speculatively: %r", agent.entity_id, text)
        self._speculations[conversation_id] = speculation
        speculation.start(self.hass, self.prepare_speech(agent))
        self.hass.loop.call_later(UNUSED_TIMEOUT, self._expire, conversation_id, speculation)

    def transcribed(self, conversation_id: str, text: str) -> None:
        """Speech-to-text ended with ``text``: a speculation on other words is dropped now, an unused one soon."""
        current = self._speculations.get(conversation_id)
        if current is None:
            return
        if not same_text(current.text, text):
            self._drop(conversation_id)
        else:  # Home Assistant may handle the command itself and never ask the agent
            self.hass.loop.call_later(AFTER_TRANSCRIPT, self._expire, conversation_id, current)

    def take(
        self, conversation_id: str, text: str, agent: ChattyConversationEntity, extra_prompt: str
    ) -> Speculation | None:
        """The speculative answer to exactly this question from this agent, if there is one (it is then used)."""
        current = self._speculations.pop(conversation_id, None)
        if current is None:
            return None
        if current.agent is agent and same_text(current.text, text) and current.extra_prompt == extra_prompt:
            _LOGGER.debug("Using the speculative answer to %r (%d replies so far)", text, len(current.replies))
            return current
        self.hass.async_create_background_task(current.cancel(), f"{DOMAIN} drop speculation")
        return None

    def add_agent(self, agent: ChattyConversationEntity) -> None:
        """An agent has been added to Home Assistant."""
        self._agents.append(agent)

    def forget_agent(self, agent: ChattyConversationEntity) -> None:
        """An agent is going away: drop its speculations and what was learned about it."""
        if agent in self._agents:
            self._agents.remove(agent)
        for conversation_id, speculation in list(self._speculations.items()):
            if speculation.agent is agent:
                self._drop(conversation_id)
        if self.last_agent is agent:
            self.last_agent = None
        self._speakers.pop(agent.entity_id, None)

    def _expire(self, conversation_id: str, speculation: Speculation) -> None:
        if self._speculations.get(conversation_id) is speculation:
            _LOGGER.debug("Dropping the unused speculative answer to %r", speculation.text)
            self._drop(conversation_id)

    def _drop(self, conversation_id: str) -> None:
        if (speculation := self._speculations.pop(conversation_id, None)) is not None:
            self.hass.async_create_background_task(speculation.cancel(), f"{DOMAIN} drop speculation")

    # Speech prepared from an answer's first words ----------------------------------------------------------

    def answer_started(self, agent: ChattyConversationEntity) -> WrittenAnswer:
        """An answer is being written: the agent adds its text as it comes."""
        self.last_agent = agent
        answer = WrittenAnswer(agent)
        self._answers.append(answer)
        return answer

    def heard(self, speaker: ChattyTtsEntity, voice: str | None, first_text: str, stop: asyncio.Event) -> None:
        """A TTS entity was asked to speak ``first_text``: it speaks the agent whose recent answer starts so, and
        ``stop`` is set if that answer is stopped."""
        said = " ".join(first_text.split()).casefold()
        if not said:
            return
        now = time.monotonic()
        for answer in reversed(self._answers):
            written = " ".join(answer.text.split()).casefold()
            if written and now - answer.at < 120 and (written.startswith(said) or said.startswith(written)):
                self._speakers[answer.agent.entity_id] = (speaker, voice)
                answer.spoken(stop)
                return

    def prepare_speech(self, agent: ChattyConversationEntity) -> TextFeed | None:
        """A feed for an answer of this agent whose first words its TTS entity prepares (None if it has none)."""
        speaker = self._speakers.get(agent.entity_id)
        if speaker is None or speaker[0].hass is None:
            return None
        feed = TextFeed()
        entity, voice = speaker
        entity.prepare(feed, voice)
        return feed


def speculator(hass: HomeAssistant) -> Speculator:
    """The shared :class:`Speculator` of this Home Assistant."""
    data: dict[str, Any] = hass.data.setdefault(DOMAIN, {})
    if "speculator" not in data:
        data["speculator"] = Speculator(hass)
    return data["speculator"]

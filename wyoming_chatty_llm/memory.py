"""Conversation memory: the last turns of each conversation, forgotten after a quiet spell.

Keyed by Home Assistant's ``conversation_id`` (or one id per connection). Bounded
three ways: turns per conversation (when there are more, the older half is
dropped at once, so that the history stays an unchanged prefix of the prompt for
several turns and the LLM's prompt cache stays valid), conversations at once
(least recently used goes first) and characters per stored message.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .config import MemoryConfig

MAX_STORED_CHARS = 4000  # one message, as remembered; longer ones keep their start


@dataclass(frozen=True)
class Message:
    """One chat message as backends take it."""

    role: str  # "system", "user" or "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class _Turn(NamedTuple):
    question: Message
    answer: Message
    at: float  # when it was remembered


class _Conversation:
    def __init__(self, now: float) -> None:
        self.turns: list[_Turn] = []
        self.last_used = now


class ConversationMemory:
    """Past question/answer pairs per conversation id."""

    def __init__(self, config: MemoryConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._conversations)

    def _expire(self) -> None:
        oldest_allowed = self._clock() - self._config.expiry_minutes * 60
        while self._conversations:
            conversation_id, conversation = next(iter(self._conversations.items()))
            if conversation.last_used >= oldest_allowed:
                break
            del self._conversations[conversation_id]

    def history(self, conversation_id: str) -> list[Message]:
        """The remembered messages of a conversation, oldest first (empty when new or expired)."""
        self._expire()
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return []
        return [message for turn in conversation.turns for message in (turn.question, turn.answer)]

    def remember(self, conversation_id: str, question: str, answer: str) -> None:
        """Store one answered question; the conversation becomes the most recently used."""
        if self._config.turns == 0:
            return
        self._expire()
        now = self._clock()
        conversation = self._conversations.pop(conversation_id, None) or _Conversation(now)
        conversation.last_used = now
        conversation.turns.append(
            _Turn(Message("user", question[:MAX_STORED_CHARS]), Message("assistant", answer[:MAX_STORED_CHARS]), now)
        )
        if len(conversation.turns) > self._config.turns:
            # Drop the older half at once, not one turn per turn: the history then stays the same prefix
            # for several turns, and the LLM's prompt cache keeps it evaluated.
            del conversation.turns[: len(conversation.turns) - (self._config.turns + 1) // 2]
        self._conversations[conversation_id] = conversation
        while len(self._conversations) > self._config.max_conversations:
            self._conversations.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)

    def forget_last(self, is_question: Callable[[str], bool], within: float) -> bool:
        """Drop the last turn whose question ``is_question``, if it was remembered in the last ``within`` s."""
        self._expire()
        since = self._clock() - within
        found = [
            (turn.at, conversation, turn)
            for conversation in self._conversations.values()
            for turn in conversation.turns
            if turn.at >= since and is_question(turn.question.content)
        ]
        if not found:
            return False
        _at, conversation, turn = max(found, key=lambda item: item[0])
        conversation.turns.remove(turn)
        return True

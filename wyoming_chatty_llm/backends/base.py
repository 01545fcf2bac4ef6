"""The one small interface every LLM backend implements, and the failures it may report."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence

from ..memory import Message


class Failure(enum.Enum):
    """Why a turn got no answer; each kind has a sentence the user hears instead."""

    UNREACHABLE = "I can't reach the language model right now."
    LOST = "I lost the connection to the language model."
    TIMEOUT = "The language model is taking too long to answer."
    ERROR = "The language model ran into a problem. Please try again."
    REFUSED = "Sorry, I can't help with that."
    EMPTY = "I don't have an answer for that."
    TOO_LONG = "That question is too long for me."
    NOT_UNDERSTOOD = "I didn't catch a question."


class BackendError(Exception):
    """A backend could not answer; ``detail`` (the cause) goes to the log, ``failure`` to the user."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


class ChatBackend(ABC):
    """A chat model that streams its answer as text pieces.

    Implementations map their library's errors to :class:`BackendError`; the
    caller applies the timeouts and cancels the stream (``aclose``) when the
    client goes away.
    """

    name: str
    """The backend's config name: llama_cpp, ollama or openai."""

    @property
    def checks_questions(self) -> bool:
        """True when :meth:`check_question` does something (it then runs alongside each answer)."""
        return False

    @abstractmethod
    def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        """Yield the answer's text as the model writes it."""

    async def check_question(self, question: str) -> None:  # noqa: B027 - optional hook
        """Raise ``BackendError(Failure.REFUSED, ...)`` if the question must not be answered."""

    async def warm_up(self, system_prompt: str) -> None:  # noqa: B027 - optional hook
        """Make the first real answer fast (load the model, open the connection); errors are only logged."""

    async def prepare(self, messages: Sequence[Message]) -> None:  # noqa: B027 - optional hook
        """Read the start of a coming prompt now (``messages``: all but its question), so that the question
        is all there is left to read when it comes; errors are only logged."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

"""OpenAI and OpenAI-compatible servers (vLLM, LM Studio, llama.cpp's server, ...) through the official client."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import cast

import httpx2  # the HTTP library the openai client is built on (its errors can escape a stream)
import openai
from openai.types.chat import ChatCompletionMessageParam

from ..config import OpenAIOptions
from ..memory import Message
from .base import BackendError, ChatBackend, Failure

_LOGGER = logging.getLogger(__name__)

NO_KEY = "no-key"  # the client insists on a key; servers that need none ignore it


class OpenAIBackend(ChatBackend):
    """Streaming chat completions from ``base_url`` (OpenAI itself when unset)."""

    name = "openai"

    def __init__(self, options: OpenAIOptions, api_key: str | None) -> None:
        self._options = options
        self._where = options.base_url or "OpenAI"
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=options.base_url,
            timeout=openai.Timeout(options.timeout, connect=min(options.timeout, 10.0)),
            max_retries=0,  # a retry would come after the user has given up; the turn reports the failure
        )

    def _failure(self, err: Exception, got_any: bool) -> BackendError:
        if isinstance(err, openai.APITimeoutError | httpx2.TimeoutException):
            return BackendError(Failure.TIMEOUT, f"{self._where} did not answer in time")
        if isinstance(err, openai.APIStatusError):
            return BackendError(Failure.ERROR, f"{self._where} answered HTTP {err.status_code}: {err.message}")
        if isinstance(err, openai.APIConnectionError | httpx2.HTTPError):
            failure = Failure.LOST if got_any else Failure.UNREACHABLE
            return BackendError(failure, f"{self._where}: {type(err).__name__}: {err}")
        return BackendError(Failure.ERROR, f"{self._where}: {type(err).__name__}: {err}")

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        # OpenAI's newer models take max_completion_tokens only; most compatible servers know only max_tokens.
        official = self._options.base_url is None
        got_any = False
        try:
            chunks = await self._client.chat.completions.create(
                model=self._options.model,
                messages=cast("list[ChatCompletionMessageParam]", [m.as_dict() for m in messages]),
                temperature=self._options.temperature,
                stream=True,
                max_completion_tokens=self._options.max_tokens if official else openai.omit,
                max_tokens=openai.omit if official else self._options.max_tokens,
            )
            async with chunks:
                async for chunk in chunks:
                    if not chunk.choices:
                        continue
                    text = chunk.choices[0].delta.content
                    if text:
                        got_any = True
                        yield text
        except (openai.APIError, httpx2.HTTPError) as err:
            raise self._failure(err, got_any) from err

    @property
    def checks_questions(self) -> bool:
        return self._options.moderation

    async def check_question(self, question: str) -> None:
        try:
            result = await self._client.moderations.create(model=self._options.moderation_model, input=question)
        except (openai.APIError, httpx2.HTTPError) as err:
            # The user asked for moderation: without its verdict the question is not answered.
            raise self._failure(err, False) from err
        flagged = [r for r in result.results if r.flagged]
        if flagged:
            categories = sorted(name for name, hit in flagged[0].categories.model_dump().items() if hit)
            raise BackendError(Failure.REFUSED, f"moderation flagged the question ({', '.join(categories)})")

    async def warm_up(self, system_prompt: str) -> None:
        # Opens (and keeps) the HTTP connection, and checks that the model exists.
        page = await self._client.models.list()
        names = [model.id for model in page.data]
        if names and self._options.model not in names:
            _LOGGER.warning(
                "%s does not list the model %s (it lists %s)", self._where, self._options.model, ", ".join(names[:10])
            )

    async def close(self) -> None:
        await self._client.close()

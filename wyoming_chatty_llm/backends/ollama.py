"""Ollama backend, through the official ``ollama`` client (async, streaming chat)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence

import httpx
import ollama

from ..config import OllamaOptions
from ..memory import Message
from .base import BackendError, ChatBackend, Failure

_LOGGER = logging.getLogger(__name__)


class OllamaBackend(ChatBackend):
    """A model served by Ollama's ``/api/chat``."""

    name = "ollama"

    def __init__(self, options: OllamaOptions, api_key: str | None = None) -> None:
        self._options = options
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        # The read timeout bounds the wait for each streamed line; the turn applies its own limits too.
        timeout = httpx.Timeout(options.timeout, connect=min(options.timeout, 10.0))
        self._client = ollama.AsyncClient(host=options.host, timeout=timeout, headers=headers)

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str, None]:
        options = {"temperature": self._options.temperature, "num_predict": self._options.max_tokens}
        options.update(self._options.options)
        got_any = False
        try:
            parts = await self._client.chat(
                model=self._options.model,
                messages=[m.as_dict() for m in messages],
                stream=True,
                keep_alive=self._options.keep_alive,
                options=options,
            )
            async for part in parts:
                text = part.message.content if part.message else None
                if text:
                    got_any = True
                    yield text
        except ollama.ResponseError as err:
            raise BackendError(Failure.ERROR, f"Ollama answered HTTP {err.status_code}: {err.error}") from err
        except (ConnectionError, httpx.ConnectError) as err:
            raise BackendError(Failure.UNREACHABLE, f"cannot connect to Ollama at {self._options.host}") from err
        except httpx.TimeoutException as err:
            raise BackendError(Failure.TIMEOUT, f"Ollama at {self._options.host} did not answer in time") from err
        except httpx.HTTPError as err:
            failure = Failure.LOST if got_any else Failure.UNREACHABLE
            raise BackendError(failure, f"Ollama at {self._options.host}: {type(err).__name__}: {err}") from err
        except ValueError as err:  # a line that is not JSON, or not a chat response
            raise BackendError(Failure.ERROR, f"Ollama at {self._options.host} sent a bad response: {err}") from err

    async def warm_up(self, system_prompt: str) -> None:
        # A chat without messages makes Ollama load the model and keep it for keep_alive.
        await self._client.chat(model=self._options.model, messages=[], keep_alive=self._options.keep_alive)

    async def close(self) -> None:
        await self._client.close()

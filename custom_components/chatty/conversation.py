"""Chatty's conversation agent: the answer goes into the chat log as it is written, so Assist speaks early.

Home Assistant's pipeline starts text-to-speech while the agent is still writing when the agent adds
its answer to the chat log as deltas (the first one with the role). The chat session's conversation
id goes to the server with every question, so the server's memory follows Home Assistant's
conversation (a satellite keeps one for five minutes).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import ChattyConfigEntry
from .client import AgentTurn, Reply, ReplyKind, ServiceError, ServiceUnreachable
from .const import ANSWER_TIMEOUT, CONF_PROMPT, LOST_SPEECH, UNREACHABLE_SPEECH
from .entity import ChattyEntity
from .speculation import Speculation, Speculator, TextFeed, speculator

if TYPE_CHECKING:
    from homeassistant.components.conversation.chat_log import AssistantContentDeltaDict

_LOGGER = logging.getLogger(__name__)


async def async_setup_entry(
    hass: HomeAssistant, entry: ChattyConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """The agent of a service that has one."""
    if entry.runtime_data.info.agent is not None:
        async_add_entities([ChattyConversationEntity(entry)])


@dataclass
class _Turn:
    """How one turn went, filled in while its deltas stream into the chat log."""

    streamed: str = ""  # the text added to the chat log
    failure: str | None = None  # why there is no (whole) answer, to be said
    failure_streamed: bool = False  # the failure was added to the chat log after part of the answer
    error_code: intent.IntentResponseErrorCode = intent.IntentResponseErrorCode.FAILED_TO_HANDLE


class ChattyConversationEntity(conversation.ConversationEntity, conversation.AbstractConversationAgent, ChattyEntity):
    """A Wyoming handle program as a streaming Home Assistant conversation agent."""

    _attr_supports_streaming = True

    def __init__(self, entry: ChattyConfigEntry) -> None:
        """One agent per config entry; the device is the service."""
        agent = entry.runtime_data.info.agent
        assert agent is not None
        ChattyEntity.__init__(self, entry, "conversation", agent.model or agent.name, agent.version)
        self._languages: list[str] = list(agent.languages)
        self._speculator: Speculator

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """The languages of the server's model (any, when it lists none)."""
        return self._languages or MATCH_ALL

    async def async_added_to_hass(self) -> None:
        """Share the speculator (early answers) with the STT and TTS entities."""
        await super().async_added_to_hass()
        self._speculator = speculator(self.hass)
        self._speculator.add_agent(self)

    async def async_will_remove_from_hass(self) -> None:
        """Drop this agent's early answers."""
        self._speculator.forget_agent(self)
        await super().async_will_remove_from_hass()

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        """Ask the server (or take the answer begun at the pause); it streams into the chat log."""
        turn = _Turn()
        context = self._transcript_context(chat_log.conversation_id, user_input.extra_system_prompt)
        if user_input.device_id:
            context["device_id"] = user_input.device_id
        if satellite_id := getattr(user_input, "satellite_id", None):  # Home Assistant 2025.7 and later
            context["satellite_id"] = satellite_id
        async for _content in chat_log.async_add_delta_content_stream(
            self.entity_id, self._deltas(user_input, chat_log.conversation_id, context, turn)
        ):
            pass
        response = intent.IntentResponse(language=user_input.language)
        if turn.failure is not None:
            response.async_set_error(
                turn.error_code, (turn.streamed if turn.failure_streamed else turn.failure).strip()
            )
            return conversation.ConversationResult(response=response, conversation_id=chat_log.conversation_id)
        response.async_set_speech(turn.streamed.strip())
        return conversation.ConversationResult(
            response=response,
            conversation_id=chat_log.conversation_id,
            continue_conversation=chat_log.continue_conversation,
        )

    def _transcript_context(self, conversation_id: str, extra_system_prompt: str | None) -> dict[str, Any]:
        """The transcript's context: the conversation (the server's memory key) and the prompt addition."""
        context: dict[str, Any] = {"conversation_id": conversation_id}
        if extra := self._extra_prompt(extra_system_prompt):
            context["extra_system_prompt"] = extra
        return context

    def _extra_prompt(self, extra_system_prompt: str | None) -> str:
        """The options' instructions and the turn's own (e.g. from an automation), joined."""
        prompts = [self.entry.options.get(CONF_PROMPT, ""), extra_system_prompt or ""]
        return "\n\n".join(prompt.strip() for prompt in prompts if prompt and prompt.strip())

    def speculate(self, conversation_id: str, text: str, language: str | None) -> Speculation | None:
        """A speculative question to this agent (the speculator starts it); None when the agent is unavailable."""
        if self.hass is None:
            return None
        service = self.service
        return Speculation(
            conversation_id, text, self, self._extra_prompt(None),
            AgentTurn(
                service.host, service.port, text, context=self._transcript_context(conversation_id, None),
                language=language, timeout=ANSWER_TIMEOUT, speculative=True,
            ),
        )  # fmt: skip

    async def _deltas(
        self, user_input: conversation.ConversationInput, conversation_id: str, context: dict[str, Any], turn: _Turn
    ) -> AsyncGenerator[AssistantContentDeltaDict]:
        """The answer as chat-log deltas: the role once, then text as the server writes it.

        A failure before any text is not added to the chat log (the result carries it); a failure
        after some text is added as more text, so a streamed answer ends with the reason it stopped.
        """
        service = self.service
        written = self._speculator.answer_started(self)
        early = self._speculator.take(
            conversation_id, user_input.text, self, self._extra_prompt(user_input.extra_system_prompt)
        )
        feed: TextFeed | None = None
        if early is not None:
            agent_turn = early.turn
            await agent_turn.commit()  # it is the answer now: the server keeps it in the conversation
            replies = early.stream()  # what was written before the question was asked comes at once
        else:
            agent_turn = AgentTurn(
                service.host, service.port, user_input.text,
                context=context, language=user_input.language, timeout=ANSWER_TIMEOUT,
            )  # fmt: skip
            feed = self._speculator.prepare_speech(self)
            replies = self._ask(agent_turn)
        try:
            async for reply in replies:
                if reply.stopped:
                    written.stop()
                text = self._new_text(reply, turn)
                if text:
                    if not turn.streamed:
                        yield {"role": "assistant"}
                    turn.streamed += text
                    written.add(text)
                    if feed is not None:
                        feed.put(text)
                    yield {"content": text}
        except (OSError, TimeoutError, ServiceError) as err:
            _LOGGER.warning("Chatty agent at %s:%s: %s", service.host, service.port, err or type(err).__name__)
            turn.failure = UNREACHABLE_SPEECH if isinstance(err, ServiceUnreachable) else LOST_SPEECH
            turn.error_code = intent.IntentResponseErrorCode.UNKNOWN
        finally:
            if feed is not None:
                feed.close()
            await replies.aclose()
            await agent_turn.close()
        if turn.failure is not None and turn.streamed:
            text = turn.failure if turn.streamed[-1].isspace() else " " + turn.failure
            turn.streamed += text
            turn.failure_streamed = True
            yield {"content": text}

    @staticmethod
    async def _ask(agent_turn: AgentTurn) -> AsyncGenerator[Reply]:
        await agent_turn.ask()
        async for reply in agent_turn.replies():
            yield reply

    @staticmethod
    def _new_text(reply: Reply, turn: _Turn) -> str:
        """The text a reply adds to what has been streamed."""
        if reply.kind is ReplyKind.CHUNK:
            return reply.text
        if reply.kind is ReplyKind.FAILURE:
            turn.failure = reply.text or LOST_SPEECH
            return ""
        # The whole answer: from a server that does not stream, or the rest of one that did.
        if not turn.streamed:
            return reply.text
        if reply.text.startswith(turn.streamed):
            return reply.text[len(turn.streamed) :]
        return ""

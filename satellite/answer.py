"""An answer in the making (direct mode): the LLM server's words go on to the TTS server as they are
written and the audio plays as it comes, or is held back while it is not yet sure the question is over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from wyoming.client import AsyncClient

from chatty_common.audio import PcmFormat
from wyoming_chatty_llm.client import AnswerStream, commit
from wyoming_chatty_tts.client import SpeechStream

from .player import Playback, Player
from .services import Services, ServiceUnavailable
from .turn_log import Outcome, Turn
from .turns import hear

ANSWER_TIMEOUT = 120.0  # seconds without a word from the LLM server or audio from the TTS server


class TurnFailed(Exception):
    """The turn cannot go on; ``outcome`` names why, in the turn log."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


async def close_client(client: AsyncClient) -> None:
    with contextlib.suppress(OSError):
        await client.disconnect()


async def play_speech(
    player: Player, speech: SpeechStream, turn: Turn | None = None, answer: Answer | None = None
) -> Playback | None:
    """Play a TTS server's audio as it arrives (held back while ``answer`` is); returns once all of it is
    queued for the speaker, or None if there was none."""
    playback: Playback | None = None
    async for chunk in speech.audio(ANSWER_TIMEOUT):
        if answer is not None and answer.withdrawn:
            break  # taken back (cancelled, but a chunk may come before the cancellation does)
        if playback is None:
            held = answer is not None and not answer.released
            playback = player.playback(PcmFormat(chunk.rate, chunk.width, chunk.channels), held=held)
            if answer is not None:
                answer.playback = playback
                answer._playing.set()
            if turn is not None:
                turn.answer_playback = playback
        if turn is not None and turn.tts_first_audio_at is None:
            turn.tts_first_audio_at = time.monotonic()
        playback.add(chunk.audio)
    if playback is not None:
        playback.end()
    return playback


class Answer:
    """The answer to ``text``, started at once; its audio is held back until :meth:`release` if ``held``.

    The task returns the turn's outcome once the answer has been heard (or raises why it could not be).
    ``on_conversation`` learns the conversation's id as soon as the LLM server names it. A held answer is
    asked as speculative: the LLM server remembers it only once it is released and heard (committed), so an answer
    dropped because the speaker went on leaves no trace in the conversation.
    """

    def __init__(
        self,
        services: Services,
        player: Player,
        turn: Turn,
        text: str,
        *,
        voice: str | None,
        held: bool,
        on_conversation: Callable[[str], None],
    ) -> None:
        self.services = services
        self.player = player
        self.turn = turn
        self.voice = voice
        self._released = asyncio.Event()
        if not held:
            self._released.set()
        self.playback: Playback | None = None
        self.on_conversation = on_conversation
        self.begun = asyncio.Event()
        """Set when the LLM's first text is in (or the answer ended without any)."""
        self.withdrawn = False
        self._playing = asyncio.Event()
        self.task = asyncio.create_task(self._run(text), name="answer")

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        """The question is over: play the answer (what is ready now, the rest as it comes)."""
        self._released.set()
        if self.playback is not None:
            self.playback.release()

    def withdraw(self) -> None:
        """Drop the answer at once, before any of it is heard (the speaker went on); no more of its audio
        is played from now on (what was queued must be taken back from the playback)."""
        self.withdrawn = True
        self.task.cancel()

    async def cancel(self) -> None:
        """Drop the answer (its connections close, so the servers stop working on it)."""
        self.task.cancel()
        # asyncio.wait, not awaiting the task: a cancellation of the caller itself must not be taken for
        # the answer's and swallowed.
        await asyncio.wait({self.task})
        if not self.task.cancelled():
            self.task.exception()  # retrieved: whatever it failed with no longer matters

    async def _run(self, text: str) -> Outcome:
        connecting = [asyncio.create_task(self.services.connect(kind)) for kind in ("llm", "tts")]
        try:
            await asyncio.wait(connecting)
            try:
                llm, tts = (task.result() for task in connecting)
            except ServiceUnavailable as err:
                raise TurnFailed(Outcome(f"{err.kind} unavailable"), str(err)) from err
            return await self._converse(llm, tts, text)
        finally:  # also when cancelled while connecting: no connection is left open
            self.begun.set()
            for task in connecting:
                if not task.done():
                    task.cancel()
                elif not task.cancelled() and task.exception() is None:
                    await close_client(task.result())

    async def _converse(self, llm: AsyncClient, tts: AsyncClient, text: str) -> Outcome:
        turn = self.turn
        speech = SpeechStream(tts, self.voice)
        await speech.start()
        playing = asyncio.create_task(play_speech(self.player, speech, turn, self))
        committing = asyncio.create_task(self._commit_once_heard(llm), name="commit the answer")
        try:
            agent = AnswerStream(llm)
            turn.llm_sent_at = time.monotonic()
            # Asked as speculative always, and committed once heard: until its first sound the speaker
            # may still go on, and the answer is taken back without a trace in the conversation.
            await agent.ask(text, turn.conversation_id, speculative=True)
            async for piece in agent.pieces(ANSWER_TIMEOUT):
                if turn.llm_first_at is None:
                    turn.llm_first_at = turn.tts_text_at = time.monotonic()
                    self.begun.set()
                await speech.add(piece)
            turn.llm_done_at = time.monotonic()
            reply = agent.answer
            turn.answer = reply.text
            if reply.conversation_id:
                turn.conversation_id = reply.conversation_id
                self.on_conversation(reply.conversation_id)
            if not reply.chunks and reply.text:  # a non-streaming agent, or a failure sentence
                turn.tts_text_at = time.monotonic()
                await speech.add(reply.text)
            await speech.finish()
            playback = await playing
            if playback is None:
                raise TurnFailed(Outcome.TTS_ERROR, "the TTS server sent no audio")
            heard = await hear(turn, playback)
            if playback.sounded.is_set():
                await committing  # sent at the first sound; the connection stays open until it is
            if not heard:
                return Outcome.INTERRUPTED
            return Outcome.ANSWERED if reply.handled else Outcome.NOT_HANDLED
        finally:
            for task in (playing, committing):
                if not task.done():
                    task.cancel()

    async def _commit_once_heard(self, llm: AsyncClient) -> None:
        """Keep the answer in the conversation's memory once the question is surely over and its first
        sound has been heard (a barge-in before that leaves no trace either)."""
        await self._released.wait()
        await self._playing.wait()
        assert self.playback is not None
        await self.playback.sounded.wait()
        await commit(llm)

"""Direct mode: the satellite runs each turn itself against the STT, LLM and TTS servers, all overlapped.

Audio streams to the STT server while the user speaks; the transcript goes to
the LLM server; each ``handled-chunk`` goes on to the TTS server as a
``synthesize-chunk``; audio plays as soon as the first piece is synthesized.
At a pause that may end the command the server transcribes what was said so
far and the answer is prepared already, its audio held back until the end of
speech is confirmed. The turn controller does the
rest (barge-in, follow-ups, the turn log); the servers' own stream clients
speak the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from functools import partial

from wyoming.client import AsyncClient

from wyoming_chatty_llm.client import AgentError
from wyoming_chatty_stt.client import LateWords, TranscriptionError, UnsureWords
from wyoming_chatty_tts.client import SpeechError, SpeechStream

from .answer import Answer, TurnFailed, close_client, play_speech
from .audio_io import Frame
from .capture import CommandCapture, Marker
from .command_words import CommandWords
from .core import Mode
from .end_of_turn import TurnJudge
from .player import Player
from .services import Services, ServiceUnavailable
from .sounds import Sounds
from .speech import CommandEnd, CommandRules
from .turn_log import Outcome, Turn, TurnLog
from .turns import JUDGE_AFTER_AT_MOST, TurnController

_LOGGER = logging.getLogger(__name__)

TRANSCRIPT_TIMEOUT = 15.0
CANT_REACH = "I can't reach the assistant right now."


@dataclass(frozen=True)
class DirectSettings:
    """What direct mode asks of the servers, and how it takes turns."""

    language: str | None = None
    voice: str | None = None
    follow_up: bool = True
    prepare_after: float | None = 0.1
    """Silence after which the answer is prepared (held back until the end of speech); None: wait for the end."""


class DirectMode(Mode):
    """Runs turns against the three servers."""

    def __init__(
        self,
        services: Services,
        player: Player,
        sounds: Sounds,
        rules: CommandRules,
        turn_log: TurnLog,
        settings: DirectSettings,
        judge: TurnJudge | None = None,
    ) -> None:
        self.services = services
        self.player = player
        self.sounds = sounds
        self.settings = settings
        self.conversation_id: str | None = None
        self.turns = TurnController(
            mode="direct",
            player=player,
            sounds=sounds,
            rules=rules,
            turn_log=turn_log,
            follow_up=settings.follow_up,
            done_cue=False,
            pause_after=judge.taking.pause if judge is not None else settings.prepare_after,
            judge=judge,
            mode_judges_pauses=True,
        )
        if judge is not None:
            judge.language = settings.language
        self.turns.listen_again = lambda: self.listen(None)
        self.turns.go_on = self._go_on
        self._answer: Answer | None = None
        """The answer released to the turn under way (its command may still go on)."""

    async def start(self) -> None:
        try:
            uris = await self.services.find_all()
            _LOGGER.info("Servers: %s", ", ".join(f"{kind} {uri}" for kind, uri in uris.items()))
        except ServiceUnavailable as err:
            _LOGGER.warning("%s; will look again at the first turn", err)

    async def close(self) -> None:
        await self.turns.close()

    def listen(self, wake_word: str | None) -> None:
        turn, capture = self.turns.begin(wake_word)
        turn.conversation_id = self.conversation_id
        self.turns.run(self._turn(turn, capture))

    def _go_on(self, turn: Turn, capture: CommandCapture) -> None:
        """The speaker went on after the command's early end: its answer is dropped before a word of it is
        heard (the turn controller has taken back its audio), and the whole command is heard again."""
        if self._answer is not None:
            self._answer.withdraw()
            self._answer = None
        self.turns.run(self._turn(turn, capture))

    async def _turn(self, turn: Turn, capture: CommandCapture) -> Outcome:
        """The turn's work; a failure is said (or sounded) and named in the outcome."""
        try:
            return await self._hear_and_answer(turn, capture)
        except TurnFailed as err:
            outcome, detail = err.outcome, str(err)
        except TranscriptionError as err:
            outcome, detail = Outcome.STT_ERROR, str(err)
        except AgentError as err:
            outcome, detail = Outcome.LLM_ERROR, str(err)
        except SpeechError as err:
            outcome, detail = Outcome.TTS_ERROR, str(err)
        except (OSError, TimeoutError) as err:
            outcome, detail = Outcome.CONNECTION_LOST, str(err) or type(err).__name__
        _LOGGER.warning("Turn failed (%s): %s", outcome, detail)
        turn.outcome, turn.error = outcome, detail
        self.turns.stop_listening()
        await self._say_failure(outcome)
        return outcome

    async def _say_failure(self, outcome: Outcome) -> None:
        """Speak what went wrong when the TTS server can, else sound the error tone."""
        if outcome is Outcome.NOT_UNDERSTOOD:
            self.sounds.play(self.player, "error")
            return
        with contextlib.suppress(Exception):
            tts = await self.services.connect("tts")
            try:
                speech = SpeechStream(tts, self.settings.voice)
                await speech.say(CANT_REACH)
                playback = await play_speech(self.player, speech)
            finally:
                await close_client(tts)
            if playback is not None:
                await playback.finished.wait()
                return
        self.sounds.play(self.player, "error")

    async def _hear_and_answer(self, turn: Turn, capture: CommandCapture) -> Outcome:
        """Hear, transcribe, answer and play.

        The command streams to the STT server as it is heard, and the server transcribes it at each
        pause that may end it. There the answer is prepared at once, its audio held back (unless the
        words plainly go on: "what is the"); the pause is judged (the sound and those words: is the
        speaker done?), and when the end of speech is confirmed (by that judgement or by the silence
        going on) it plays straight away. If the speaker goes on instead, that answer is dropped and
        the stream simply goes on. The pause is judged once the prepared answer has its first text: on
        two cores the judging models would otherwise hold that text back, and the first audio with it,
        while their verdict is needed only when that audio is ready.
        """
        judge = self.turns.judge
        words = CommandWords(self._connect_stt, self.settings.language, self.turns.pause_after)
        said: list[asyncio.Task[str | None]] = []  # the words of each pause
        preparing: asyncio.Task[Answer | None] | None = None  # the answer to the pause under way
        try:
            while (item := await capture.queue.get()) is not None:
                if isinstance(item, Frame):
                    words.feed(item.pcm)
                elif item is Marker.PAUSE:
                    said.append(asyncio.create_task(words.at_pause(), name="words at a pause"))
                    preparing = asyncio.create_task(self._prepare(turn, said[-1]), name="answer at a pause")
                    if judge is not None:
                        pcm = bytes(capture.pcm[: words.fed])
                        self.turns.judge_pause(
                            capture, pcm, said[-1], after=partial(answer_begun, preparing), again=words.second_hearing()
                        )
                elif item is Marker.RESUME:
                    await self._drop(preparing)
                    preparing = None
                    turn.reset_answer()
            if capture.end is CommandEnd.NOTHING_SAID:
                return Outcome.NOTHING_SAID  # the turn controller has ended the turn already
            answer = await preparing if preparing is not None else None
            if answer is None:
                text = await words.finish(TRANSCRIPT_TIMEOUT)
                turn.transcript_at, turn.transcript = time.monotonic(), text
                if not text:
                    raise TurnFailed(Outcome.NOT_UNDERSTOOD, "the transcript is empty")
                answer = self._start_answer(turn, text, held=False)
            else:
                turn.extra["prepared_during_pause"] = True
            preparing = None
            answer.release()
            self._answer = answer
            try:
                return await answer.task
            finally:
                if self._answer is answer:
                    self._answer = None
                if not answer.task.done():
                    await answer.cancel()
        finally:
            await self._drop(preparing)
            for task in said:
                task.cancel()
            await words.close()

    async def _prepare(self, turn: Turn, said: asyncio.Task[str | None]) -> Answer | None:
        """At a pause: the answer to its words, its audio held back (None: no words, or plainly unfinished ones)."""
        try:
            text = await said or ""
        except UnsureWords as unsure:
            text = unsure.text  # too unsure to end the command by, but the transcript if it ends here
        except LateWords:
            return None  # too late to prepare by; the final transcript will come at the end
        turn.transcript_at, turn.transcript = time.monotonic(), text
        if not text or (self.turns.judge is not None and self.turns.judge.unfinished(text)):
            return None
        return self._start_answer(turn, text, held=True)

    @staticmethod
    async def _drop(preparing: asyncio.Task[Answer | None] | None) -> None:
        """The speaker went on (or the turn ended): the answer prepared at the pause is not wanted."""
        if preparing is None:
            return
        preparing.cancel()
        await asyncio.wait({preparing})
        if not preparing.cancelled() and preparing.exception() is None and (answer := preparing.result()):
            await answer.cancel()

    async def _connect_stt(self) -> AsyncClient:
        try:
            return await self.services.connect("stt")
        except ServiceUnavailable as err:
            raise TurnFailed(Outcome.STT_UNAVAILABLE, str(err)) from err

    def _start_answer(self, turn: Turn, text: str, held: bool) -> Answer:
        return Answer(
            self.services, self.player, turn, text, voice=self.settings.voice, held=held,
            on_conversation=self._remember_conversation,
        )  # fmt: skip

    def _remember_conversation(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id


async def answer_begun(preparing: asyncio.Task[Answer | None], _words: str | None) -> bool | None:
    """Return once the answer prepared at a pause (to its words) has its first text (True), no answer is coming
    (None), or :data:`JUDGE_AFTER_AT_MOST` has passed (False: a slow LLM must not delay the verdict much)."""
    try:
        async with asyncio.timeout(JUDGE_AFTER_AT_MOST):
            await asyncio.wait({preparing})
            if preparing.cancelled() or preparing.exception() is not None or (answer := preparing.result()) is None:
                return None
            await answer.begun.wait()
            return True
    except TimeoutError:
        return False

"""Direct mode: the satellite runs each turn itself against the STT, LLM and TTS servers, all overlapped.

Audio streams to the STT server while the user speaks; the transcript goes to
the LLM server; each ``handled-chunk`` goes on to the TTS server as a
``synthesize-chunk``; audio plays as soon as the first piece is synthesized.
The wake word during an answer stops it (barge-in): playback is dropped, the
turn's connections are closed (the servers stop their work) and a new
command is heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.handle import Handled, HandledChunk, NotHandled
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from chatty_common.audio import PcmFormat

from .audio_io import MIC_RATE, Frame
from .core import PAUSE, RESUME, CommandCapture, Heard, Mode
from .player import Playback, Player
from .services import Services, ServiceUnavailable
from .sounds import Sounds
from .speech import CommandEnd, CommandRules
from .turn_log import Turn, TurnLog

_LOGGER = logging.getLogger(__name__)

TRANSCRIPT_TIMEOUT = 15.0
ANSWER_TIMEOUT = 120.0
CANT_REACH = "I can't reach the assistant right now."


@dataclass(frozen=True)
class DirectSettings:
    language: str | None = None
    voice: str | None = None
    follow_up: bool = True
    prepare_after: float | None = 0.1
    """Silence after which the answer is prepared (held back until the end of speech); None: wait for the end."""


class _Answer:
    """An answer in the making: its task, and its playback, held back until ``release``."""

    def __init__(self, released: bool) -> None:
        self.task: asyncio.Task[None]
        self.playback: Playback | None = None
        self.released = released

    def release(self) -> None:
        self.released = True
        if self.playback is not None:
            self.playback.release()

    async def cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class TurnFailed(Exception):
    """The turn cannot go on; ``outcome`` names why, in the turn log."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


async def _close(client: AsyncClient) -> None:
    with contextlib.suppress(OSError):
        await client.disconnect()


async def _read(client: AsyncClient, timeout: float):
    # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation (a barge-in, a stop)
    # that comes while the event arrives, and the turn would go on.
    async with asyncio.timeout(timeout):
        event = await client.read_event()
    if event is None:
        raise ConnectionError("the server closed the connection")
    return event


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
    ) -> None:
        self.services = services
        self.player = player
        self.sounds = sounds
        self.rules = rules
        self.turn_log = turn_log
        self.settings = settings
        self.conversation_id: str | None = None
        self._capture: CommandCapture | None = None
        self._turn: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self._capture is None and (self._turn is None or self._turn.done())

    @property
    def capturing(self) -> bool:
        return self._capture is not None

    async def start(self) -> None:
        try:
            uris = await self.services.find_all()
            _LOGGER.info("Servers: %s", ", ".join(f"{kind} {uri}" for kind, uri in uris.items()))
        except ServiceUnavailable as err:
            _LOGGER.warning("%s; will look again at the first turn", err)

    def on_heard(self, heard: Heard) -> None:
        if self._capture is not None:
            if self._capture.feed(heard) is not None:
                self._capture = None
            return
        if heard.wake_word is not None:
            self.listen(heard.wake_word)

    def listen(self, wake_word: str | None) -> None:
        """Start hearing a command (after the wake word, or as a follow-up); stops an answer being played."""
        if wake_word is not None:
            _LOGGER.info("Heard %s", wake_word)
        if self._turn is not None and not self._turn.done():
            _LOGGER.info("Barge-in: %s heard while answering; stopping the answer", wake_word)
            self._turn.cancel()
            self.player.stop()
        capture = CommandCapture(self.rules, pause_after=self.settings.prepare_after)
        self._capture = capture
        turn = Turn(mode="direct", wake_word=wake_word, conversation_id=self.conversation_id)
        if wake_word is None:
            turn.extra["follow_up"] = True
        self._turn = asyncio.create_task(self._run_turn(turn, capture), name="direct turn")

    async def _run_turn(self, turn: Turn, capture: CommandCapture) -> None:
        self.sounds.play(self.player, "awake")
        follow_up = False
        try:
            follow_up = await self._turn_steps(turn, capture)
        except asyncio.CancelledError:
            turn.outcome = "interrupted"
            capture.finish(CommandEnd.NOTHING_SAID)
            raise
        except TurnFailed as err:
            turn.outcome = err.outcome
            if err.outcome == "nothing said" and turn.wake_word is None:
                turn.outcome = "no follow-up"  # silence after an answer's question is an answer too
                _LOGGER.info("Nobody answered the question; listening for the wake word again")
            else:
                _LOGGER.warning("Turn failed (%s): %s", err.outcome, err)
                await self._say_failure(turn, err)
        except (OSError, TimeoutError, ConnectionError) as err:
            turn.outcome = "connection lost"
            _LOGGER.warning("Turn failed: %s", err or type(err).__name__)
            await self._say_failure(turn, err)
        finally:
            capture.finish(CommandEnd.NOTHING_SAID)
            if self._capture is capture:
                self._capture = None
            if turn.outcome != "no follow-up":
                self.turn_log.write(turn)
        if follow_up:
            _LOGGER.info("The answer asked a question: listening again without the wake word")
            self.listen(None)

    async def _say_failure(self, turn: Turn, err: Exception) -> None:
        """Speak what went wrong when the TTS server can, else sound the error tone."""
        if isinstance(err, TurnFailed) and err.outcome in ("nothing said", "not understood"):
            self.sounds.play(self.player, "error")
            return
        with contextlib.suppress(Exception):
            tts = await self.services.connect("tts")
            try:
                await tts.write_event(Synthesize(text=CANT_REACH, voice=self._voice()).event())
                playback = await self._play_tts(tts, streaming=False, turn=None)
            finally:
                await _close(tts)
            if playback is not None:
                await playback.finished.wait()
                return
        self.sounds.play(self.player, "error")

    def _voice(self) -> SynthesizeVoice | None:
        return SynthesizeVoice(name=self.settings.voice) if self.settings.voice else None

    async def _open_stt(self) -> AsyncClient:
        try:
            stt = await self.services.connect("stt")
        except ServiceUnavailable as err:
            raise TurnFailed("stt unavailable", str(err)) from err
        await stt.write_event(Transcribe(language=self.settings.language).event())
        await stt.write_event(AudioStart(rate=MIC_RATE, width=2, channels=1).event())
        return stt

    async def _transcript(self, stt: AsyncClient, turn: Turn) -> str:
        """End the audio and wait for the transcript."""
        await stt.write_event(AudioStop().event())
        while True:
            event = await _read(stt, TRANSCRIPT_TIMEOUT)
            if Transcript.is_type(event.type):
                turn.transcript_at = time.monotonic()
                turn.transcript = Transcript.from_event(event).text.strip()
                return turn.transcript
            if Error.is_type(event.type):
                raise TurnFailed("stt error", Error.from_event(event).text)

    def _start_answer(self, turn: Turn, text: str, held: bool) -> _Answer:
        answer = _Answer(released=not held)
        answer.task = asyncio.create_task(self._answer(turn, text, answer), name="answer")
        return answer

    async def _turn_steps(self, turn: Turn, capture: CommandCapture) -> bool:
        """Hear, transcribe, answer and play; True if the answer asks something back.

        At a pause that may end the command, the transcript is taken and the answer is
        prepared at once, its audio held back; when the end of speech is confirmed it
        plays straight away. If the speaker goes on instead, that answer is dropped and
        the whole command so far goes to a new transcription.
        """
        stt: AsyncClient | None = await self._open_stt()
        frames: list[bytes] = []
        answer: _Answer | None = None
        text = ""
        try:
            while (item := await capture.queue.get()) is not None:
                if item is PAUSE:
                    assert stt is not None
                    text = await self._transcript(stt, turn)
                    await _close(stt)
                    stt = None
                    if text:
                        answer = self._start_answer(turn, text, held=True)
                elif item is RESUME:
                    if answer is not None:
                        await answer.cancel()
                        answer = None
                    turn.reset_answer()
                    stt = await self._open_stt()
                    for pcm in frames:  # the whole command so far, as one utterance
                        await stt.write_event(AudioChunk(rate=MIC_RATE, width=2, channels=1, audio=pcm).event())
                elif isinstance(item, Frame):
                    frames.append(item.pcm)
                    if stt is not None:
                        await stt.write_event(AudioChunk(rate=MIC_RATE, width=2, channels=1, audio=item.pcm).event())
            turn.end_of_speech_at = capture.ended_at
            turn.last_voice_at = capture.last_voice_at
            turn.extra["end"] = capture.end.value if capture.end else None
            if capture.end is CommandEnd.NOTHING_SAID:
                raise TurnFailed("nothing said", "no speech after the wake word")
            if stt is not None:
                text = await self._transcript(stt, turn)
                await _close(stt)
                stt = None
                if text:
                    answer = self._start_answer(turn, text, held=False)
            elif answer is not None:
                turn.extra["prepared_during_pause"] = True
            if not text or answer is None:
                raise TurnFailed("not understood", "the transcript is empty")
            answer.release()
            await answer.task
        finally:
            if stt is not None:
                await _close(stt)
            if answer is not None and not answer.task.done():
                await answer.cancel()
        return self.settings.follow_up and turn.asks_back()

    async def _answer(self, turn: Turn, text: str, answer: _Answer) -> None:
        """Ask the LLM server, stream its answer into the TTS server, play the audio (held if asked)."""
        try:
            llm, tts = await asyncio.gather(self.services.connect("llm"), self.services.connect("tts"))
        except ServiceUnavailable as err:
            raise TurnFailed(f"{err.kind} unavailable", str(err)) from err
        try:
            await self._converse(llm, tts, turn, text, answer)
        finally:
            await _close(llm)
            await _close(tts)

    async def _converse(self, llm: AsyncClient, tts: AsyncClient, turn: Turn, text: str, answer: _Answer) -> None:
        await tts.write_event(SynthesizeStart(voice=self._voice()).event())
        player = asyncio.create_task(self._play_tts(tts, streaming=True, turn=turn, answer=answer))
        try:
            context = {"conversation_id": self.conversation_id} if self.conversation_id else None
            turn.llm_sent_at = time.monotonic()
            await llm.write_event(Transcript(text=text, context=context).event())
            spoken: list[str] = []
            while True:
                event = await _read(llm, ANSWER_TIMEOUT)
                if HandledChunk.is_type(event.type):
                    piece = HandledChunk.from_event(event).text
                    if not spoken:
                        turn.llm_first_at = turn.tts_text_at = time.monotonic()
                    spoken.append(piece)
                    await tts.write_event(SynthesizeChunk(text=piece).event())
                elif Handled.is_type(event.type) or NotHandled.is_type(event.type):
                    turn.llm_done_at = time.monotonic()
                    final = Handled.from_event(event) if Handled.is_type(event.type) else NotHandled.from_event(event)
                    turn.answer = final.text or ""
                    if final.context and final.context.get("conversation_id"):
                        self.conversation_id = turn.conversation_id = final.context["conversation_id"]
                    if NotHandled.is_type(event.type):
                        turn.outcome = "not handled"
                    if not spoken and turn.answer:  # a non-streaming agent, or a failure sentence
                        turn.tts_text_at = time.monotonic()
                        spoken.append(turn.answer)
                        await tts.write_event(SynthesizeChunk(text=turn.answer).event())
                    break
                elif Error.is_type(event.type):
                    raise TurnFailed("llm error", Error.from_event(event).text)
            await tts.write_event(Synthesize(text="".join(spoken), voice=self._voice()).event())
            await tts.write_event(SynthesizeStop().event())
            playback = await player
        finally:
            if not player.done():
                player.cancel()
        if playback is None:
            raise TurnFailed("tts error", "the TTS server sent no audio")
        await playback.wait_started()
        turn.first_played_at = playback.first_sound_at  # counts even if a barge-in cuts the answer short
        await playback.finished.wait()
        turn.extra["answer_seconds"] = round(playback.seconds, 2)

    async def _play_tts(
        self, tts: AsyncClient, *, streaming: bool, turn: Turn | None, answer: _Answer | None = None
    ) -> Playback | None:
        """Play the TTS server's audio as it arrives; returns once all of it is queued for the speaker."""
        playback: Playback | None = None

        def new_playback(rate: int, width: int, channels: int) -> Playback:
            held = answer is not None and not answer.released
            created = self.player.playback(PcmFormat(rate, width, channels), held=held)
            if answer is not None:
                answer.playback = created
            return created

        while True:
            event = await _read(tts, ANSWER_TIMEOUT)
            if AudioStart.is_type(event.type) and playback is None:
                start = AudioStart.from_event(event)
                playback = new_playback(start.rate, start.width, start.channels)
            elif AudioChunk.is_type(event.type):
                if playback is None:
                    chunk = AudioChunk.from_event(event)
                    playback = new_playback(chunk.rate, chunk.width, chunk.channels)
                if turn is not None and turn.tts_first_audio_at is None:
                    turn.tts_first_audio_at = time.monotonic()
                playback.add(event.payload or b"")
            elif (SynthesizeStopped.is_type(event.type) and streaming) or (
                AudioStop.is_type(event.type) and not streaming
            ):
                break
            elif Error.is_type(event.type):
                raise TurnFailed("tts error", Error.from_event(event).text)
        if playback is not None:
            playback.end()
        return playback

    async def close(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
            await asyncio.wait({self._turn}, timeout=2.0)  # its sockets close as it unwinds

"""Home Assistant mode: a Wyoming satellite server that Home Assistant's Wyoming integration drives.

Home Assistant connects (the satellite is the server), sends ``run-satellite``
and pings. On the wake word the satellite sends ``detection`` and
``run-pipeline`` (asr → tts) and streams the microphone until its own voice
activity detector hears the end of the command (then ``audio-stop``, which
ends Home Assistant's speech-to-text at once), or a ``transcript``, ``error``
or ``pause-satellite`` comes. The answer's audio is played as it streams in;
``played`` goes back when the speaker has really finished. Announcements play
the same way; timers ring here. The turn controller does the rest.

A command ended early (at a pause judged to be its end) whose speaker goes on before its answer
sounds is sent again, whole, in a new run: Home Assistant's run of its first words is stopped (on
Chatty's LLM server) and its answer dropped unheard. Without a known LLM server to stop that run, the
new run would wait for the old answer to be written (ten seconds and more), so the early end is final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Info
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStopped
from wyoming.wake import Detection

from chatty_common.audio import PcmFormat
from chatty_common.server import Listening

from .answer_begun import AnswerBegun
from .answer_stop import AnswerStopper
from .audio_io import FRAME_SECONDS, MIC_FORMAT
from .capture import CommandCapture, Heard
from .core import Mode
from .end_of_turn import TurnJudge
from .ha_link import HaConnection, HaLink
from .ha_pipeline import PipelineGate
from .pause_words import PauseWords
from .player import Playback, Player
from .services import Services
from .sounds import Sounds
from .speech import CommandEnd, CommandRules
from .timers import Timers
from .turn_log import Outcome, Turn, TurnLog
from .turns import TurnController, hear

_LOGGER = logging.getLogger(__name__)

_RUN_EVENTS = {"transcript", "synthesize", "voice-stopped", "error", "audio-start"}  # a pipeline run's, to a command
PAUSE_SILENCE_TO_HA = 0.4  # s; Home Assistant ends a command after 0.7 s of silence (as its detector hears it)
ONSET = 0.2  # s of audio before speech kept when a command is sent again (with the above, under HA's 0.7 s)


def sent_again(heard: list[Heard], threshold: float) -> list[Heard]:
    """A command's frames to send at once, its pauses shortened: Home Assistant's own detector counts the
    audio's time, and would end the command in a pause longer than it allows.

    A frame is kept up to :data:`PAUSE_SILENCE_TO_HA` after speech (as when the command streamed live), and
    :data:`ONSET` before it (the start of a word, before the detector is sure of it).
    """
    after, before = round(PAUSE_SILENCE_TO_HA / FRAME_SECONDS), round(ONSET / FRAME_SECONDS)  # in frames
    speech = [frame.speech >= threshold for frame in heard]
    kept = [False] * len(heard)
    silent = after  # frames since speech: none before the first word
    for i, voiced in enumerate(speech):
        silent = 0 if voiced else silent + 1
        kept[i] = silent <= after
    silent = before + 1
    for i in reversed(range(len(heard))):
        silent = 0 if speech[i] else silent + 1
        kept[i] = kept[i] or silent <= before
    return [frame for frame, keep in zip(heard, kept, strict=True) if keep]


class HaMode(Mode):
    """The satellite as Home Assistant's Assist satellite."""

    def __init__(
        self,
        *,
        uri: str,
        zeroconf_name: str | None,
        zeroconf_host: str | None,
        info: Info,
        player: Player,
        sounds: Sounds,
        rules: CommandRules,
        turn_log: TurnLog,
        follow_up: bool = True,
        judge: TurnJudge | None = None,
        services: Services | None = None,
        language: str | None = None,
    ) -> None:
        self.uri = uri
        self._listening = Listening(uri, zeroconf_name, zeroconf_host)
        self.player = player
        self.sounds = sounds
        self.link = HaLink(info, self._on_event, self._on_disconnect)
        self.gate = PipelineGate(
            self.link.send, self._run_went_quiet, self._answer_still_written,
            agent_known=self._llm_known,
        )  # fmt: skip
        """A command's events go through it: held while Home Assistant's last run may still be going."""
        self.timers = Timers(player, sounds)
        self.running = False
        self.turns = TurnController(
            mode="ha", player=player, sounds=sounds, rules=rules, turn_log=turn_log, follow_up=follow_up,
            silence_ends_turn=False, judge=judge, pause_after=judge.taking.pause if judge is not None else None,
        )  # fmt: skip
        self.turns.on_capture_end = lambda _end: self.gate.send(AudioStop().event())
        self.turns.on_interrupt = self._drop_incoming
        self.turns.may_follow_up = lambda: self.link.connected and self.running
        self.turns.listen_again = lambda: self.listen(None)
        self.turns.go_on = self._go_on
        # Only where the early run can be stopped at once: else the whole command would wait for its answer.
        self.turns.may_go_on = self._llm_known
        # Judging pauses needs their words: Home Assistant's transcript comes only after the command.
        self._language = language
        self._pause_words = PauseWords(services, judge.taking.pause, language) if services and judge else None
        if self._pause_words is not None:
            self.turns.open_words = self._pause_words.open
        self._pipeline_language(None)  # until Home Assistant says the pipeline's
        self._stopper = AnswerStopper(services) if services else None
        # A pause is judged once the answer Home Assistant asked Chatty's LLM server for at it has begun.
        self._answer_begun = AnswerBegun(services, judge.unfinished) if services and judge else None
        if self._answer_begun is not None:
            self.turns.before_judging = self._answer_begun.wait
        self._question: str | None = None
        """The transcript of Home Assistant's last run: what its answer answers."""
        self._half_question = False
        """The last run's command was ended early and its speaker went on: its answer is to be forgotten."""
        self._incoming: Playback | None = None
        """Audio arriving from Home Assistant: the answer of ``_incoming_turn``, or an announcement."""
        self._incoming_turn: Turn | None = None
        self._discard_audio = False
        self._announcing: set[asyncio.Task[None]] = set()
        self._heard: list[Heard] = []
        """The frames of the command under way, and of the moments after its early end (sent again if the
        speaker goes on)."""

    async def start(self) -> None:
        await self._listening.start(partial(HaConnection, link=self.link))
        _LOGGER.info("Waiting for Home Assistant on %s", self.uri)
        if self._pause_words is not None:
            self._pause_words.look_up()
        if self._stopper is not None:
            self._stopper.look_up()

    async def close(self) -> None:
        self.gate.reset()  # its watch on a quiet run (a timer, maybe a question to the LLM server) ends
        self.timers.close()
        for task in self._announcing:
            task.cancel()
        await self.turns.close()
        if self._pause_words is not None:
            await self._pause_words.close()
        if self._stopper is not None:
            await self._stopper.close()
        if self._answer_begun is not None:
            await self._answer_begun.close()
        await self._listening.stop()

    @property
    def idle(self) -> bool:
        return self.turns.idle and self._incoming is None and not self._announcing

    # -- the microphone -----------------------------------------------------------------------------
    def on_heard(self, heard: Heard) -> None:
        capture = self.turns.capture
        if self.turns.wants_speech:
            self._heard.append(heard)
        elif self._heard:
            self._heard = []
        # Of a pause being judged, Home Assistant gets only the first PAUSE_SILENCE_TO_HA: its own
        # detector would end the command in a hesitation that the satellite hears out.
        if capture is not None and not (capture.paused and capture.endpointer.silence >= PAUSE_SILENCE_TO_HA):
            self.gate.send(AudioChunk(MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels, heard.frame.pcm).event())
        super().on_heard(heard)

    def on_wake_word(self, wake_word: str) -> None:
        if self.timers.ringing:
            self.timers.stop_ringing()
        elif not self.link.connected or not self.running:
            _LOGGER.info("Heard %s, but Home Assistant is not connected (or paused)", wake_word)
            self.sounds.play(self.player, "error")
        else:
            self.listen(wake_word)

    def listen(self, wake_word: str | None) -> None:
        self.turns.begin(wake_word)
        self._heard = []
        self._half_question = False
        self._start_run(wake_word)

    def _go_on(self, _turn: Turn, _capture: CommandCapture) -> None:
        """The speaker went on after the command's early end: the run of its first words is not wanted (its
        answer, if any came, is dropped), and the whole command so far goes to a new run, live from here."""
        self._drop_incoming()
        self._half_question = True
        heard = [frame.frame.pcm for frame in sent_again(self._heard, self.turns.rules.threshold)]
        self._start_run(None, heard)
        self.turns.stream_words_again(heard)

    def _start_run(self, wake_word: str | None, heard: list[bytes] | None = None) -> None:
        """A new pipeline run for the command under way (``heard``: its audio so far), held back while the
        last run goes on; that one is stopped if Chatty's LLM server writes its answer (and forgotten, if its
        question was half of this one: even when that run is over)."""
        events = [Detection(name=wake_word, timestamp=int(time.monotonic() * 1000)).event()] if wake_word else []
        events += [
            RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS, wake_word_name=wake_word).event(),
            AudioStart(MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels).event(),
        ]
        events += [
            AudioChunk(MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels, pcm).event() for pcm in heard or []
        ]
        self.gate.start_run(events)
        if self._question and (self.gate.holding or self._half_question):
            self._stop_answer(self._question)

    def _stop_answer(self, question: str) -> None:
        """The last run goes on until its answer is written: have Chatty's LLM server end it now."""
        forget, self._half_question = self._half_question, False
        self._question = None
        if self._stopper is not None:
            self._stopper.stop(question, forget=forget)

    # -- events from Home Assistant -------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        turn = self.turns.turn
        # While a command is held back, what the pipeline sends is the last run's: none of it is this turn's.
        earlier = self.gate.holding
        self.gate.on_event(event)
        if earlier and event.type in _RUN_EVENTS:
            if AudioStart.is_type(event.type):
                self._discard_audio = True
            elif Transcript.is_type(event.type):  # what the held-up run answers, known only now
                self._stop_answer(Transcript.from_event(event).text)
            _LOGGER.debug("Home Assistant's last run sent %s while the next command waits: dropped", event.type)
            return
        if RunSatellite.is_type(event.type):
            self.gate.reset()
            self.running = True
            _LOGGER.info("Home Assistant runs the satellite")
        elif PauseSatellite.is_type(event.type):
            self.gate.reset()
            self.running = False
            self.turns.interrupt(Outcome.PAUSED)
            _LOGGER.info("Home Assistant paused the satellite")
        elif VoiceStopped.is_type(event.type):
            self.turns.end_capture(CommandEnd.SPOKEN)
        elif Transcribe.is_type(event.type):  # the run's speech-to-text begins, in the pipeline's language
            self._pipeline_language(Transcribe.from_event(event).language)
        elif Transcript.is_type(event.type):
            self.turns.end_capture(CommandEnd.SPOKEN)
            self._question = Transcript.from_event(event).text
            self._half_question = False  # this run's: the whole command
            if turn is not None:
                turn.transcript_at = time.monotonic()
                turn.transcript = self._question
        elif Synthesize.is_type(event.type):
            if turn is not None:
                turn.answer = Synthesize.from_event(event).text
                turn.tts_text_at = time.monotonic()
        elif AudioStart.is_type(event.type):
            # A new stream (the one cut off had started before). While a command is being heard, no answer
            # to it can have come yet: this is the rest of the pipeline that the wake word interrupted.
            self._discard_audio = self.turns.capturing
            if self._discard_audio:
                _LOGGER.info("Dropping answer audio that arrived while a command is being heard")
            else:
                start = AudioStart.from_event(event)
                self._start_incoming(PcmFormat(start.rate, start.width, start.channels))
        elif self._discard_audio and (AudioChunk.is_type(event.type) or AudioStop.is_type(event.type)):
            self._discard_audio = not AudioStop.is_type(event.type)  # the interrupted answer's audio
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            incoming = self._incoming or self._start_incoming(PcmFormat(chunk.rate, chunk.width, chunk.channels))
            if self._incoming_turn is not None and self._incoming_turn.tts_first_audio_at is None:
                self._incoming_turn.tts_first_audio_at = time.monotonic()
            incoming.add(chunk.audio)
        elif AudioStop.is_type(event.type):
            self._end_incoming()
        elif Error.is_type(event.type):
            text = Error.from_event(event).text
            _LOGGER.warning("Home Assistant reported: %s", text)
            self.turns.give_up(Outcome.HA_ERROR, text)
        else:
            self.timers.on_event(event)

    def _pipeline_language(self, language: str | None) -> None:
        """Home Assistant says the language of the run's pipeline: the pauses' words are judged in it, and the
        next commands are transcribed in it (unless ``--language`` says otherwise): the STT server need not
        guess it from a second of speech."""
        self.gate.language = spoken = language or self._language
        if (judge := self.turns.judge) is not None:
            judge.language = spoken
        if self._pause_words is not None:
            self._pause_words.follow(language)
        if language is not None:
            _LOGGER.debug("Home Assistant's pipeline speaks %s", language)

    def _llm_known(self) -> bool:
        """Is Chatty's LLM server known, so that an answer Home Assistant asked it for can be stopped at once?"""
        return self._stopper is not None and self._stopper.can_stop()

    async def _answer_still_written(self) -> bool:
        """Does Chatty's LLM server still write the answer to the last run's question?"""
        question, stopper = self._question, self._stopper
        return bool(question and stopper is not None and await stopper.still_writing(question))

    def _run_went_quiet(self) -> None:
        """Home Assistant's run is taken to be over without a word: a turn still waiting for its answer ends."""
        turns = self.turns
        if turns.turn is not None and not turns.capturing and not turns.working and self._incoming is None:
            turns.finish(Outcome.NO_ANSWER)

    def _on_disconnect(self) -> None:
        self.gate.reset()
        self.running = False
        self._discard_audio = False  # the next connection will not send the rest of anything
        if self._incoming is not None:  # an answer (or announcement) was arriving: play what came
            if self._incoming_turn is not None:
                self._incoming_turn.outcome = Outcome.HA_DISCONNECTED
            self._end_incoming()
        turn = self.turns.turn
        if turn is not None and not self.turns.working:  # its answer will never come
            _LOGGER.warning("Home Assistant disconnected during a turn: playing the error sound")
            self.sounds.play(self.player, "error")
            self.turns.finish(Outcome.HA_DISCONNECTED)

    # -- audio from Home Assistant --------------------------------------------------------------------
    def _start_incoming(self, fmt: PcmFormat) -> Playback:
        self._incoming = self.player.playback(fmt)
        self._incoming_turn = self.turns.turn  # None: an announcement
        if self._incoming_turn is not None:
            self._incoming_turn.answer_playback = self._incoming
        return self._incoming

    def _end_incoming(self) -> None:
        playback, self._incoming = self._incoming, None
        turn, self._incoming_turn = self._incoming_turn, None
        if playback is None:
            self.link.send(Played().event())
            return
        playback.end()
        if turn is not None and turn is self.turns.turn:
            self.turns.run(self._answer_heard(turn, playback))
        else:
            task = asyncio.create_task(self._announcement_heard(playback), name="announcement")
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    def _drop_incoming(self) -> None:
        """Barge-in or pause: the rest of the audio arriving is not played."""
        if self._incoming is not None:
            self._discard_audio = True
            self._incoming = self._incoming_turn = None

    async def _answer_heard(self, turn: Turn, playback: Playback) -> Outcome:
        if not await hear(turn, playback):
            return Outcome.INTERRUPTED
        self.link.send(Played().event())
        return turn.outcome

    async def _announcement_heard(self, playback: Playback) -> None:
        await playback.finished.wait()
        if not playback.interrupted:
            self.link.send(Played().event())

"""Home Assistant mode: a Wyoming satellite server that Home Assistant's Wyoming integration drives.

Home Assistant connects (the satellite is the server), sends ``run-satellite``
and pings. On the wake word the satellite sends ``detection`` and
``run-pipeline`` (asr → tts) and streams the microphone until its own voice
activity detector hears the end of the command (then ``audio-stop``, which
ends Home Assistant's speech-to-text at once), or a ``transcript``, ``error``
or ``pause-satellite`` comes. The answer's audio is played as it streams in;
``played`` goes back when the speaker has really finished. Announcements play
the same way; timers ring here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioFormat, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, MicProgram, Satellite, SndProgram, WakeModel, WakeProgram
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted, TimerUpdated
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStopped
from wyoming.wake import Detection

from chatty_common import __version__
from chatty_common.audio import PcmFormat
from chatty_common.protocol import LimitedEventHandler
from chatty_common.server import Listening

from .audio_io import MIC_RATE
from .core import CommandCapture, Heard, Mode
from .player import Playback, Player
from .sounds import Sounds
from .speech import CommandEnd, CommandRules
from .turn_log import Turn, TurnLog
from .wake import WakeWord

_LOGGER = logging.getLogger(__name__)

CHATTY = Attribution(name="Chatty", url="https://www.home-assistant.io/integrations/wyoming/")
TIMER_RINGS = 5  # a finished timer rings this many times unless the wake word stops it


def build_info(name: str, area: str | None, wake_words: list[WakeWord], snd_rate: int) -> Info:
    return Info(
        satellite=Satellite(
            name=name,
            description="Chatty satellite",
            attribution=CHATTY,
            installed=True,
            version=__version__,
            area=area,
            has_vad=True,
            active_wake_words=[w.name for w in wake_words],
            max_active_wake_words=len(wake_words),
            supports_trigger=False,
        ),
        wake=[
            WakeProgram(
                name="chatty-wake",
                description="Local wake word detection (microWakeWord, openWakeWord)",
                attribution=CHATTY,
                installed=True,
                version=__version__,
                models=[
                    WakeModel(
                        name=w.name,
                        description=f"{w.phrase} ({w.engine})",
                        attribution=CHATTY,
                        installed=True,
                        version=None,
                        languages=["en"],
                        phrase=w.phrase,
                    )
                    for w in wake_words
                ],
            )
        ],
        mic=[
            MicProgram(
                name="chatty-mic",
                description="Microphone",
                attribution=CHATTY,
                installed=True,
                version=__version__,
                mic_format=AudioFormat(rate=MIC_RATE, width=2, channels=1),
            )
        ],
        snd=[
            SndProgram(
                name="chatty-snd",
                description="Speaker",
                attribution=CHATTY,
                installed=True,
                version=__version__,
                snd_format=AudioFormat(rate=snd_rate, width=2, channels=1),
            )
        ],
    )


class HaConnection(LimitedEventHandler):
    """One connection to the satellite's server.

    Any connection gets ``info`` and ``pong``; the one that sent ``run-satellite`` last is Home
    Assistant's, the one the satellite talks to. So a probe, a health check or a client sending
    garbage never cuts Home Assistant off, and a reconnecting Home Assistant takes over at once.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, mode: HaMode) -> None:
        super().__init__(reader, writer)
        self.mode = mode

    async def handle_event(self, event: Event) -> bool:
        return self.mode.on_event(self, event)

    async def disconnect(self) -> None:
        self.mode.disconnected(self)


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
    ) -> None:
        self.uri = uri
        self._listening = Listening(uri, zeroconf_name, zeroconf_host)
        self.info = info
        self.player = player
        self.sounds = sounds
        self.rules = rules
        self.turn_log = turn_log
        self.follow_up = follow_up
        self.connection: HaConnection | None = None
        self.running = False
        self._capture: CommandCapture | None = None
        self._turn: Turn | None = None
        self._playback: Playback | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ringing: asyncio.Task[None] | None = None
        self._timers: dict[str, TimerStarted] = {}
        self._discard_audio = False

    # -- server and connections -------------------------------------------------------------------
    async def start(self) -> None:
        await self._listening.start(partial(HaConnection, mode=self))
        _LOGGER.info("Waiting for Home Assistant on %s", self.uri)

    async def close(self) -> None:
        for task in [*self._tasks, self._ringing]:
            if task is not None:
                task.cancel()
        await self._listening.stop()

    def connected(self, connection: HaConnection) -> None:
        if self.connection is not None and self.connection is not connection:
            _LOGGER.info("A new Home Assistant connection replaces the old one")
            self.connection._is_running = False
            self.connection.writer.close()
        self.connection = connection
        _LOGGER.info("Home Assistant connected")

    def disconnected(self, connection: HaConnection) -> None:
        if self.connection is not connection:
            return
        _LOGGER.info("Home Assistant disconnected")
        self.connection = None
        self.running = False
        self._discard_audio = False  # the next connection will not send the rest of anything
        turn = self._turn
        if turn is None:
            return
        # A turn was under way: it ends here, and the turn log says why.
        turn.outcome = "home assistant disconnected"
        if self._playback is not None:
            self._on_audio_stop()  # play what arrived; the turn is logged when it has played
            return
        self._end_capture(CommandEnd.NOTHING_SAID)
        self._turn = None
        self.turn_log.write(turn)
        _LOGGER.warning("Home Assistant disconnected during a turn: playing the error sound")
        self.sounds.play(self.player, "error")  # the question was asked; no answer will come

    def _send(self, event: Event) -> None:
        if self.connection is not None:
            self.connection.send(event)

    # -- microphone ---------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return self._capture is None and self._playback is None and not self._tasks

    @property
    def capturing(self) -> bool:
        return self._capture is not None

    def on_heard(self, heard: Heard) -> None:
        capture = self._capture
        if capture is not None:
            self._send(AudioChunk(rate=MIC_RATE, width=2, channels=1, audio=heard.frame.pcm).event())
            end = capture.feed(heard)
            if end is not None:
                self._end_capture(end)
            return
        if heard.wake_word is not None:
            if self._ringing is not None and not self._ringing.done():
                _LOGGER.info("Timer ringing stopped by the wake word")
                self._ringing.cancel()
                self.player.stop()
                return
            if self.connection is None or not self.running:
                _LOGGER.info("Heard %s, but Home Assistant is not connected (or paused)", heard.wake_word)
                self.sounds.play(self.player, "error")
                return
            self._listen(heard.wake_word)

    def _listen(self, wake_word: str | None) -> None:
        if self._playback is not None or self.player.busy:
            _LOGGER.info("Barge-in: %s heard while playing; stopping playback", wake_word)
            self.player.stop()
            if self._playback is not None:  # the rest of that answer may still be on its way: drop it
                self._discard_audio = True
            self._playback = None
            if self._turn is not None:
                self._turn.outcome = "interrupted"
                self.turn_log.write(self._turn)
        self._turn = Turn(mode="ha", wake_word=wake_word)
        if wake_word is not None:
            self._send(Detection(name=wake_word, timestamp=int(time.monotonic() * 1000)).event())
            self.sounds.play(self.player, "awake")
        else:
            self._turn.extra["follow_up"] = True
        self._send(
            RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS, wake_word_name=wake_word).event()
        )
        self._send(AudioStart(rate=MIC_RATE, width=2, channels=1).event())
        self._capture = CommandCapture(self.rules)

    def _end_capture(self, end: CommandEnd) -> None:
        capture = self._capture
        if capture is None:
            return
        capture.finish(end)
        self._capture = None
        self._send(AudioStop().event())
        if end is not CommandEnd.NOTHING_SAID:
            self.sounds.play(self.player, "done")
        if self._turn is not None:
            self._turn.end_of_speech_at = capture.ended_at
            self._turn.last_voice_at = capture.last_voice_at
            self._turn.extra["end"] = end.value

    # -- events from Home Assistant ---------------------------------------------------------------
    def on_event(self, connection: HaConnection, event: Event) -> bool:
        if Describe.is_type(event.type):
            connection.send(self.info.event())
            return True
        if Ping.is_type(event.type):
            connection.send(Pong(text=Ping.from_event(event).text).event())
            return True
        if connection is not self.connection:
            if not RunSatellite.is_type(event.type):
                _LOGGER.debug("Ignoring %s from a connection that is not Home Assistant's", event.type)
                return True
            self.connected(connection)
        turn = self._turn
        if RunSatellite.is_type(event.type):
            self.running = True
            _LOGGER.info("Home Assistant runs the satellite")
        elif PauseSatellite.is_type(event.type):
            self.running = False
            self._end_capture(CommandEnd.NOTHING_SAID)
            self.player.stop()
            _LOGGER.info("Home Assistant paused the satellite")
        elif VoiceStopped.is_type(event.type):
            self._end_capture(CommandEnd.SPOKEN)
        elif Transcript.is_type(event.type):
            self._end_capture(CommandEnd.SPOKEN)
            if turn is not None:
                turn.transcript_at = time.monotonic()
                turn.transcript = Transcript.from_event(event).text
        elif Synthesize.is_type(event.type):
            if turn is not None:
                turn.answer = Synthesize.from_event(event).text
                turn.tts_text_at = time.monotonic()
        elif self._discard_audio and (AudioChunk.is_type(event.type) or AudioStop.is_type(event.type)):
            self._discard_audio = not AudioStop.is_type(event.type)  # the interrupted answer's audio
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._playback = self.player.playback(PcmFormat(start.rate, start.width, start.channels))
        elif AudioChunk.is_type(event.type):
            self._on_audio_chunk(event)
        elif AudioStop.is_type(event.type):
            self._on_audio_stop()
        elif Error.is_type(event.type):
            self._end_capture(CommandEnd.NOTHING_SAID)
            _LOGGER.warning("Home Assistant reported: %s", Error.from_event(event).text)
            self.sounds.play(self.player, "error")
            if turn is not None:
                turn.outcome = f"error: {Error.from_event(event).text}"
                self.turn_log.write(turn)
                self._turn = None
        elif TimerStarted.is_type(event.type):
            timer = TimerStarted.from_event(event)
            self._timers[timer.id] = timer
            _LOGGER.info("Timer %s started: %s s", timer.name or timer.id, timer.total_seconds)
        elif TimerUpdated.is_type(event.type):
            update = TimerUpdated.from_event(event)
            _LOGGER.info("Timer %s updated: %s s, active %s", update.id, update.total_seconds, update.is_active)
        elif TimerCancelled.is_type(event.type):
            self._timers.pop(TimerCancelled.from_event(event).id, None)
        elif TimerFinished.is_type(event.type):
            timer_id = TimerFinished.from_event(event).id
            finished = self._timers.pop(timer_id, None)
            _LOGGER.info("Timer %s finished: ringing", (finished.name if finished else None) or timer_id)
            self._ring()
        return True

    def _on_audio_chunk(self, event: Event) -> None:
        chunk = AudioChunk.from_event(event)
        if self._playback is None:
            self._playback = self.player.playback(PcmFormat(chunk.rate, chunk.width, chunk.channels))
        if self._turn is not None and self._turn.tts_first_audio_at is None:
            self._turn.tts_first_audio_at = time.monotonic()
        self._playback.add(chunk.audio)

    def _on_audio_stop(self) -> None:
        playback, self._playback = self._playback, None
        turn, self._turn = self._turn, None
        if playback is None:
            self._send(Played().event())
            return
        playback.end()
        task = asyncio.create_task(self._after_playback(playback, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_playback(self, playback: Playback, turn: Turn | None) -> None:
        await playback.finished.wait()
        if turn is not None:
            turn.first_played_at = playback.first_sound_at
        if playback.interrupted:
            # Cut off by the next wake word after the whole answer had arrived: logged here, as the
            # barge-in found no turn under way (one that was still arriving is logged by _listen).
            if turn is not None:
                turn.outcome = "interrupted"
                self.turn_log.write(turn)
            return
        self._send(Played().event())
        if turn is not None:
            self.turn_log.write(turn)
        if (
            self.follow_up
            and turn is not None
            and turn.asks_back()
            and self.connection is not None
            and self.running
            and self._capture is None
        ):
            _LOGGER.info("The answer asked a question: listening again without the wake word")
            self._listen(None)

    def _ring(self) -> None:
        if self._ringing is not None and not self._ringing.done():
            return
        pcm = self.sounds.get("timer")
        if not pcm:
            return

        async def ring() -> None:
            for _ in range(TIMER_RINGS):
                await self.player.play(pcm, self.sounds.rate)
                await asyncio.sleep(0.5)

        self._ringing = asyncio.create_task(ring())

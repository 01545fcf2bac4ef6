"""One turn controller for both modes: a turn from the wake word (or a follow-up) until its answer has
been heard, cut off or given up, with its cues, its one interrupt path and its one line in the turn log.

The modes are adapters: they start turns (:meth:`TurnController.begin`), feed
the microphone (:meth:`~TurnController.feed`), hand over the turn's work
(direct mode: transcribe, answer and play; Home Assistant mode: play the
answer that arrived) with :meth:`~TurnController.run`, and report what ends a
turn from outside (:meth:`~TurnController.finish`,
:meth:`~TurnController.interrupt`). Whatever ends a turn, it is written to the
turn log exactly once, by :meth:`~TurnController.finish`.

A command ended early, at a pause judged to be its end, is not final while its answer is unheard: if
the speaker goes on before the answer's first sound (and before the silence that would have ended the
command anyway), the answer is taken back and the command is heard on, as one (a mode that can do so
sets :attr:`~TurnController.go_on`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from wyoming_chatty_stt.client import LateWords, UnsureWords

from .audio_io import FRAME_SECONDS, MIC_RATE
from .capture import AfterEarlyEnd, CommandCapture, Heard
from .end_of_turn import LATE_WORDS, HearAgain, TurnJudge
from .player import Playback, Player
from .sounds import Sounds
from .speech import CommandEnd, CommandRules
from .turn_log import Outcome, Turn, TurnLog

if TYPE_CHECKING:
    from .command_words import CommandWords  # it closes its connection with the answer's helper

_LOGGER = logging.getLogger(__name__)

JUDGE_AFTER_AT_MOST = 0.5  # seconds the judging of a pause waits for the first text of the answer begun at it

BeforeJudging = Callable[[str | None], Awaitable[bool | None]]
"""Returns when a pause may be judged, given its words (once the answer begun at the pause has its first text):
whether that answer had begun (None: there was none to wait for)."""


def _nothing(*_args: Any) -> None:
    return None


def _no_words() -> CommandWords | None:
    return None


async def hear(turn: Turn, playback: Playback) -> bool:
    """Wait until a turn's answer has been heard, noting for how long; False if it was cut off on the way
    (the speaker stopped for something else: a timer's ringing silenced, a device fault)."""
    await playback.finished.wait()
    turn.extra["answer_seconds"] = round(playback.seconds, 2)
    return not playback.interrupted


class TurnController:
    """Runs one turn at a time: listening, the turn's work, the answer heard, and what comes after.

    The mode plugs in what differs with a few hooks: ``on_capture_end`` (Home
    Assistant mode sends ``audio-stop``), ``on_interrupt`` (it drops the rest
    of an answer still arriving), ``may_follow_up`` (it needs Home Assistant
    connected) and ``listen_again`` (a follow-up: the mode's ``listen(None)``).
    """

    def __init__(
        self,
        *,
        mode: str,
        player: Player,
        sounds: Sounds,
        rules: CommandRules,
        turn_log: TurnLog,
        follow_up: bool = True,
        done_cue: bool = True,
        silence_ends_turn: bool = True,
        pause_after: float | None = None,
        judge: TurnJudge | None = None,
        mode_judges_pauses: bool = False,
    ) -> None:
        self.mode = mode
        self.player = player
        self.sounds = sounds
        self.rules = rules
        self.turn_log = turn_log
        self.follow_up = follow_up
        self.done_cue = done_cue
        """Play the "done" tone when the command ends. Direct mode does not: its answer may be ready
        at that moment (prepared during the pause), and the tone would hold it back."""
        self.silence_ends_turn = silence_ends_turn
        self.pause_after = pause_after
        self.judge = judge
        """Decides at a pause whether the speaker is done (None: only the silence rule ends a command)."""
        self.mode_judges_pauses = mode_judges_pauses
        """The mode judges its pauses with their transcript (:meth:`judge_pause`); otherwise each pause is
        judged here, with the words of the command streamed to ``open_words()``."""
        self.before_judging: BeforeJudging | None = None
        """Home Assistant mode's wait before a pause it judges here (Chatty's LLM server has the first text of
        the answer Home Assistant asked for at the pause)."""
        self._judging: set[asyncio.Task[None]] = set()
        self.turn: Turn | None = None
        """The turn under way, from its start until it is logged."""
        self.capture: CommandCapture | None = None
        self._work: asyncio.Task[Outcome] | None = None
        self.on_capture_end: Callable[[CommandEnd], None] = _nothing
        self.on_interrupt: Callable[[], None] = _nothing
        self.may_follow_up: Callable[[], bool] = lambda: True
        self.listen_again: Callable[[], None] = _nothing
        self.open_words: Callable[[], CommandWords | None] = _no_words
        """A live transcription for the next command, for judging its pauses (None: none to be had)."""
        self._words: CommandWords | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.go_on: Callable[[Turn, CommandCapture], None] | None = None
        """Carries on a turn whose command, ended early, goes on (the mode starts the turn's work again
        on the capture given, which holds the whole command so far); None: a command's end is final."""
        self.may_go_on: Callable[[], bool] = lambda: True
        """Asked at a command's early end: may it still go on (else its end is final)?"""
        self._after: AfterEarlyEnd | None = None
        """A command ended early whose speaker may still go on."""

    @property
    def capturing(self) -> bool:
        return self.capture is not None

    @property
    def wants_speech(self) -> bool:
        """The speech probability of each frame is needed: a command is being heard, or may go on."""
        return self.capture is not None or self._after is not None

    @property
    def idle(self) -> bool:
        return self.turn is None

    @property
    def working(self) -> bool:
        """The turn's work (given to :meth:`run`) is under way."""
        return self._work is not None and not self._work.done()

    def begin(self, wake_word: str | None) -> tuple[Turn, CommandCapture]:
        """A new turn, listening for its command; cuts off the turn or sound under way (barge-in)."""
        if wake_word is not None:
            _LOGGER.info("Heard %s", wake_word)
        if self.turn is not None or self.player.busy:
            _LOGGER.info("Barge-in: %s heard while answering; stopping the answer", wake_word)
            self.interrupt(Outcome.INTERRUPTED)
        turn = Turn(mode=self.mode, wake_word=wake_word)
        self.turn = turn
        self.capture = CommandCapture(self.rules, pause_after=self.pause_after)
        if self.judge is not None and not self.mode_judges_pauses:
            self._words = self.open_words()
        self.sounds.play(self.player, "awake")
        return turn, self.capture

    def feed(self, heard: Heard) -> bool:
        """Give a frame to the command being heard (False: none is)."""
        capture = self.capture
        if capture is None:
            if self._after is not None:
                self._watch(self._after, heard)
            return False
        pauses = capture.pauses
        if self._words is not None:
            self._words.feed(heard.frame.pcm)
        end = capture.feed(heard)
        if end is not None:
            self.end_capture(end)
        elif capture.pauses != pauses and self.judge is not None and not self.mode_judges_pauses:
            words, again = (
                (self._words.at_pause(), self._words.second_hearing()) if self._words is not None else (None, None)
            )
            self.judge_pause(capture, bytes(capture.pcm), words, after=self.before_judging, again=again)
        return True

    def judge_pause(
        self,
        capture: CommandCapture,
        pcm: bytes,
        text: str | Awaitable[str | None] | None,
        after: BeforeJudging | None = None,
        again: HearAgain | None = None,
    ) -> None:
        """Judge a pause in the command being heard: ``pcm`` is its audio up to the pause, ``text`` the
        transcript of it (or its coming). If the speaker is done and has not gone on meanwhile, the
        command ends now; otherwise the long silence (the doubtful silence if the evidence against the end
        is weak) or more speech ends it; the long silence when the words come too late to judge by. With
        no transcript to be had (no STT server that transcribes at pauses), the pause cannot be judged:
        the plain silence rule ends this command.

        ``after``: the models start once the words are in and this has returned, given them (the answer
        begun at the pause has its first text, so that they do not hold that back). ``again``:
        a second hearing of the words, asked for when they end a request but not surely."""
        judge, turn = self.judge, self.turn
        if judge is None or turn is None:
            return
        pause, phrase = capture.pauses, capture.endpointer.phrase_offset
        # Until this pause is judged, the long silence ends the command (an earlier pause's verdict no longer counts).
        capture.endpointer.end_silence = judge.taking.unfinished_silence

        async def judging() -> None:
            unsure = False
            try:
                words = text if text is None or isinstance(text, str) else await text
            except LateWords:
                # The STT server is transcribing this pause but is slow (a long decode): the speaker may
                # well be hesitating, and the words cannot say otherwise in time.
                _LOGGER.info("Pause: the words came too late to judge it by; listening on")
                turn.extra.setdefault("pauses", []).append({"done": False, "reason": LATE_WORDS})
                return
            except UnsureWords as heard_unsure:
                # Whisper's words may well be wrong (a hesitation it made a whole request of, say): never the
                # end at the pause; the silence decides, shorter when the words would have ended the command.
                words, unsure = heard_unsure.text, True
            except Exception as err:
                _LOGGER.warning("No words to judge the pause by (%s): the silence decides", err or type(err).__name__)
                words = None
            # (the models wait for the answer's first text; not for unsure words: they never end the command here)
            begun = await after(words) if after is not None and not unsure else None
            try:
                verdict = await judge.judge(pcm, words, again, phrase, unsure=unsure)
            except Exception:
                _LOGGER.exception("Could not judge the pause; waiting for the long silence")
                return
            # What the pause was judged on, in the turn log: a command cut at a pause shows its words there.
            heard = {"heard": words, "command_s": round(len(pcm) / (2 * MIC_RATE), 2)} if words is not None else {}
            if phrase and verdict.sound is not None:
                heard["phrase_s"] = round(phrase / (2 * MIC_RATE), 2)  # where the phrase whose sound was judged began
            if begun is not None:
                heard["answer_begun"] = begun  # judged once the answer begun at the pause had its first text
            record = {**verdict.as_record(), **heard}
            turn.extra.setdefault("pauses", []).append(record)
            if verdict.done and verdict.again is not None and capture is self.capture and capture.pauses == pause:
                # Words that ended a request only when heard twice: a speaker who merely paused inside a
                # sentence goes on within a quarter of a second or so, often later than the verdict.
                wait = judge.taking.heard_twice_silence - capture.endpointer.silence
                if wait > 0:
                    record["waited_s"] = round(wait, 3)
                    await asyncio.sleep(wait)
            if capture is not self.capture or capture.pauses != pause:
                return  # the speaker went on and paused again: that pause has a verdict of its own
            if words is None:
                capture.endpointer.end_silence = judge.taking.fallback_silence
            elif not verdict.done:
                capture.endpointer.end_silence = judge.silence_after(verdict)
            if verdict.done and capture.paused:
                _LOGGER.info("End of turn: the speaker is done")
                record["ended"] = True  # (a verdict that came after the speaker went on ends nothing)
                self.end_capture(CommandEnd.SPOKEN, early=True)
            elif not verdict.done:
                _LOGGER.info("Pause: %s; listening on", verdict.reason)

        task = asyncio.create_task(judging(), name="end of turn")
        self._judging.add(task)
        task.add_done_callback(self._judging.discard)

    def end_capture(self, end: CommandEnd, early: bool = False) -> None:
        """The command is over: its end was heard, or something else said so (a transcript).

        When nobody spoke, the turn gives up here in direct mode; Home Assistant
        mode leaves that to Home Assistant (its speech-to-text may still hear
        something, and its answer or error follows). ``early``: ended at a pause
        judged to be its end, before the silence rule would have ended it.
        """
        capture = self.capture
        if not self._close_capture(end):
            return
        if early and capture is not None and self.go_on is not None and self.may_go_on():
            self._after = AfterEarlyEnd(capture)
        if end is CommandEnd.NOTHING_SAID:
            if self.silence_ends_turn:
                self.give_up(Outcome.NOTHING_SAID)
        elif self.done_cue:
            self.sounds.play(self.player, "done")

    def give_up(self, outcome: Outcome, error: str | None = None) -> None:
        """The turn failed: the error tone, and the turn ends with ``outcome``. But silence after an answer's
        question is no failure: nobody wanted to answer it, and the turn ends quietly (and is not logged)."""
        turn = self.turn
        if turn is None:
            return
        if turn.follow_up and turn.extra.get("end") == CommandEnd.NOTHING_SAID.value:
            _LOGGER.info("Nobody answered the question; listening for the wake word again")
            self.finish(Outcome.NO_FOLLOW_UP)
        else:
            self.sounds.play(self.player, "error")
            self.finish(outcome, error)

    def _watch(self, after: AfterEarlyEnd, heard: Heard) -> None:
        """A frame after a command's early end: has the speaker gone on while the answer is unheard?"""
        turn, playback = self.turn, self.turn.answer_playback if self.turn is not None else None
        if turn is None or self.go_on is None or (playback is not None and playback.first_sound_at is not None):
            self._after = None  # the answer has begun to sound: the command is over
            return
        went_on = after.feed(heard)
        if went_on is None:
            return
        self._after = None
        if not went_on or (playback is not None and not playback.take_back()):
            return
        capture = after.capture.going_on(after.heard)
        _LOGGER.info(
            "The speaker went on after the end of the command: the answer to %r is dropped; listening on",
            turn.transcript,
        )
        turn.extra.setdefault("went_on", []).append(
            {"heard": turn.transcript, "after_s": round(len(after.heard) * FRAME_SECONDS, 2)}
        )
        turn.reset_answer()
        turn.end_of_speech_at = None
        turn.extra.pop("end", None)
        work, self._work = self._work, None
        if work is not None and not work.done():
            work.cancel()  # its connections close as it unwinds; the answer's audio was taken back
        self.capture = capture
        self.go_on(turn, capture)
        if capture.end is not None:  # the frames since the end took it to max_command
            self.end_capture(capture.end)

    def stream_words_again(self, frames: list[bytes]) -> None:
        """A command heard on after its early end, whose pauses are judged here: its words are streamed anew,
        from ``frames`` (its audio so far, as the mode sends it on: the STT server decodes it once for both)."""
        if self.judge is None or self.mode_judges_pauses or self.capture is None:
            return
        self._words = self.open_words()
        if self._words is not None:
            for pcm in frames:
                self._words.feed(pcm)

    def stop_listening(self) -> None:
        """Stop hearing the command without ending the turn (it failed; the failure is being said)."""
        self._after = None
        self._close_capture(CommandEnd.NOTHING_SAID)

    def _close_capture(self, end: CommandEnd) -> bool:
        """End the command being heard (False: none is). A command that ended early may still go on: Home
        Assistant's transcript of it, which comes after its end, does not change that."""
        capture, self.capture = self.capture, None
        if capture is None:
            return False
        self._after = None
        capture.finish(end)
        if self._words is not None:
            task = asyncio.create_task(self._words.close(), name="close the command's transcription")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            self._words = None
        if self.turn is not None:
            self.turn.end_of_speech_at = capture.ended_at
            self.turn.last_voice_at = capture.last_voice_at
            self.turn.extra["end"] = end.value
        self.on_capture_end(end)
        return True

    def run(self, work: Coroutine[Any, Any, Outcome]) -> None:
        """Do the turn's work; the turn ends with it, with the outcome it returns."""
        turn = self.turn
        task = asyncio.create_task(work, name=f"{self.mode} turn")
        self._work = task

        def done(task: asyncio.Task[Outcome]) -> None:
            if task.cancelled():
                return  # the turn was ended from outside (an interrupt) and is logged already
            error = task.exception()
            if self.turn is not turn:
                return  # ended from outside while its work was finishing
            if error is not None:
                _LOGGER.error("The turn failed unexpectedly", exc_info=error)
                self.finish(Outcome.FAILED)
            else:
                self.finish(task.result())

        task.add_done_callback(done)

    def interrupt(self, outcome: Outcome) -> None:
        """Stop everything at once: the speaker goes quiet, the turn's work is cancelled (its connections
        close), the rest of an answer still arriving is dropped, and the turn ends with ``outcome``."""
        self.player.stop()
        self.on_interrupt()
        known = self.turn is not None and self.turn.outcome is not Outcome.ANSWERED
        self.finish(None if known else outcome)  # a failure being said stays the outcome

    def finish(self, outcome: Outcome | None = None, error: str | None = None) -> None:
        """The turn is over (with ``outcome``, or the one it has): its command and work are stopped, it is
        logged, and if its answer was heard in full and asked something back, the user is heard again."""
        turn = self.turn
        if turn is None:
            return
        self._after = None
        self._close_capture(CommandEnd.NOTHING_SAID)
        self.turn = None
        work, self._work = self._work, None
        if work is not None and not work.done():
            work.cancel()
        if outcome is not None:
            turn.outcome = outcome
        if error is not None:
            turn.error = error
        if turn.outcome is not Outcome.NO_FOLLOW_UP:  # silence after a question is no turn of its own
            self.turn_log.write(turn)
        if self.follow_up and turn.asks_back() and self.may_follow_up():
            _LOGGER.info("The answer asked a question: listening again without the wake word")
            self.listen_again()

    async def close(self) -> None:
        """End the turn under way (the satellite is stopping) and wait briefly for its work to unwind."""
        work = self._work
        for task in self._judging:
            task.cancel()
        if self.turn is not None:
            self.interrupt(Outcome.STOPPED)
        if work is not None and not work.done():
            await asyncio.wait({work}, timeout=2.0)  # its connections close as it unwinds
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=1.0)

"""The semantic end of turn: at a short pause, decide from the sound and the words whether the speaker is done.

A fixed silence fails both ways: a speaker who hesitates ("What is the ... boiling point") is cut
off, and one who is done waits the whole silence. At a pause of ``pause`` seconds the judge asks

* the acoustic model (:mod:`satellite.smart_turn`) whether the speaker *sounds* finished; it is
  used as a veto: a speaker trailing off ("um", "and ...") scores near zero, but it also takes
  many mid-sentence pauses for ends, so it never decides alone. It hears the command's last phrase
  (the speech since its last silence of 0.3 s or more, :data:`satellite.speech.PHRASE_BREAK`), not
  the whole command: after a hesitation ("How far is it to the ... train station?") it took a third
  of the true ends heard whole for unfinished, and hardly any heard as a phrase; a trailing "um" is
  still unfinished either way;
* the words up to the pause (Chatty's STT server's transcript of the command streamed to it): a
  rule on the last word ("the", "of", "um" cannot end a request) and a small language model's
  probability that the request ends there (:mod:`satellite.turn_text`).

Both must say "done" for the command to end at the pause. The words are judged first and the sound
only when they end a request (most pauses inside a command end on words that do not): one model
after the other rather than both at once, the language model on both cores, gives the verdict sooner
and costs less. Words that end a request but not surely (a probability under ``sure_words``) are
heard a second time: the STT server decodes the same speech with less silence around it (asked for
as soon as the words are judged, so that it decodes while the acoustic model listens). Whisper
turns a sentence cut off at a pause into a whole one in a way that changes with that silence ("What
time does the bakery ..." heard as "What time does the maker eat?", then "... the maker it?"), a
whole sentence much less: both hearings must end a request, and such words end the command no sooner
than ``heard_twice_silence`` into the pause (a speaker's own short gap inside a sentence, after words
that could end one, is longer than the judging takes). Otherwise the command ends after
``unfinished_silence`` (the long silence), or at ``max_command`` at the latest; but when the only
evidence against the end is weak (words that may well end a request, at least ``doubtful_words``, or a
sound just short of finished, at least ``doubtful_sound``, after words that end one), after the
shorter ``doubtful_silence``: a whole question Whisper half-mishears, one the language model finds
surprising ("What is the largest planet?" 0.003), or a command in a voice Smart Turn hears as trailing
off, is not kept waiting the whole long silence, while a
hesitation of up to a second still is not cut off. Words Whisper is unsure of never end the command at
the pause: judged as if sure, when they would end it (or be only doubtful)
``unsure_silence`` does, otherwise the long silence. With no transcript to be had, the pause is not
judged and ``fallback_silence`` (the plain silence rule) ends the command. The models run only at
pauses, once the words are in (not while the STT server decodes them), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from wyoming_chatty_stt.client import LateWords, UnsureWords

from .smart_turn import SmartTurn
from .turn_text import TextTurnModel, unfinished

_LOGGER = logging.getLogger(__name__)


LATE_WORDS = "the words came too late"  # the reason of a pause whose words came too late to judge it by
UNSURE_WORDS = "Whisper is unsure of the words"  # the reason of a pause whose words may well be wrong

HearAgain = Callable[[], Awaitable[str | None]]
"""A second hearing of a pause's words (:meth:`satellite.command_words.CommandWords.second_hearing`)."""


class EndOfTurn(StrEnum):
    """How the end of a spoken command is decided."""

    SMART = "smart"
    """Judged at a short pause from the sound and the words; a long silence when they say "not yet"."""
    SILENCE = "silence"
    """A fixed silence (``--end-silence``), as before."""


@dataclass(frozen=True)
class TurnTaking:
    """The settings of the smart end of turn (seconds and probabilities)."""

    pause: float = 0.1
    """The silence after which the turn is judged."""
    unfinished_silence: float = 1.5
    """The silence that ends a command judged unfinished."""
    doubtful_silence: float = 1.3
    """The silence that ends a command judged unfinished on weak evidence only (never longer than
    ``unfinished_silence``)."""
    fallback_silence: float = 0.6
    """The silence that ends a command whose pause could not be judged (no transcript to be had)."""
    sound_threshold: float = 0.04
    """The acoustic model's probability below which the speaker sounds unfinished."""
    words_threshold: float = 0.06
    """The language model's probability below which the words are unfinished."""
    sure_words: float = 0.3
    """The language model's probability from which the words need no second hearing."""
    heard_twice_silence: float = 0.35
    """The least silence that ends a command whose words ended a request only when heard twice: a
    speaker's own short gap inside a sentence ("Turn on the lamp | in the living room", 0.23 s) is
    longer than judging it takes."""
    doubtful_words: float = 0.001
    """The language model's probability from which words that do not end a request are only doubtful."""
    doubtful_sound: float = 0.008
    """The acoustic model's probability from which a sound that is unfinished (after words that end a
    request) is only doubtful."""
    unsure_silence: float = 1.3
    """The silence that ends a command whose words at the pause Whisper is unsure of, when they would end
    it (or be only doubtful) were Whisper sure of them; other unsure words wait the long silence (never
    longer than ``unfinished_silence``)."""


@dataclass(frozen=True)
class Judgement:
    """What the judge made of one pause."""

    done: bool
    sound: float | None
    """The acoustic model's probability; None when the words alone decided."""
    words: float | None
    """The language model's probability; None when there was no transcript to judge."""
    reason: str
    again: str | None = None
    """The words of a second hearing, when there was one."""
    again_words: float | None = None
    """The language model's probability for them."""
    doubtful: bool = False
    """Not done, but on weak evidence only: the doubtful silence, not the long one, ends the command."""
    unsure: bool = False
    """Whisper was unsure of the words (of the second hearing, if that was): never done; when ``doubtful``, the
    unsure words' silence ends the command."""

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {"done": self.done, "reason": self.reason}
        if self.doubtful:
            record["doubtful"] = True
        if self.unsure:
            record["unsure"] = True
        if self.sound is not None:
            record["sound"] = round(self.sound, 3)
        if self.words is not None:
            record["words"] = round(self.words, 4)
        if self.again is not None:
            record["again"] = self.again
        if self.again_words is not None:
            record["again_words"] = round(self.again_words, 4)
        return record


class TurnJudge:
    """Judges pauses with the acoustic model and, given a transcript, the words. Models load once."""

    def __init__(
        self,
        taking: TurnTaking,
        *,
        sound_model: Path | None = None,
        words_model: Path | None = None,
    ) -> None:
        self.taking = taking
        self.language: str | None = None
        """The language spoken (None: not known, taken as English): the rule on the last word is English."""
        self._sound = SmartTurn(sound_model)
        self._words = TextTurnModel(words_model)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="end of turn")

    def warm_up(self) -> None:
        """Run each model once (the first call is slow); blocking."""
        self._sound.complete(np.zeros(16000, dtype=np.float32))
        self._words.complete("what time is it")

    def unfinished(self, text: str) -> bool:
        """Words that plainly go on ("what is the"), by the rule on the last word in :attr:`language`."""
        return unfinished(text, self.language)

    async def judge(
        self, pcm: bytes, text: str | None, again: HearAgain | None = None, phrase: int = 0, *, unsure: bool = False
    ) -> Judgement:
        """The verdict at a pause: ``pcm`` the command's audio so far (16 kHz, 16-bit mono), ``text`` its
        transcript (None: none to be had), ``again`` a second hearing of it (None: the first decides),
        ``phrase`` where in ``pcm`` its last phrase begins (bytes): the sound is judged on that phrase.

        ``unsure``: Whisper is unsure of the words. They may well be wrong (a hesitation Whisper made a whole
        request of), so they never end the command at the pause; but they are judged as if sure, and are only
        doubtful when they would end it, or be unfinished on weak evidence only."""
        verdict = await self._verdict(pcm[phrase:] if 0 < phrase < len(pcm) else pcm, text, None if unsure else again)
        if unsure:
            doubtful = verdict.done or verdict.doubtful  # ended the command, or almost, were Whisper sure
            verdict = Judgement(False, verdict.sound, verdict.words, UNSURE_WORDS, doubtful=doubtful, unsure=True)
        _LOGGER.debug("End of turn at a pause: %s (%s)", verdict.reason, verdict.as_record())
        return verdict

    async def _verdict(self, phrase: bytes, text: str | None, again: HearAgain | None) -> Judgement:
        # The models start once the words are in, not at the pause: until then the STT server is
        # decoding those words, and on a small machine everything else (the answer too) waits for them.
        if text is None:
            return Judgement(False, None, None, "no transcript: the silence decides")
        if self.unfinished(text):
            return Judgement(False, None, 0.0, "the words are unfinished")
        loop = asyncio.get_running_loop()
        words = await loop.run_in_executor(self._thread, self._words.complete, text, self.language)
        taking = self.taking
        if words < taking.words_threshold:
            doubtful = words >= taking.doubtful_words
            return Judgement(False, None, words, "the words do not end a request", doubtful=doubtful)
        # Words that end a request but not surely are heard a second time: asked for now, so that the STT
        # server decodes them while the acoustic model listens, rather than after it.
        hearing = asyncio.ensure_future(again()) if words < taking.sure_words and again is not None else None
        try:
            audio = np.frombuffer(phrase, dtype="<i2").astype(np.float32) / 32768.0
            sound = await loop.run_in_executor(self._thread, self._sound.complete, audio)
        except BaseException:
            _drop(hearing)
            raise
        if sound < taking.sound_threshold:
            _drop(hearing)
            doubtful = sound >= taking.doubtful_sound
            return Judgement(False, sound, words, "the speaker sounds unfinished", doubtful=doubtful)
        if hearing is not None:
            return await self._second_hearing(sound, words, hearing)
        return Judgement(True, sound, words, "finished")

    async def _second_hearing(self, sound: float, words: float, hearing: asyncio.Future[str | None]) -> Judgement:
        """The words end a request, but not surely: they must do so when heard a second time."""
        try:
            heard = await hearing
        except LateWords:
            return Judgement(False, sound, words, "the second hearing came too late")
        except UnsureWords as unsure:  # the first hearing ended a request, and it sounded finished
            return Judgement(
                False, sound, words, "heard again, the words are unsure", unsure.text, doubtful=True, unsure=True
            )
        except Exception as err:  # the connection failed: the transcript will say so; no verdict on the way
            _LOGGER.warning("No second hearing of the pause (%s)", err or type(err).__name__)
            return Judgement(False, sound, words, "no second hearing")
        if heard is None:  # the server does not transcribe at pauses: the first hearing decides
            return Judgement(True, sound, words, "finished")
        second = 0.0 if self.unfinished(heard) else await asyncio.get_running_loop().run_in_executor(
            self._thread, self._words.complete, heard, self.language
        )  # fmt: skip
        if second < self.taking.words_threshold:
            return Judgement(False, sound, words, "heard again, the words do not end a request", heard, second)
        return Judgement(True, sound, words, "finished (heard twice)", heard, second)

    def silence_after(self, verdict: Judgement) -> float:
        """The silence that ends the command after a verdict that the speaker is not done."""
        if verdict.doubtful:
            silence = self.taking.unsure_silence if verdict.unsure else self.taking.doubtful_silence
            return min(silence, self.taking.unfinished_silence)
        return self.taking.unfinished_silence

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._words.close()


def _drop(hearing: asyncio.Future[str | None] | None) -> None:
    """A second hearing no longer needed: stop waiting for it (the server's words, if they come, are ignored)."""
    if hearing is not None:
        hearing.cancel()
        hearing.add_done_callback(lambda done: done.cancelled() or done.exception())

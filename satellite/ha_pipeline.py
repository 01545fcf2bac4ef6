"""Home Assistant's pipeline run as the satellite sees it: a command started while the last run may still be
going is held back until that run is over.

Home Assistant (2025.4 to 2026.2, ``components/wyoming/assist_satellite.py``) starts a run for each
``run-pipeline`` and cancels the run under way; but the cancelled run's end (``RUN_END``) clears the flag
that lets microphone audio in, after the new run has set it. So a command started while the last run is
still writing its answer (a barge-in while the answer streams, say) never reaches Home Assistant's
speech-to-text, and the run waits for audio until the satellite disconnects. The run is over once its
speech has begun: ``synthesize`` (its text-to-speech stage, after the whole answer is written) and the
answer's ``audio-start`` (2025.4 sends it at the stage's end), or an ``error``. Until then, a new
command's events are kept, and sent (with all the audio heard meanwhile) a moment after it is over.

A run whose answer has no words (Home Assistant's own "never mind" intent) ends without a word to the
satellite: no speech, no ``error``, and ``RUN_END`` is not sent. So a run that has sent nothing for
:data:`QUIET_RUN_OVER` seconds is taken to be over (unless its agent, Chatty's, says it is still writing the
answer: Home Assistant 2025.4 sends nothing until the whole answer is written): the turn waiting for its
answer ends, and a command started after that goes at once, instead of being held back as if the run were
still going. A run whose request Home Assistant answers itself without speech (its "never mind" in the
pipeline's language, :data:`ANSWERED_WITHOUT_SPEECH`) is taken to be over sooner, after
:data:`SPEECHLESS_RUN_OVER` seconds, when Chatty's LLM server is known and is not writing an answer to it (the
agent is then Chatty's, which would be seen answering the request had Home Assistant not handled it): Home
Assistant handles its own intent at once, and a command started meanwhile (the speaker changed their mind,
then asked) was held up to 20 s. With another agent, which may think for longer than that before it answers,
the long quiet still decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from wyoming.asr import Transcript
from wyoming.audio import AudioStart
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import Synthesize

from .turn_text import language_code, words

_LOGGER = logging.getLogger(__name__)

AFTER_RUN_END = 0.3  # s after the run is seen to be over before a held command goes (its end is processed)
# s after a run's last event (or the satellite's last audio to it) when it is taken to be over: Home Assistant
# says nothing at the end of a run without speech. Long, because an agent (an LLM reading many entities on a
# CPU) may think that long before it writes a word, and a command sent while the run goes on is lost.
QUIET_RUN_OVER = 20.0
# s after the transcript of a request answered without speech when its run is taken to be over: after Chatty's
# integration has dropped a speculative answer to it (2 s after the transcript), which the LLM server would
# otherwise be seen writing.
SPEECHLESS_RUN_OVER = 2.5
# Requests Home Assistant's own intents answer without speech: HassNevermind's sentences (home-assistant/intents
# as in Home Assistant 2026.2.3), in lower case without punctuation, by language.
ANSWERED_WITHOUT_SPEECH = {
    "en": frozenset({"never mind", "nevermind"}),
    "de": frozenset({"vergiss es", "alles gut", "alles ok", "das hast du falsch verstanden", "nicht du", "egal",
                     "abbrechen", "abbruch", "nicht", "nichts", "nix", "doch nicht", "doch nichts", "doch nix"}),
    "fr": frozenset({"oublie", "oublies", "annule", "annuler", "rien", "non rien", "rien du tout", "non rien du tout",
                     "chut", "tais toi", "silence"}),
    "es": frozenset({"cancela", "cancelar", "no haga caso", "no hagas caso", "no importa", "olvidalo", "olvídalo",
                     "déjalo", "déjala", "déjalo ya", "déjala ya", "nada", "da igual"}),
    "it": frozenset({"lascia stare", "lascia perdere", "niente", "no"}),
    "pt": frozenset({"esquece", "deixa lá", "cancela", "cancelar", "nada"}),
    "nl": frozenset({"laat maar", "laat maar zitten", "annuleer"}),
}  # fmt: skip
# What Home Assistant sends a satellite during a run (``components/wyoming/assist_satellite.py``).
RUN_EVENTS = frozenset(
    {"transcript", "voice-started", "voice-stopped", "synthesize", "audio-start", "audio-chunk", "audio-stop", "error"}
)


class PipelineGate:
    """Sends a command's events to Home Assistant (``send``), holding them while its last run may be going.

    ``went_quiet`` is called when a run is taken to be over because it has sent nothing for a while;
    ``still_going`` is asked first whether the run's answer is still being written (then it is not over).
    With ``agent_known`` (is the run's agent known to be Chatty's, whose writing ``still_going`` sees?), a run
    whose transcript Home Assistant answers without speech is taken to be over after a short quiet.
    """

    def __init__(
        self,
        send: Callable[[Event], None],
        went_quiet: Callable[[], None] | None = None,
        still_going: Callable[[], Awaitable[bool]] | None = None,
        agent_known: Callable[[], bool] | None = None,
    ) -> None:
        self._send = send
        self._went_quiet = went_quiet
        self._still_going = still_going
        self._agent_known = agent_known
        self._speechless = False  # the run's request is one Home Assistant answers without speech
        self.language: str | None = None
        """The language of Home Assistant's pipeline (None: not known, taken as English)."""
        self._asking: asyncio.Task[None] | None = None
        self._running = False
        self._speaking = self._audio = False  # seen of the run Home Assistant runs: synthesize, audio-start
        self._held: list[Event] | None = None
        self._release: asyncio.TimerHandle | None = None
        self._last_sign = 0.0  # when the run last showed it is going (monotonic)
        self._quiet: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        """A command is held back (Home Assistant's events now belong to the last run)."""
        return self._held is not None

    def start_run(self, events: list[Event]) -> None:
        """A new command: ``run-pipeline`` and what goes with it; held if the last run may still be going."""
        self._held = None  # a held command cut off by another one never reaches Home Assistant
        if self._running:
            _LOGGER.info("Home Assistant is still finishing the last answer: the command waits for it")
            self._held = list(events)
            if self._speechless:  # its agent, if it writes an answer after all, is asked to stop: time to speak
                self._last_sign = time.monotonic()
        else:
            self._begin(events)

    def send(self, event: Event) -> None:
        """An event of the command under way (its audio, its end)."""
        if self._held is not None:
            self._held.append(event)
        else:
            self._send(event)
            self._last_sign = time.monotonic()

    def on_event(self, event: Event) -> None:
        """An event from Home Assistant: does it show that the last run is over?"""
        if not self._running or event.type not in RUN_EVENTS:
            return
        self._last_sign = time.monotonic()
        if Transcript.is_type(event.type) and self._answered_without_speech(Transcript.from_event(event).text):
            _LOGGER.debug("Home Assistant answers %r without speech: its run is over once quiet a moment",
                          event.data.get("text"))  # fmt: skip
            self._speechless = True
            self._watch_quiet()
        elif Synthesize.is_type(event.type):
            self._speaking = True
        elif AudioStart.is_type(event.type):
            self._audio = True
        if Error.is_type(event.type) or (self._speaking and self._audio):
            self._over()

    def reset(self) -> None:
        """Home Assistant went away or paused the satellite: no run goes on, and nothing is held."""
        self._running = False
        self._held = None
        self._cancel_release()
        self._stop_watching()

    def _begin(self, events: list[Event]) -> None:
        for event in events:
            self._send(event)
        self._running = True
        self._speaking = self._audio = False
        self._last_sign = time.monotonic()
        self._speechless = False
        self._watch_quiet()

    def _answered_without_speech(self, transcript: str) -> bool:
        if self._still_going is None or self._agent_known is None or not self._agent_known():
            return False  # another agent may answer it, after thinking for longer than this
        language = language_code(self.language or "en")
        return " ".join(words(transcript)) in ANSWERED_WITHOUT_SPEECH.get(language, frozenset())

    def _quiet_over_after(self) -> float:
        """The quiet that ends the run (s)."""
        return SPEECHLESS_RUN_OVER if self._speechless else QUIET_RUN_OVER

    def _watch_quiet(self) -> None:
        """Take the run to be over once it has said nothing for long enough."""
        self._stop_watching()
        left = self._last_sign + self._quiet_over_after() - time.monotonic()
        self._quiet = asyncio.get_running_loop().call_later(max(left, 0.0), self._check_quiet)

    def _check_quiet(self) -> None:
        """Has the run said nothing for long enough? Then it is over."""
        left = self._last_sign + self._quiet_over_after() - time.monotonic()
        if left > 0:
            self._quiet = asyncio.get_running_loop().call_later(left, self._check_quiet)
            return
        self._quiet = None
        if self._still_going is None:
            self._quiet_over()
        else:
            self._asking = asyncio.create_task(self._ask_still_going(self._still_going), name="is the run going")

    async def _ask_still_going(self, still_going: Callable[[], Awaitable[bool]]) -> None:
        going = await still_going()
        self._asking = None
        if not self._running:
            return
        if going:
            _LOGGER.debug("Home Assistant's run is quiet, but its answer is still being written")
            self._last_sign = time.monotonic()
            self._watch_quiet()  # (a speechless request's: asked again soon)
        else:
            self._quiet_over()

    def _quiet_over(self) -> None:
        _LOGGER.info(
            "Home Assistant's run has sent nothing for %.1f s: taken to be over (an answer without speech)",
            self._quiet_over_after(),
        )
        self._over()
        if self._went_quiet is not None and self._held is None:
            self._went_quiet()

    def _stop_watching(self) -> None:
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        if self._asking is not None:
            self._asking.cancel()
            self._asking = None

    def _over(self) -> None:
        self._running = False
        self._stop_watching()
        if self._held is not None:
            self._schedule(AFTER_RUN_END)

    def _schedule(self, delay: float) -> None:
        self._cancel_release()
        self._release = asyncio.get_running_loop().call_later(delay, self._flush)

    def _cancel_release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def _flush(self) -> None:
        """The last run is over: the held command goes, and goes on live."""
        self._release = None
        held, self._held = self._held, None
        if held is None:
            return
        _LOGGER.info("Home Assistant's last run is over: sending the command (%d events held)", len(held))
        self._begin(held)

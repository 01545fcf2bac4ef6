"""Home Assistant's timers on this satellite: kept while they run, rung here when they finish."""

from __future__ import annotations

import asyncio
import logging

from wyoming.event import Event
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted, TimerUpdated

from .player import Player
from .sounds import Sounds

_LOGGER = logging.getLogger(__name__)

TIMER_RINGS = 5  # a finished timer rings this many times unless the wake word stops it


class Timers:
    """The timers Home Assistant started for this satellite; a finished one rings until the wake word."""

    def __init__(self, player: Player, sounds: Sounds) -> None:
        self.player = player
        self.sounds = sounds
        self._timers: dict[str, TimerStarted] = {}
        self._ringing: asyncio.Task[None] | None = None

    def on_event(self, event: Event) -> bool:
        """Take a timer event (False: it is not one)."""
        if TimerStarted.is_type(event.type):
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
        else:
            return False
        return True

    @property
    def ringing(self) -> bool:
        return self._ringing is not None and not self._ringing.done()

    def stop_ringing(self) -> None:
        if self._ringing is not None and not self._ringing.done():
            _LOGGER.info("Timer ringing stopped by the wake word")
            self._ringing.cancel()
            self.player.stop()

    def _ring(self) -> None:
        pcm = self.sounds.get("timer")
        if self.ringing or not pcm:
            return

        async def ring() -> None:
            for _ in range(TIMER_RINGS):
                await self.player.play(pcm, self.sounds.rate)
                await asyncio.sleep(0.5)

        self._ringing = asyncio.create_task(ring(), name="timer ringing")

    def close(self) -> None:
        if self._ringing is not None:
            self._ringing.cancel()

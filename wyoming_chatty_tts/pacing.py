"""Pieces sized so the listener never waits between them: how fast this server speaks, how much audio is left to hear.

Once a stream's first piece sounds, the next must be ready before the audio sent so far has played.
On a slow CPU a whole sentence after a short first piece is not: the listener heard "The capital
of", then 0.6 s of silence, then "the United States is New York City." (half the answers of the
end-to-end benchmark stalled so, for up to 1.7 s). So the server keeps track of both sides: the
audio a stream's listener has not heard yet (:class:`ListenerClock`, as if it played from the first
chunk on, without a break), and the seconds of synthesis a piece of text takes here, now
(:class:`SynthesisSpeed`, per phoneme: "1,832,000" is short text and long speech). A piece that
would not be ready in time is cut at a phrase break into one that is, and a stream whose text is
still coming gets the words it has when waiting for the sentence's end would leave the listener in
silence.
"""

from __future__ import annotations

import time

MARGIN = 0.15  # s of audio the listener should still have when the next piece is ready
OVERHEAD = 20  # what every model call costs beside its text, in phonemes (Kokoro pads each call)
FIRST_GUESS = 0.025  # s of synthesis per phoneme before anything was measured (a slow CPU)
LEARNING = 0.3  # weight of the latest piece in the running estimate


class SynthesisSpeed:
    """Seconds of synthesis per phoneme of text on this server, timed at start-up and learned from the pieces it makes.

    One per server: its connections share the CPU, so the latest pieces of any of them say best how
    long the next will take (with the LLM writing and the STT decoding beside it, or not).
    """

    def __init__(self, per_phoneme: float = FIRST_GUESS) -> None:
        self.per_phoneme = per_phoneme

    @classmethod
    def timed(cls, length: int, seconds: float) -> SynthesisSpeed:
        """The speed of one synthesis of ``length`` phonemes that took ``seconds`` (the server's warm-up)."""
        return cls(seconds / (length + OVERHEAD)) if seconds > 0 else cls()

    def seconds(self, length: int) -> float:
        """How long text of ``length`` phonemes takes to synthesize."""
        return self.per_phoneme * (length + OVERHEAD)

    def length_within(self, seconds: float) -> int:
        """The most phonemes that can be synthesized in ``seconds`` (0 when not even a model call fits)."""
        return max(0, int(seconds / self.per_phoneme) - OVERHEAD)

    def record(self, length: int, seconds: float) -> None:
        """A piece of ``length`` phonemes took ``seconds`` to synthesize."""
        if length > 0 and seconds > 0:
            measured = seconds / (length + OVERHEAD)
            self.per_phoneme += LEARNING * (measured - self.per_phoneme)


class ListenerClock:
    """The audio of one stream that its listener has not heard yet, assuming playback from the first chunk on.

    A client that starts playing later (a satellite holding a prepared answer until the speaker is
    judged done) has more left than this says, so the pieces come a little earlier than needed, never
    later.
    """

    def __init__(self) -> None:
        self._heard_by: float | None = None  # when the listener will have heard all the audio sent

    @property
    def started(self) -> bool:
        """Has any audio been sent?"""
        return self._heard_by is not None

    def sent(self, seconds: float) -> None:
        now = time.monotonic()
        self._heard_by = max(now, self._heard_by or now) + seconds

    def left(self) -> float:
        """Seconds of audio sent and not yet heard."""
        if self._heard_by is None:
            return 0.0
        return max(0.0, self._heard_by - time.monotonic())

    def budget(self) -> float:
        """Seconds that synthesis may take for the next piece to be ready in time."""
        return self.left() - MARGIN

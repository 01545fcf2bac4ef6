"""What the satellite tells Home Assistant about itself (``info``): its wake words, microphone and speaker."""

from __future__ import annotations

from wyoming.audio import AudioFormat
from wyoming.info import Attribution, Info, MicProgram, Satellite, SndProgram, WakeModel, WakeProgram

from chatty_common import __version__

from .audio_io import MIC_FORMAT
from .wake import WakeWord

CHATTY = Attribution(name="Chatty", url="https://www.home-assistant.io/integrations/wyoming/")


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
                mic_format=AudioFormat(rate=MIC_FORMAT.rate, width=MIC_FORMAT.width, channels=MIC_FORMAT.channels),
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

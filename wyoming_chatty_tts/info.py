"""The ``info`` the TTS server answers ``describe`` with."""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from chatty_common import __version__

from .catalog import own_language
from .library import VoiceLibrary
from .voices import describe_voice

PROGRAM_NAME = "chatty-kokoro"
KOKORO = Attribution(name="hexgrad", url="https://huggingface.co/hexgrad/Kokoro-82M")


def voice_languages(espeak_language: str) -> list[str]:
    """Languages a voice is listed under: what the server speaks (its G2P), e.g. en-us → en, en_US."""
    base, _, region = espeak_language.partition("-")
    return [base, f"{base}_{region.upper()}"] if region else [base]


def build_info(voices: VoiceLibrary, espeak_language: str) -> Info:
    """What the server offers now: the voices it has, and those it would fetch when asked (``installed: false``)."""

    def voice(name: str, installed: bool) -> TtsVoice:
        language = voices.bank.language(name) or own_language(name) or espeak_language
        return TtsVoice(
            name=name,
            description=describe_voice(name),
            attribution=KOKORO,
            installed=installed,
            version=None,
            languages=voice_languages(language),
        )

    return Info(
        tts=[
            TtsProgram(
                name=PROGRAM_NAME,
                description="Chatty streaming text-to-speech (Kokoro-82M)",
                attribution=KOKORO,
                installed=True,
                version=__version__,
                supports_synthesize_streaming=True,
                voices=[voice(name, True) for name in voices.bank.names]
                + [voice(name, False) for name in voices.fetchable()],
            )
        ]
    )

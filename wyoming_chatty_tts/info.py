"""The ``info`` the TTS server answers ``describe`` with."""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from chatty_common import __version__

from .voices import VoiceBank, describe_voice

PROGRAM_NAME = "chatty-kokoro"
KOKORO = Attribution(name="hexgrad", url="https://huggingface.co/hexgrad/Kokoro-82M")


def voice_languages(espeak_language: str) -> list[str]:
    """Languages a voice is listed under: what the server speaks (its G2P), e.g. en-us → en, en_US."""
    base, _, region = espeak_language.partition("-")
    return [base, f"{base}_{region.upper()}"] if region else [base]


def build_info(voices: VoiceBank, espeak_language: str) -> Info:
    languages = voice_languages(espeak_language)
    return Info(
        tts=[
            TtsProgram(
                name=PROGRAM_NAME,
                description="Chatty streaming text-to-speech (Kokoro-82M)",
                attribution=KOKORO,
                installed=True,
                version=__version__,
                supports_synthesize_streaming=True,
                voices=[
                    TtsVoice(
                        name=name,
                        description=describe_voice(name),
                        attribution=KOKORO,
                        installed=True,
                        version=None,
                        languages=languages,
                    )
                    for name in voices.names
                ],
            )
        ]
    )

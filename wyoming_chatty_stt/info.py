"""The ``info`` the STT server answers ``describe`` with."""

from __future__ import annotations

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from chatty_common import __version__

from .transcriber import Transcriber

PROGRAM_NAME = "chatty-whisper"


def build_info(transcriber: Transcriber, compute_type: str) -> Info:
    source = transcriber.source
    return Info(
        asr=[
            AsrProgram(
                name=PROGRAM_NAME,
                description="Chatty streaming speech-to-text (faster-whisper)",
                attribution=Attribution(name="Chatty", url="https://github.com/SYSTRAN/faster-whisper"),
                installed=True,
                version=__version__,
                supports_transcript_streaming=True,
                models=[
                    AsrModel(
                        name=source.name,
                        description=f"Whisper {source.name} ({compute_type}, {source.origin})",
                        attribution=Attribution(name="OpenAI", url="https://github.com/openai/whisper"),
                        installed=True,
                        version=None,
                        languages=list(transcriber.languages),
                    )
                ],
            )
        ]
    )

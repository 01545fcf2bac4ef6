"""The ``info`` the LLM server answers ``describe`` with: one handle program, one model."""

from __future__ import annotations

from wyoming.info import Attribution, HandleModel, HandleProgram, Info

from chatty_common import __version__

from .config import Config

PROGRAM_NAME = "chatty-llm"
BACKEND_ATTRIBUTION = {
    "llama_cpp": Attribution(name="llama.cpp", url="https://github.com/ggml-org/llama.cpp"),
    "ollama": Attribution(name="Ollama", url="https://ollama.com"),
    "openai": Attribution(name="OpenAI-compatible API", url="https://platform.openai.com/docs/api-reference/chat"),
}
BACKEND_TITLE = {"llama_cpp": "llama.cpp", "ollama": "Ollama", "openai": "OpenAI API"}


def build_info(config: Config) -> Info:
    # Home Assistant reads an empty language list as "no languages": the config never allows one.
    return Info(
        handle=[
            HandleProgram(
                name=PROGRAM_NAME,
                description="Chatty LLM conversation agent (streams the answer as it is written)",
                attribution=BACKEND_ATTRIBUTION[config.backend],
                installed=True,
                version=__version__,
                supports_handled_streaming=True,
                models=[
                    HandleModel(
                        name=config.model_name,
                        description=f"{config.model_name} via {BACKEND_TITLE[config.backend]}",
                        attribution=BACKEND_ATTRIBUTION[config.backend],
                        installed=True,
                        version=None,
                        languages=list(config.languages),
                    )
                ],
            )
        ]
    )

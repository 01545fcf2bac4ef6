"""Constants of the Chatty integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "chatty"

# The name our LLM server's handle program has in its info; discovery offers only these.
AGENT_PROGRAM: Final = "chatty-llm"

CONF_PROMPT: Final = "prompt"

# Seconds to open a connection and get ``info``; a service slower than this is "cannot connect".
DESCRIBE_TIMEOUT: Final = 5.0
# Seconds without any event from the agent before a turn is given up (the server has its own,
# shorter timeouts and then says so; this only catches a server that hangs).
ANSWER_TIMEOUT: Final = 90.0
# Seconds without audio from the text-to-speech service before the audio stream is given up.
AUDIO_TIMEOUT: Final = 60.0

# What the user hears when the agent cannot be reached or breaks off without a sentence of its own.
UNREACHABLE_SPEECH: Final = "Sorry, I can't reach the Chatty assistant right now."
LOST_SPEECH: Final = "Sorry, I lost the connection to the Chatty assistant."
# Seconds from the end of the audio to the transcript before speech-to-text is given up.
TRANSCRIPT_TIMEOUT: Final = 30.0

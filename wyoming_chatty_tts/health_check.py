"""``python -m wyoming_chatty_tts.health_check``: exit 0 if the TTS server answers ``describe``."""

import sys

from chatty_common.health_check import main

if __name__ == "__main__":
    sys.exit(
        main(
            "tcp://127.0.0.1:10200",
            lambda info: any(program.installed and program.voices for program in info.tts),
            "text-to-speech",
        )
    )

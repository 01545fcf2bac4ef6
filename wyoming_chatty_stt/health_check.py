"""``python -m wyoming_chatty_stt.health_check``: exit 0 if the STT server answers ``describe``."""

import sys

from chatty_common.health_check import main

if __name__ == "__main__":
    sys.exit(
        main(
            "tcp://127.0.0.1:10300",
            lambda info: any(program.installed for program in info.asr),
            "speech-to-text",
        )
    )

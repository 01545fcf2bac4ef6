"""``python -m wyoming_chatty_llm.health_check``: exit 0 if the LLM server answers ``describe``."""

import sys

from chatty_common.health_check import main

if __name__ == "__main__":
    sys.exit(
        main(
            "tcp://127.0.0.1:10500",
            lambda info: any(program.installed and program.models for program in info.handle),
            "conversation agent",
        )
    )

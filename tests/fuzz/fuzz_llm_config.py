"""Coverage-guided fuzzing (atheris) of the LLM server's config.json reader.

Any file a user may write: the reader gives a Config or a ConfigError whose text
names the file; nothing else (the server would stop with a traceback).

    python tests/fuzz/fuzz_llm_config.py [-max_total_time=60] [CORPUS_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from wyoming_chatty_llm.config import Config, ConfigError, load_config

FOLDER = Path(tempfile.mkdtemp(prefix="fuzz-llm-config-"))
FILE = FOLDER / "config.json"


def one_input(data: bytes) -> None:
    FILE.write_bytes(data)
    try:
        config = load_config(FILE)
    except ConfigError as err:
        assert str(FILE) in str(err), err
        return
    assert isinstance(config, Config)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

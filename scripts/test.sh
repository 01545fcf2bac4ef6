#!/usr/bin/env bash
# The README's test command: install everything the tests need, lint, run the test suite.
#   scripts/test.sh [PYTEST-ARGS...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
scripts/setup_ha.sh   # real Home Assistants (2025.4.4 in .venv-ha, 2026.2.3 in .venv-ha-2026.2.3) for the tests
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy chatty_common wyoming_chatty_stt wyoming_chatty_tts wyoming_chatty_llm satellite chatty
.venv/bin/mypy --python-executable .venv-ha-2026.2.3/bin/python --python-version 3.13 custom_components/chatty
exec .venv/bin/python -m pytest "$@"

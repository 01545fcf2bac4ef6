#!/usr/bin/env bash
# The README's test command: install everything the tests need, lint, run the test suite.
#   scripts/test.sh [PYTEST-ARGS...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
scripts/setup_ha.sh   # a real Home Assistant in .venv-ha, for tests/test_home_assistant.py
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"

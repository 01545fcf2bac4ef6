#!/usr/bin/env bash
# Spoken turns through Home Assistant (2026.2.3, with and without the Chatty integration) against direct
# mode, on the same questions in the same run (needs espeak-ng; installs Home Assistant like the tests).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
scripts/setup_ha.sh
exec .venv/bin/python bench/ha_bench.py "$@"

#!/usr/bin/env bash
# Run the end-to-end benchmark: spoken turns through the satellite in direct mode (needs espeak-ng).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
exec .venv/bin/python bench/e2e_bench.py "$@"

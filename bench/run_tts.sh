#!/usr/bin/env bash
# Run the TTS benchmark (the first run assembles, rewrites and times the model: about a minute more).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
exec .venv/bin/python bench/tts_bench.py "$@"

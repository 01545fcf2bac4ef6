#!/usr/bin/env bash
# Run the LLM server benchmark: overhead over calling the same backend directly.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
exec .venv/bin/python bench/llm_bench.py "$@"

#!/usr/bin/env bash
# Run the answer benchmark: the first sound of an answer, alone and beside the end-of-turn models or the STT.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
exec .venv/bin/python bench/answer_bench.py "$@"

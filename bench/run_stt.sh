#!/usr/bin/env bash
# Run the STT benchmark. Installs the reference server (wyoming-faster-whisper 3.8.1)
# into its own virtualenv, .venv-bench-ref, the first time.
#   bench/run_stt.sh [--rounds N] [--beam-size N] [--clips DIR (bench/stt_heldout.py)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
ref=$root/.venv-bench-ref
if [ ! -x "$ref/bin/python" ] || ! "$ref/bin/python" -c "import wyoming_faster_whisper" 2>/dev/null; then
  echo "bench: installing wyoming-faster-whisper 3.8.1 into $ref"
  "$(command -v python3.11 || command -v python3)" -m venv "$ref"
  "$ref/bin/python" -m pip install --quiet -c constraints.txt "wyoming-faster-whisper==3.8.1"
fi
exec .venv/bin/python bench/stt_bench.py "$@"

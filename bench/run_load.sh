#!/usr/bin/env bash
# Load benchmark: 8 clients at once on each server (bench/load_bench.py).
#   bench/run_load.sh [--clients N] [--requests N]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
exec .venv/bin/python bench/load_bench.py "$@"

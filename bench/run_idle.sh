#!/usr/bin/env bash
# An idle satellite's CPU and memory on real PortAudio devices (a private PulseAudio daemon), per wake word engine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,stt-base,tts,llm,satellite,dev
exec .venv/bin/python bench/idle_bench.py "$@"

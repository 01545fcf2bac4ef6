#!/usr/bin/env bash
# The README's main-job command: install what the demo needs, then run it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh stt,tts,llm,satellite
exec .venv/bin/python scripts/demo.py "$@"

#!/usr/bin/env bash
# Every benchmark, then one table (bench/out/summary.json): STT vs wyoming-faster-whisper, TTS vs
# whole-text kokoro-onnx, the LLM server vs its backends called directly, and spoken turns end to end.
# About 20 minutes on 2 cores (the first run also installs the STT peer).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bench/run_stt.sh --rounds 3 --beam-size 1
bench/run_tts.sh
bench/run_llm.sh --rounds 5
bench/run_e2e.sh --rounds 2
exec .venv/bin/python bench/summary.py

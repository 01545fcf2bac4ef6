#!/usr/bin/env bash
# How long the TTS server takes to start on a data folder that an earlier start prepared: seconds to "Ready".
#   bench/tts_start_time.sh [CHECKOUT] [DATA_DIR] [ROUNDS]
# CHECKOUT (default .) is the code to start, with its .venv; DATA_DIR defaults to bench/out/tts-data (made by the
# other benchmarks). Compare two checkouts on the same DATA_DIR: the kept choice of model form is per folder.
set -euo pipefail
checkout=$(cd "${1:-.}" && pwd)
data=$(realpath "${2:-bench/out/tts-data}")
rounds=${3:-3}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for _ in $(seq "$rounds"); do
  start=$(date +%s.%N)
  (cd "$checkout" && exec .venv/bin/python -m wyoming_chatty_tts --uri tcp://127.0.0.1:0 --data-dir "$data") >"$log" 2>&1 &
  pid=$!
  until grep -aq "Ready on" "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  echo "$checkout $(echo "$(date +%s.%N) - $start" | bc) s"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done

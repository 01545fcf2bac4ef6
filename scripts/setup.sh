#!/usr/bin/env bash
# Create (or update) the project's virtualenv in .venv and install Chatty with the
# given extras, at the versions pinned in constraints.txt.
#   scripts/setup.sh [EXTRAS]        e.g. scripts/setup.sh stt,dev
# Idempotent: when pyproject.toml, constraints.txt and the extras are unchanged since
# the last run, it returns at once; otherwise pip reuses its cache.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
extras=${1:-stt}
venv=${CHATTY_VENV:-$root/.venv}

python=$(command -v python3.11 || command -v python3 || true)
if [ -z "$python" ]; then
  echo "setup: Python 3.11 is needed (python3.11 or python3 on PATH)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi

stamp="$venv/.chatty-setup"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing chatty[$extras] into $venv (first time: a few minutes)"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --progress-bar off -c constraints.txt -e ".[$extras]"
echo "$want" > "$stamp"
echo "setup: done"

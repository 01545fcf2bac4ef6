#!/usr/bin/env bash
# Install a real Home Assistant core into its own virtualenv, for the tests that run Chatty
# through Home Assistant (tests/home_assistant.py).
#   scripts/setup_ha.sh
# Environment:
#   CHATTY_HA_VENV     where the virtualenv goes (default: .venv-ha in the repository)
#   CHATTY_HA_VERSION  the homeassistant release (default 2025.4.4, the newest that runs on Python 3.13.0)
#   CHATTY_HA_PYTHON   the Python 3.13 to build the virtualenv with (default: python3.13 on PATH, else pyenv's)
# Idempotent: when the virtualenv holds this version with the integrations' requirements (a stamp file),
# it returns at once. Otherwise pip installs Home Assistant with its own package_constraints.txt (without
# them pip backtracks for minutes), then the Python requirements of every integration the tests load, so
# Home Assistant starts with --skip-pip and never installs anything at run time. pip's cache keeps the
# wheels for the next virtualenv.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CHATTY_HA_VENV:-$root/.venv-ha}
version=${CHATTY_HA_VERSION:-2025.4.4}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/chatty/home-assistant
# The integrations the tests set up, beyond those Home Assistant always loads (bootstrap's
# DEFAULT_INTEGRATIONS, which include the frontend): their requirements, and those of their
# dependencies, are installed. wyoming's platforms are listed because it sets them up itself.
integrations="onboarding api config auth websocket_api assist_pipeline conversation stt tts wake_word ffmpeg
  intent wyoming assist_satellite binary_sensor select switch number media_source media_player zeroconf network"
log() { echo "setup_ha: $*"; }
# pip install, showing only its Collecting/Building/Successfully lines, and a line every 30 s while it works.
ticker=
trap '[ -z "$ticker" ] || kill "$ticker" 2> /dev/null || true' EXIT
pip_install() {
  ( while sleep 30; do log "  still installing ($((SECONDS - started)) s)"; done ) &
  ticker=$!
  local status
  set +e
  # (Its warnings about find-links or index folders that lack a package are left out too.)
  "$venv/bin/python" -m pip install --progress-bar off -c "$constraints" "$@" \
    2> >(grep -v --line-buffered "^WARNING: Location '.*' is ignored" >&2) \
    | grep -E --line-buffered '^(Collecting|Building|Successfully)'
  status=${PIPESTATUS[0]}
  set -e
  kill "$ticker" 2> /dev/null || true
  ticker=
  return "$status"
}

# Home Assistant's tts converts audio with ffmpeg (needed); its camera helper, loaded with the frontend,
# logs an error at every start without libturbojpeg (wanted). Both are Debian packages.
debs=()
command -v ffmpeg > /dev/null || debs+=(ffmpeg)
[[ "$(PATH=$PATH:/sbin:/usr/sbin ldconfig -p 2> /dev/null)" == *libturbojpeg.so* ]] || debs+=(libturbojpeg0)
if [ ${#debs[@]} -gt 0 ]; then
  log "installing Debian's ${debs[*]} (for Home Assistant)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q "${debs[@]}" > /dev/null || { apt-get update -q > /dev/null && apt-get install -y -q "${debs[@]}" > /dev/null; }
  elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    sudo apt-get install -y -q "${debs[@]}" > /dev/null
  elif ! command -v ffmpeg > /dev/null; then
    log "Home Assistant needs ffmpeg: run 'sudo apt-get install ffmpeg libturbojpeg0', then this again" >&2
    exit 1
  else
    log "warning: without libturbojpeg0 Home Assistant logs a camera error at start ('sudo apt-get install libturbojpeg0')"
  fi
fi

stamp="$venv/.chatty-ha-setup"
want="homeassistant==$version $(echo "$integrations" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/hass" ]; then
  exit 0
fi

# A pyenv shim for python3.13 may exist and still refuse to run: try each candidate.
is_313() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2> /dev/null; }
python=
for candidate in ${CHATTY_HA_PYTHON:-} python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 \
  /usr/bin/python3.13 /usr/local/bin/python3.13; do
  if is_313 "$candidate"; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  log "Home Assistant $version needs Python 3.13: put python3.13 on PATH or set CHATTY_HA_PYTHON" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi
started=$SECONDS

# Home Assistant's own pins, from its wheel (kept in the cache, downloaded once).
mkdir -p "$cache"
constraints="$cache/package_constraints-$version.txt"
if [ ! -s "$constraints" ]; then
  log "downloading the homeassistant $version wheel for its package_constraints.txt"
  "$venv/bin/python" -m pip download --quiet --progress-bar off --no-deps --dest "$cache" "homeassistant==$version"
  "$venv/bin/python" - "$cache/homeassistant-$version-py3-none-any.whl" "$constraints" << 'EOF'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as wheel:
    text = wheel.read("homeassistant/package_constraints.txt").decode()
with open(sys.argv[2], "w") as out:
    out.write(text)
EOF
fi
wheel="$cache/homeassistant-$version-py3-none-any.whl"
[ -f "$wheel" ] || wheel="homeassistant==$version"

log "installing homeassistant $version into $venv (first time: a few minutes; pip's lines follow)"
pip_install "$wheel"
"$venv/bin/python" -c "import homeassistant.const as c; assert c.__version__ == '$version', c.__version__" || {
  log "homeassistant $version did not install" >&2
  exit 1
}

# The requirements of the integrations above and of everything they depend on, from their manifests.
# shellcheck disable=SC2086 # $integrations is a list of words
mapfile -t requirements < <("$venv/bin/python" - $integrations << 'EOF'
import json
import sys
from pathlib import Path

import homeassistant.components as components
from homeassistant.bootstrap import CORE_INTEGRATIONS, DEFAULT_INTEGRATIONS

folder = Path(components.__path__[0])
todo = {*CORE_INTEGRATIONS, *DEFAULT_INTEGRATIONS, *sys.argv[1:]}
seen: set[str] = set()
requirements: set[str] = set()
while todo:
    domain = todo.pop()
    if domain in seen:
        continue
    seen.add(domain)
    manifest = folder / domain / "manifest.json"
    if not manifest.exists():
        sys.exit(f"setup_ha: no integration {domain!r} in this Home Assistant")
    data = json.loads(manifest.read_text())
    requirements.update(data.get("requirements", []))
    todo.update(data.get("dependencies", []))
print("\n".join(sorted(requirements)))
EOF
)
if [ ${#requirements[@]} -eq 0 ]; then
  log "could not read the integrations' requirements from Home Assistant's manifests" >&2
  exit 1
fi
log "installing the requirements of ${#requirements[@]} integration packages: ${requirements[*]}"
pip_install "${requirements[@]}"
"$venv/bin/python" -m pip check > /dev/null || log "warning: pip check reports conflicts: $("$venv/bin/python" -m pip check | head -5)"

echo "$want" > "$stamp"
log "done in $((SECONDS - started)) s: $venv/bin/hass"

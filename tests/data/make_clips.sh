#!/usr/bin/env bash
# Regenerates the spoken test clips in tests/data/clips (needs Debian's espeak-ng and sox).
# The clips are committed, so tests and CI never need these tools.
set -euo pipefail
cd "$(dirname "$0")/clips"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { # name voice speed text...
  local name=$1 voice=$2 speed=$3; shift 3
  espeak-ng -v "$voice" -s "$speed" -w "$tmp/$name.wav" "$*"
  sox "$tmp/$name.wav" -r 16000 -c 1 -b 16 "$name.wav"
}
say weather en-us 160 what is the weather like in paris today
say kitchen en 150 turn on the kitchen lights and close the garage door
say airport en-us 150 how long does it take to drive to the airport
say music en-us+f3 160 play some relaxing music in the living room
say store en-us 150 what time does the grocery store open in the morning
say robot en-us 165 tell me a short story about a brave little robot who lived on the moon and wanted to see the ocean
# Speech, one second of silence, more speech: the server must not answer after the first part.
espeak-ng -v en-us -s 160 -w "$tmp/a.wav" "turn off the lights"
espeak-ng -v en-us -s 160 -w "$tmp/b.wav" "in the bedroom please"
sox "$tmp/a.wav" -r 16000 -c 1 -b 16 "$tmp/a16.wav"
sox "$tmp/b.wav" -r 16000 -c 1 -b 16 "$tmp/b16.wav"
sox -n -r 16000 -c 1 -b 16 "$tmp/silence.wav" trim 0 1.0
sox "$tmp/a16.wav" "$tmp/silence.wav" "$tmp/b16.wav" pause.wav
# Formats other clients send: espeak-ng's own 22050 Hz, and 24 kHz stereo.
espeak-ng -v en-us -s 160 -w weather_22050.wav what is the weather like in paris today
espeak-ng -v en -s 150 -w "$tmp/k.wav" turn on the kitchen lights and close the garage door
sox "$tmp/k.wav" -r 24000 -c 2 -b 16 kitchen_24000_stereo.wav

#!/usr/bin/env bash
# Regenerates the satellite's spoken test clips (needs Debian's espeak-ng and sox); the clips are
# committed, so tests, CI and the demo never need these tools. What is said is in clips.json.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
silence() { sox -n -r 16000 -c 1 -b 16 "$tmp/$1.wav" trim 0 "$2"; }
# say NAME TEXT [VOICE]: the question is in en-us+f2, which Whisper tiny.en hears right wherever the
# speech starts (in en-us it hears "capital and France" about half the time).
say() { espeak-ng -v "${3:-en-us}" -s 150 -w "$tmp/raw.wav" "$2"; sox -D "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$tmp/$1.wav"; }
silence s1 1.0; silence s06 0.6; silence s15 1.5; silence s4 4.0
say nabu "Okay Nabu."
say capital "What is the capital of France?" en-us+f2
say story "Tell me a long story about a dragon."
say kitchen "Turn off the kitchen light." en-us+f2
say nevermind "Never mind." en-us+f2
# A hesitation inside one sentence (SSML: the sentence keeps its prosody across the pause).
say_ssml() { espeak-ng -m -v "${3:-en-us}" -s 150 -w "$tmp/raw.wav" "$2"; sox -D "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$tmp/$1.wav"; }
say_ssml petrol 'How far away is the closest <break time="800ms"/> petrol station?' en-gb
sox -D "$tmp/s1.wav" "$tmp/nabu.wav" "$tmp/s06.wav" "$tmp/capital.wav" "$tmp/s15.wav" nabu_capital.wav
sox -D "$tmp/s1.wav" "$tmp/nabu.wav" "$tmp/s06.wav" "$tmp/kitchen.wav" "$tmp/s15.wav" nabu_kitchen.wav
sox -D "$tmp/s1.wav" "$tmp/nabu.wav" "$tmp/s06.wav" "$tmp/story.wav" "$tmp/s15.wav" nabu_story.wav
sox -D "$tmp/s1.wav" "$tmp/nabu.wav" "$tmp/s06.wav" "$tmp/nevermind.wav" "$tmp/s15.wav" nabu_nevermind.wav
sox -D "$tmp/petrol.wav" "$tmp/s15.wav" hesitation_petrol.wav
sox -D "$tmp/s1.wav" "$tmp/nabu.wav" "$tmp/s06.wav" "$tmp/story.wav" "$tmp/s4.wav" "$tmp/nabu.wav" "$tmp/s06.wav" \
  "$tmp/capital.wav" "$tmp/s15.wav" nabu_bargein.wav

#!/usr/bin/env bash
# Regenerates the test voice notes in tests/data/voice/ (committed: tests never need espeak).
# WhatsApp sends voice notes as OGG/Opus, mono, 16 kHz; these are encoded the same way.
# Needs Debian's espeak-ng and ffmpeg: apt-get install -y espeak-ng ffmpeg
set -euo pipefail
out="$(dirname "$0")/../tests/data/voice"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

speak() {  # name, text
  espeak-ng -v pt-br -s 150 -w "$tmp/$1.wav" "$2"
  ffmpeg -loglevel error -y -i "$tmp/$1.wav" -ac 1 -ar 16000 -c:a libopus -b:a 16k \
    -application voip "$out/$1.ogg"
}

# Whisper base on espeak's robotic voice: these two come out right ("Bom dia!", "Obrigado!"),
# with a confidence around 0.4; the third comes out as nonsense with a lower confidence.
speak bom_dia "bom dia"
speak obrigado "obrigado"
speak iptu_mumbled "quero pagar o iptu"
# Over the 3-second limit the over-long test configures: 4 s of a 440 Hz tone.
ffmpeg -loglevel error -y -f lavfi -i "sine=frequency=440:duration=4" -ac 1 -ar 16000 \
  -c:a libopus -b:a 16k "$out/long_tone.ogg"
# Not audio at all: an OGG header followed by noise, as a truncated upload would be.
printf 'OggS\0\2garbage that is not an opus stream' > "$out/broken.ogg"
ls -l "$out"

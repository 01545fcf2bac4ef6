"""A Core Audio Format (CAF) header for PCM of unknown length, so audio can be passed on as it is made.

Home Assistant converts every streamed TTS answer for a satellite with ffmpeg (it asks for 22050 Hz,
mono, 16-bit). Fed a streaming WAV (data size 0), ffmpeg 5/6 reads about 200 KB of audio before it
writes anything: the WAV reader looks for S/PDIF data in the first 64 KB and stream probing reads on
(4.4 s of Kokoro's 24 kHz audio, so a short answer is heard only once it is wholly synthesized).
ffmpeg's CAF reader starts at once (measured: first output 20 ms after the first audio). A CAF data
chunk may have the size -1, "until the end of the file", which is how CAF marks a stream.
Layout: Apple's Core Audio Format Specification (file header, ``desc`` chunk, ``data`` chunk).
"""

from __future__ import annotations

import struct

_LINEAR_PCM = int.from_bytes(b"lpcm", "big")
_LITTLE_ENDIAN = 2  # kCAFLinearPCMFormatFlagIsLittleEndian


def caf_header(rate: int, width: int, channels: int) -> bytes:
    """The header of a CAF stream of signed little-endian PCM (``width`` bytes per sample, 2-4)."""
    if width not in (2, 3, 4):
        raise ValueError(f"CAF PCM here is 16, 24 or 32 bit, not {width * 8}")
    desc = struct.pack(">dIIIIII", float(rate), _LINEAR_PCM, _LITTLE_ENDIAN, width * channels, 1, channels, width * 8)
    return (
        b"caff"
        + struct.pack(">HH", 1, 0)  # version 1, no flags
        + b"desc"
        + struct.pack(">q", len(desc))
        + desc
        + b"data"
        + struct.pack(">q", -1)  # size unknown: the data runs to the end of the stream
        + struct.pack(">I", 0)  # edit count
    )

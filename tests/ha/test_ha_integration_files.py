"""The Chatty integration's files are what Home Assistant and HACS expect, and its CAF audio streams through ffmpeg.

Fast checks without a Home Assistant running; the integration itself runs in a real Home Assistant
in ``test_ha_chatty.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import re
import struct
import time
import tomllib
import wave
from io import BytesIO
from pathlib import Path

import pytest
from helpers.home_assistant import HA_VERSIONS, ha_venv

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = ROOT / "custom_components" / "chatty"
# What Home Assistant's frontend puts in for the common keys the strings refer to (its strings.json).
COMMON = {
    "[%key:common::config_flow::data::host%]": "Host",
    "[%key:common::config_flow::data::port%]": "Port",
    "[%key:common::config_flow::error::cannot_connect%]": "Failed to connect",
    "[%key:common::config_flow::abort::already_configured_service%]": "Service is already configured",
}


def manifest() -> dict:
    return json.loads((INTEGRATION / "manifest.json").read_text())


def test_hacs_finds_one_integration_with_the_manifest_it_requires():
    # HACS: one folder under custom_components/, hacs.json at the repository's root with a name, and a
    # manifest with domain, documentation, issue_tracker, codeowners, name and version.
    assert [p.name for p in (ROOT / "custom_components").iterdir() if p.is_dir()] == ["chatty"]
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["name"] == "Chatty"
    oldest = HA_VERSIONS[0].split(".")
    assert [int(x) for x in hacs["homeassistant"].split(".")] <= [int(x) for x in oldest]
    data = manifest()
    for key in ("domain", "documentation", "issue_tracker", "codeowners", "name", "version"):
        assert key in data, key
    assert data["domain"] == "chatty" and data["config_flow"] is True
    assert data["zeroconf"] == ["_wyoming._tcp.local."]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert data["version"] == project["version"]


def test_the_wyoming_requirement_is_the_newest_home_assistants_pin():
    newest = ha_venv(HA_VERSIONS[-1])
    wyoming = list(newest.glob("lib/python3*/site-packages/homeassistant/components/wyoming/manifest.json"))
    if not wyoming:
        pytest.skip(f"Home Assistant {HA_VERSIONS[-1]} is not installed (scripts/setup_ha.sh)")
    pin = json.loads(wyoming[0].read_text())["requirements"]
    assert manifest()["requirements"] == pin


def test_every_message_the_config_flow_shows_has_its_text_in_english():
    strings = json.loads((INTEGRATION / "strings.json").read_text())
    english = json.loads((INTEGRATION / "translations" / "en.json").read_text())

    def resolved(node):
        if isinstance(node, dict):
            return {key: resolved(value) for key, value in node.items()}
        return COMMON.get(node, node)

    assert english == resolved(strings)
    source = (INTEGRATION / "config_flow.py").read_text()
    errors = set(re.findall(r'errors\["base"\] = "(\w+)"', source))
    aborts = set(re.findall(r'reason="(\w+)"', source)) | {"already_configured"}  # from _abort_if_*_configured
    steps = set(re.findall(r'step_id="(\w+)"', source))
    assert errors and errors <= set(english["config"]["error"]), errors
    assert aborts <= set(english["config"]["abort"]), aborts
    assert steps - {"init"} <= set(english["config"]["step"]) and "init" in english["options"]["step"]


def test_each_module_of_the_integration_says_what_it_does():
    for path in INTEGRATION.glob("*.py"):  # (Python 3.13 code: read, not parsed, by the tests' 3.11)
        assert path.read_text().startswith('"""'), f"{path.name} has no docstring"


def _caf_header():
    spec = importlib.util.spec_from_file_location("chatty_caf", INTEGRATION / "caf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.caf_header


def _wav_header(rate: int) -> bytes:
    buffer = BytesIO()
    with wave.open(buffer, "wb") as wav:  # nframes 0: a stream, as Home Assistant's Wyoming TTS writes it
        wav.setframerate(rate)
        wav.setsampwidth(2)
        wav.setnchannels(1)
    return buffer.getvalue()


async def _first_output_before_the_end(header: bytes, rate: int, container: str) -> bool:
    """Feed ffmpeg as Home Assistant does for a satellite (to 22050 Hz WAV), 1.5 s of audio, and keep the
    input open: does converted audio come out before the input ends?"""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", container, "-i", "pipe:0",
        "-f", "wav", "-ar", "22050", "-ac", "1", "-sample_fmt", "s16", "pipe:1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin and process.stdout
    tone = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate * 3 // 2))
    process.stdin.write(header + tone)
    await process.stdin.drain()
    try:
        got = await asyncio.wait_for(process.stdout.read(4096), 5.0)
        early = len(got) > 0
    except TimeoutError:
        early = False
    process.stdin.close()
    await process.stdout.read()
    await process.wait()
    return early


async def test_ffmpeg_converts_the_caf_stream_as_it_arrives_and_a_streaming_wav_only_at_its_end():
    """Why the TTS entity sends CAF: Home Assistant converts a satellite's TTS audio with ffmpeg, which
    writes nothing for a streaming WAV until about 200 KB have come in (4 s of 24 kHz audio)."""
    started = time.monotonic()
    assert await _first_output_before_the_end(_caf_header()(24000, 2, 1), 24000, "caf")
    assert not await _first_output_before_the_end(_wav_header(24000), 24000, "wav")
    assert time.monotonic() - started < 30

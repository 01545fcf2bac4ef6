"""Helpers the tests share (one place; no test module imports another): processes, peers, devices, clips."""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
ROOT = TESTS_DIR.parent
DATA = TESTS_DIR / "data"
CLIPS_DIR = DATA / "clips"
SATELLITE_DATA = DATA / "satellite"

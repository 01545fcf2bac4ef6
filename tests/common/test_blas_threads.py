"""numpy's matrix library kept to one thread in every Chatty program (its spinning threads took a core
from the models on a two-core device), unless the user set its threads."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMITED = "numpy's BLAS limited to one thread"

_PROBE = """
import json
import numpy
from threadpoolctl import threadpool_info
from chatty_common.threads import limit_blas_threads
def blas():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
before = blas()
limit_blas_threads()
print(json.dumps({"before": before, "after": blas()}))
"""


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(settings)
    return env


def _probe(**settings: str) -> dict[str, list[int]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=_env(**settings), capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout)


def test_numpys_blas_runs_on_one_thread():
    threads = _probe()
    assert threads["before"], "numpy brings no BLAS that threadpoolctl knows"
    if max(threads["before"]) < 2:
        pytest.skip("one core: numpy's BLAS has one thread anyway")
    assert threads["after"] == [1] * len(threads["before"])


@pytest.mark.parametrize("setting", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
def test_a_users_own_thread_setting_is_kept(setting):
    threads = _probe(**{setting: "2"})
    assert threads["after"] == threads["before"] == [2] * len(threads["before"])


def _program(module: str, tmp_path: Path) -> list[str]:
    if module == "satellite":
        silence = tmp_path / "silence.wav"
        silence.write_bytes(_silent_wav())
        return ["--mode", "direct", "--mic-file", str(silence), "--snd-file", str(tmp_path / "out.wav")]
    return ["--uri", "tcp://127.0.0.1:0", "--data-dir", str(tmp_path / "data")]


def _silent_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(32000))
    return buffer.getvalue()


@pytest.mark.parametrize("module", ["wyoming_chatty_stt", "wyoming_chatty_tts", "wyoming_chatty_llm", "satellite"])
def test_every_program_limits_it_at_start(module, tmp_path):
    """Each program says so in its debug log as it starts (before its models load)."""
    command = [sys.executable, "-m", module, *_program(module, tmp_path), "--debug"]
    process = subprocess.Popen(command, env=_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if LIMITED in line:
                return
        pytest.fail(f"{module} did not limit numpy's BLAS at start:\n{''.join(lines[-20:])}")
    finally:
        process.kill()
        process.wait(30)

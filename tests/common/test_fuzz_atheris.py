"""Coverage-guided fuzzing with atheris (libFuzzer) of the code that reads what others write.

Each harness in ``tests/fuzz`` runs as its own process for ``FUZZ_SECONDS``
from the seeds in ``tests/fuzz/seeds`` (the corpus it grows goes to a temporary
folder). A crash or a slow input fails the test and names the input that did
it. Longer runs: ``python tests/fuzz/fuzz_NAME.py -max_total_time=600 CORPUS``.
The servers themselves are fuzzed over TCP by ``test_protocol_fuzz.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS_DIR

pytest.importorskip("atheris", reason="atheris has wheels for x86-64 Linux only")

FUZZ = TESTS_DIR / "fuzz"
FUZZ_SECONDS = 20


@pytest.mark.parametrize("name", ["read_event", "tts_text", "llm_config"])
def test_no_input_crashes_or_hangs(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "seeds" / name, corpus)
    argv = [sys.executable, str(FUZZ / f"fuzz_{name}.py"), f"-max_total_time={FUZZ_SECONDS}", "-timeout=10",
            "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/", str(corpus)]  # fmt: skip
    if (FUZZ / f"{name}.dict").exists():
        argv.insert(2, f"-dict={FUZZ / f'{name}.dict'}")
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a harness's own scratch files go with the test's
    result = subprocess.run(argv, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120, env=env)
    output = result.stderr[-4000:]
    assert result.returncode == 0, f"fuzz_{name} found an input that breaks it:\n{output}"
    runs = re.search(r"Done (\d+) runs", result.stderr)
    assert runs and int(runs.group(1)) > 5_000, output  # it really ran

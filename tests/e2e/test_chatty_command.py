"""The ``chatty`` command: ``chatty up`` runs and stops the three servers; ``chatty report`` draws a picture."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from helpers.servers import free_port
from PIL import Image

from chatty_common.health_check import describe


async def test_chatty_up_starts_the_three_servers_and_ctrl_c_stops_them(tmp_path, stt_data_dir, tts_data_dir):
    ports = {"stt": free_port(), "llm": free_port(), "tts": free_port()}
    data = tmp_path / "data"
    data.mkdir()
    (data / "stt").symlink_to(stt_data_dir)  # the models the other tests prepared
    (data / "tts").symlink_to(tts_data_dir)
    log = tmp_path / "up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "chatty", "up", "--host", "127.0.0.1", "--zeroconf-host", "127.0.0.1",
         "--zeroconf-suffix=-up", "--data-dir", str(data),
         *[a for kind, port in ports.items() for a in (f"--{kind}-port", str(port))]],
        stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        ready = set()
        while ready != set(ports) and time.monotonic() < deadline and process.poll() is None:
            for kind, port in ports.items():
                try:
                    await describe(f"tcp://127.0.0.1:{port}", 2)
                    ready.add(kind)
                except (OSError, TimeoutError):
                    pass
            time.sleep(0.5)
        assert ready == set(ports), log.read_text()
        process.send_signal(signal.SIGINT)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert process.returncode == 0, output
    for kind in ports:
        assert f"{kind} | " in output and f"advertising chatty-{kind}-up" in output


def test_chatty_report_draws_the_latency_picture(tmp_path):
    stages = {"end_of_speech": 600.0, "transcript": 420.0, "llm_sent": 425.0, "llm_first": 500.0, "llm_done": 800.0,
              "tts_text": 500.0, "tts_first_audio": 950.0, "first_played": 1000.0}  # fmt: skip
    turns = [
        {"outcome": "answered", "QUESTION-TO-RESPONSE_MS": 400.0 + n * 10, "VOICE-TO-VOICE_MS": 1000.0 + n * 10,
         "stages_ms": stages}
        for n in range(12)
    ] + [{"outcome": "nothing said", "QUESTION-TO-RESPONSE_MS": None}]  # fmt: skip
    metrics = tmp_path / "turns.jsonl"
    metrics.write_text("\n".join(json.dumps(t) for t in turns) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "chatty", "report", str(metrics), "-o", str(tmp_path / "latency.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "12 answered turns" in result.stdout
    with Image.open(tmp_path / "latency.png") as image:
        assert image.size[0] > 1000 and image.size[1] > 400
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = subprocess.run([sys.executable, "-m", "chatty", "report", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1 and "line 1: not a JSON object" in result.stderr

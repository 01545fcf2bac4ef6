"""The satellite's command line: bad or missing devices and options give clear errors; zeroconf finds servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import SATELLITE_DATA

from chatty_common.zeroconf import browse


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "satellite", *args], capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ),
    )  # fmt: skip


def _fails(*args: str) -> str:
    result = _run(*args)
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_help_lists_the_documented_flags():
    result = _run("--help")
    assert result.returncode == 0
    for flag in (
        "--mode", "--mic-device", "--mic-command", "--mic-file", "--snd-device", "--snd-command", "--snd-file",
        "--wake-word", "--wake-uri", "--vad", "--end-silence", "--stt-uri", "--llm-uri", "--tts-uri",
        "--metrics-file", "--zeroconf", "--uri", "--name", "--area", "--end-of-turn", "--turn-pause",
        "--unfinished-silence", "--turn-words-threshold", "--turn-sound-threshold",
    ):  # fmt: skip
        assert flag in result.stdout


def test_bad_and_missing_devices_are_clear_errors(tmp_path):
    out = ["--snd-file", str(tmp_path / "out.wav")]
    assert "no such file" in _fails("--mic-file", str(tmp_path / "missing.wav"), *out)
    (tmp_path / "notwav.wav").write_text("hello")
    assert "not a readable WAV file" in _fails("--mic-file", str(tmp_path / "notwav.wav"), *out)
    assert "cannot run /no/such/recorder" in _fails("--mic-command", "/no/such/recorder -q", *out)
    message = _fails("--mic-command", "sh -c 'echo no card >&2; exit 3'", *out)
    assert "stopped (exit code 3) no card" in message
    assert "no input device 'USB Mic 7'" in _fails("--mic-device", "USB Mic 7", *out)
    mic = ["--mic-file", str(SATELLITE_DATA / "nabu_capital.wav")]
    assert "cannot run /no/such/player" in _fails(*mic, "--snd-command", "/no/such/player")
    assert "no output device 'HDMI 9'" in _fails(*mic, "--snd-device", "HDMI 9")
    assert "cannot write it" in _fails(*mic, "--snd-file", str(tmp_path / "no" / "dir" / "out.wav"))


def test_bad_options_are_clear_errors(tmp_path):
    mic = ["--mic-file", str(SATELLITE_DATA / "nabu_capital.wav"), "--snd-file", str(tmp_path / "o.wav")]
    assert "no micro model 'hey_rhasspy'" in _fails(*mic, "--wake-word", "micro:hey_rhasspy")
    assert "give one of --mic-device, --mic-command, --mic-file" in _fails(*mic, "--mic-command", "arecord")
    assert "--snd-rate 100 is outside" in _fails(*mic, "--snd-rate", "100")
    assert "must be from 0 to 1, got 2" in _fails(*mic, "--turn-words-threshold", "2")
    assert "invalid choice: 'never'" in _fails(*mic, "--end-of-turn", "never")


def test_a_microphone_command_feeds_the_satellite(tmp_path):
    """--mic-command with raw 48 kHz stereo PCM (converted to 16 kHz mono): the wake word is still heard."""
    raw = tmp_path / "mic.raw"
    script = (
        "import sys, wave, numpy, soxr; w = wave.open(sys.argv[1]); "
        "x = numpy.frombuffer(w.readframes(w.getnframes()), '<i2'); "
        "y = soxr.resample(x, 16000, 48000).astype('<i2'); "
        "open(sys.argv[2], 'wb').write(numpy.repeat(y, 2).tobytes())"
    )
    subprocess.run([sys.executable, "-c", script, str(SATELLITE_DATA / "nabu_capital.wav"), str(raw)], check=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "satellite", "--mode", "direct", "--mic-command", f"cat {raw}", "--mic-rate", "48000",
         "--mic-channels", "2", "--snd-file", str(tmp_path / "o.wav"), "--no-sounds",
         "--stt-uri", "tcp://127.0.0.1:9", "--llm-uri", "tcp://127.0.0.1:9", "--tts-uri", "tcp://127.0.0.1:9"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if "opening the microphone again" in line:
                break
    finally:
        process.terminate()
        process.wait(10)
    log = "".join(seen)
    # The wake word was heard in the converted audio; then cat ended, and a recorder that stops after
    # working is started again (a recorder that fails at once is an error, as above).
    assert "Heard okay_nabu" in log
    assert "--mic-command cat stopped (exit code 0)" in log


async def test_direct_mode_finds_the_servers_by_zeroconf(tmp_path, start_server, stt_data_dir, tts_data_dir, llm_dir):
    names = {"stt": "chatty-stt-zc", "llm": "chatty-llm-zc", "tts": "chatty-tts-zc"}
    modules = {"stt": "wyoming_chatty_stt", "llm": "wyoming_chatty_llm", "tts": "wyoming_chatty_tts"}
    data = {"stt": stt_data_dir, "llm": llm_dir, "tts": tts_data_dir}
    for kind, name in names.items():
        start_server(modules[kind], "--data-dir", str(data[kind]), "--zeroconf", name, "--zeroconf-host", "127.0.0.1")
    found = await browse(10.0, interface="127.0.0.1", name_prefix="chatty-", wait_for=None)
    assert set(names.values()) <= {s.name for s in found}
    metrics = tmp_path / "turns.jsonl"
    result = _run(
        "--mode", "direct", "--mic-file", str(SATELLITE_DATA / "nabu_capital.wav"), "--snd-file",
        str(tmp_path / "o.wav"), "--metrics-file", str(metrics), "--zeroconf-host", "127.0.0.1", "--no-follow-up",
        *[arg for kind, name in names.items() for arg in (f"--{kind}-name", name)],
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Found chatty-stt-zc by zeroconf" in result.stderr
    [turn] = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert turn["outcome"] == "answered" and turn["answer"]

"""Real PortAudio devices for tests: a private PulseAudio daemon with a virtual microphone and speaker.

The daemon runs as a child of the test with its own runtime, home and config directories, so it
touches nothing of the machine's. Two null sinks stand in for the sound card: what is played into
``chatty_mic_feed`` is heard on the ``chatty_mic`` capture device (its monitor), and what the
satellite plays on ``chatty_speaker`` is recorded from that sink's monitor. PortAudio (through
pyaudio) reaches them through ALSA's pulse plugin, exactly as it reaches a USB sound card's ALSA
device. Facts and measurements: ``../shared/reference/audio-devices.md``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

MIC_FEED = "chatty_mic_feed"
SPEAKER = "chatty_speaker"
MIC_RATE = 16000
SPEAKER_RATE = 24000


class PulseAudioDevices:
    """A private PulseAudio daemon; ``env`` is the environment a process needs to see its devices.

    ``shared_memory=False`` makes its clients send audio over the socket instead: libpulse 16.1
    deadlocks a client whose server drops it while a read holds a shared block (its mainloop thread
    waits in ``pa_memimport_free`` for the reader, the reader for the mainloop's lock), and a server
    frozen for seconds drops its clients when it resumes. That deadlock is the library's, and no
    reopening in the satellite can undo it.
    """

    def __init__(self, folder: Path, shared_memory: bool = True) -> None:
        self.folder = folder
        run = folder / "run"
        run.mkdir(parents=True, mode=0o700, exist_ok=True)
        (folder / "home").mkdir(exist_ok=True)
        (folder / "xdg" / "alsa").mkdir(parents=True, exist_ok=True)
        self.socket = run / "pulse" / "native"
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(run),
            "HOME": str(folder / "home"),
            "XDG_CONFIG_HOME": str(folder / "xdg"),
            "PULSE_SERVER": f"unix:{self.socket}",
        }
        if not shared_memory:
            (folder / "client.conf").write_text("enable-shm = no\n")
            self.env["PULSE_CLIENTCONFIG"] = str(folder / "client.conf")
        self._asoundrc = folder / "xdg" / "alsa" / "asoundrc"
        self._asoundrc.write_text(
            f'pcm.chatty_mic {{ type pulse device "{MIC_FEED}.monitor" '
            'hint { show on description "Chatty virtual microphone" } }\n'
            f'pcm.chatty_speaker {{ type pulse device "{SPEAKER}" '
            'hint { show on description "Chatty virtual speaker" } }\n'
        )
        self._script = folder / "chatty.pa"
        self._script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name={MIC_FEED} rate={MIC_RATE} channels=1\n"
            f"load-module module-null-sink sink_name={SPEAKER} rate={SPEAKER_RATE} channels=1\n"
            f"set-default-sink {SPEAKER}\n"
            f"set-default-source {MIC_FEED}.monitor\n"
        )
        self.start()

    def start(self) -> None:
        """Start the daemon (again, after :meth:`close`: a restarted sound server)."""
        self._log = (self.folder / "pulseaudio.log").open("a")
        self._zeros = open(os.devnull.replace("null", "zero"), "rb")  # noqa: SIM115 - the keepalives' input
        self._keepalives: list[subprocess.Popen] = []
        self.daemon = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n", "-F", str(self._script),
             "--log-target=stderr", "--log-level=warn"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._log,
        )  # fmt: skip
        try:
            self._wait_until(lambda: self._pactl("info").returncode == 0, "the PulseAudio daemon to start")
            # An idle null sink renders two seconds ahead and then sleeps, which delays every new
            # capture stream on its monitor by about 2 s; a stream playing silence into each sink and
            # a suspend/resume kick keep them running in real time.
            for sink, rate in ((MIC_FEED, MIC_RATE), (SPEAKER, SPEAKER_RATE)):
                keepalive = subprocess.Popen(
                    ["pacat", "--playback", "--raw", f"--device={sink}", f"--rate={rate}", "--channels=1",
                     "--format=s16le", "--latency-msec=50"],
                    env=self.env, stdin=self._zeros, stderr=self._log,
                )  # fmt: skip
                self._keepalives.append(keepalive)
            self._wait_until(
                lambda: len(self._pactl("list", "short", "sink-inputs").stdout.splitlines()) >= 2,
                "the keepalive streams to connect",
            )
            for sink in (MIC_FEED, SPEAKER):
                self._pactl("suspend-sink", sink, "1")
                self._pactl("suspend-sink", sink, "0")
        except BaseException:
            self.close()
            raise

    def stall(self) -> None:
        """Freeze the sound server (SIGSTOP): its devices stop moving audio without going away."""
        os.kill(self.daemon.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.daemon.poll() is None:
            os.kill(self.daemon.pid, signal.SIGCONT)

    def add_clockless_devices(self, mic_input: Path, speaker_output: Path) -> None:
        """``clockless_mic`` (reads raw 16 kHz PCM from ``mic_input``) and ``clockless_speaker`` (writes raw
        PCM to ``speaker_output``): ALSA ``file`` PCMs on the null device, which move audio at CPU speed and
        work without the sound server."""
        with self._asoundrc.open("a") as file:
            file.write(
                f'pcm.clockless_mic {{ type file slave.pcm "null" file "/dev/null" infile "{mic_input}" '
                'format "raw" hint { show on description "no clock" } }\n'
                f'pcm.clockless_speaker {{ type file slave.pcm "null" file "{speaker_output}" format "raw" '
                'hint { show on description "no clock" } }\n'
            )

    def _pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def _wait_until(self, ready, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {(self.folder / 'pulseaudio.log').read_text()}")
            time.sleep(0.02)

    def play_into_microphone(self, wav: Path) -> subprocess.Popen:
        """Start playing a WAV file into the virtual microphone (as someone speaking in the room)."""
        return subprocess.Popen(["paplay", f"--device={MIC_FEED}", str(wav)], env=self.env, stderr=self._log)

    def record_speaker(self, path: Path) -> Recording:
        """Start recording what the virtual speaker plays (24 kHz mono 16-bit raw) into ``path``."""
        return Recording(self, path)

    def close(self) -> None:
        self.resume()
        for process in [*self._keepalives, self.daemon]:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()
        self._zeros.close()


class Recording:
    """What the virtual speaker plays, recorded from its monitor until :meth:`stop`."""

    def __init__(self, devices: PulseAudioDevices, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._process = subprocess.Popen(
            ["pacat", "--record", "--raw", f"--device={SPEAKER}.monitor", f"--rate={SPEAKER_RATE}", "--channels=1",
             "--format=s16le", "--latency-msec=10"],
            env=devices.env, stdout=self._file, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> bytes:
        """Stop recording; the 24 kHz PCM recorded."""
        self._process.terminate()
        self._process.wait(5)
        self._file.close()
        return self.path.read_bytes()

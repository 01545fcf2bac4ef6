"""Command line and start-up of the satellite: ``python -m satellite``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from chatty_common.audio import PcmFormat
from chatty_common.cli import (
    add_common_args,
    check_uri,
    non_negative_float,
    positive_float,
    probability,
    setup_logging,
)
from chatty_common.metrics import MetricsFile
from chatty_common.threads import limit_blas_threads

from .audio_io import (
    CommandMicrophone,
    CommandSpeaker,
    DeviceError,
    DeviceHung,
    FileMicrophone,
    FileSpeaker,
    Microphone,
    PyAudioMicrophone,
    PyAudioSpeaker,
    Speaker,
)
from .core import Listener, Mode, Satellite
from .direct import DirectMode, DirectSettings
from .end_of_turn import EndOfTurn, TurnJudge, TurnTaking
from .ha import HaMode
from .ha_info import build_info
from .player import Player
from .services import Services
from .smart_turn import SmartTurnMissing
from .sounds import Sounds
from .speech import CommandRules, VoiceActivity
from .turn_log import TurnLog
from .turn_text import TextModelMissing
from .wake import LocalWakeDetector, RemoteWakeDetector, WakeWord, WakeWordError, parse_wake_word

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 10700
ZEROCONF_DEFAULT = "chatty-satellite-NAME"


class SetupError(Exception):
    """Something the satellite needs is missing; the message says what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatty-satellite",
        description="Chatty's room device: wake word, microphone, streaming playback, barge-in, latency log.",
    )
    add_common_args(parser, default_port=DEFAULT_PORT, zeroconf_name=ZEROCONF_DEFAULT, service="satellite")
    parser.add_argument(
        "--mode",
        choices=("ha", "direct"),
        default="ha",
        help="ha: a Wyoming satellite that Home Assistant drives (listens on --uri); direct: run turns against "
        "the STT, LLM and TTS servers (default: ha)",
    )
    parser.add_argument("--name", default=socket.gethostname(), help="satellite name (default: the host name)")
    parser.add_argument("--area", help="area (room) to report to Home Assistant")

    mic = parser.add_argument_group("microphone (one of)")
    mic.add_argument("--mic-device", metavar="NAME|INDEX", help="a PortAudio input device ('default': the default)")
    mic.add_argument("--mic-command", help='a command writing raw PCM, e.g. "arecord -r 16000 -c 1 -f S16_LE -t raw"')
    mic.add_argument("--mic-file", type=Path, help="a WAV file, played in at real time, then silence")
    mic.add_argument("--mic-rate", type=int, default=16000, help="sample rate of --mic-command (default: 16000)")
    mic.add_argument("--mic-width", type=int, default=2, help="bytes per sample of --mic-command (default: 2)")
    mic.add_argument("--mic-channels", type=int, default=1, help="channels of --mic-command (default: 1)")

    snd = parser.add_argument_group("speaker (one of)")
    snd.add_argument("--snd-device", metavar="NAME|INDEX", help="a PortAudio output device ('default': the default)")
    snd.add_argument("--snd-command", help='a command reading raw PCM, e.g. "aplay -r 24000 -c 1 -f S16_LE -t raw"')
    snd.add_argument("--snd-file", type=Path, help="a WAV file recording everything played, on the satellite's clock")
    snd.add_argument("--snd-rate", type=int, default=24000, help="speaker sample rate, 16-bit mono (default: 24000)")

    wake = parser.add_argument_group("wake word")
    wake.add_argument(
        "--wake-word", action="append", default=[], metavar="[ENGINE:]NAME|FILE",
        help="okay_nabu, hey_jarvis, alexa, hey_mycroft (micro or openwakeword) or hey_rhasspy (openwakeword), or "
        "a model file: a microWakeWord manifest (.json, its .tflite beside it) or an openWakeWord model (.tflite); "
        "repeatable (default: okay_nabu)",
    )  # fmt: skip
    wake.add_argument("--wake-refractory", type=non_negative_float, default=2.0,
                      help="seconds a wake word is ignored after it fired (default: 2)")  # fmt: skip
    wake.add_argument("--wake-uri", help="a Wyoming wake word service instead of the local models")

    speech = parser.add_argument_group("end of speech")
    speech.add_argument(
        "--vad", choices=("silero", "micro"), default="silero",
        help="voice activity detector: silero (precise ends) or micro (cheaper, ends about 0.6 s late) "
        "(default: silero)",
    )  # fmt: skip
    speech.add_argument("--vad-threshold", type=positive_float, default=0.5, help="speech probability (default: 0.5)")
    speech.add_argument(
        "--end-of-turn", choices=[e.value for e in EndOfTurn], default=EndOfTurn.SMART.value,
        help="smart: at a short pause, judge from the sound and the words whether the speaker is done, and wait "
        "longer when not; silence: a fixed silence ends every command (default: smart)",
    )  # fmt: skip
    speech.add_argument("--turn-pause", type=positive_float, default=TurnTaking.pause,
                        help="smart: the silence after which a pause is judged, s "
                        f"(default: {TurnTaking.pause})")  # fmt: skip
    speech.add_argument("--unfinished-silence", type=positive_float, default=TurnTaking.unfinished_silence,
                        help="smart: the silence that ends a command judged unfinished, s "
                        f"(default: {TurnTaking.unfinished_silence})")  # fmt: skip
    speech.add_argument("--doubtful-silence", type=positive_float, default=TurnTaking.doubtful_silence,
                        help="smart: the silence that ends a command judged unfinished on weak evidence only "
                        "(words that may well end a request, a sound just short of finished), s "
                        f"(default: {TurnTaking.doubtful_silence})")  # fmt: skip
    speech.add_argument("--unsure-silence", type=positive_float, default=TurnTaking.unsure_silence,
                        help="smart: the silence that ends a command whose words at the pause Whisper is unsure of, "
                        "when they would end it were it sure (other unsure words wait --unfinished-silence), s "
                        f"(default: {TurnTaking.unsure_silence})")  # fmt: skip
    speech.add_argument("--turn-sound-threshold", type=probability, default=TurnTaking.sound_threshold,
                        help="smart: below this probability from the acoustic model the speaker sounds unfinished "
                        f"(default: {TurnTaking.sound_threshold})")  # fmt: skip
    speech.add_argument("--turn-words-threshold", type=probability, default=TurnTaking.words_threshold,
                        help="smart, direct mode: below this probability from the language model the words do not "
                        f"end a request (default: {TurnTaking.words_threshold})")  # fmt: skip
    speech.add_argument("--turn-doubtful-words", type=probability, default=TurnTaking.doubtful_words,
                        help="smart: words under the words threshold but at least this probable to end a request "
                        f"are only doubtful (default: {TurnTaking.doubtful_words})")  # fmt: skip
    speech.add_argument("--turn-doubtful-sound", type=probability, default=TurnTaking.doubtful_sound,
                        help="smart: a sound under the sound threshold but at least this probable to be finished "
                        "(after words that end a request) is only doubtful "
                        f"(default: {TurnTaking.doubtful_sound})")  # fmt: skip
    speech.add_argument("--turn-sure-words", type=probability, default=TurnTaking.sure_words,
                        help="smart: words less sure than this to end a request are heard a second time by the STT "
                        f"server, and must end it again (0: never) (default: {TurnTaking.sure_words})")  # fmt: skip
    speech.add_argument("--heard-twice-silence", type=non_negative_float, default=TurnTaking.heard_twice_silence,
                        help="smart: the least silence that ends a command whose words ended a request only when "
                        f"heard twice, s (default: {TurnTaking.heard_twice_silence})")  # fmt: skip
    speech.add_argument("--end-silence", type=positive_float, default=0.6,
                        help="silence: the silence that ends a command, seconds (default: 0.6)")  # fmt: skip
    speech.add_argument("--min-speech", type=non_negative_float, default=0.3,
                        help="speech before a command counts as started, seconds (default: 0.3)")  # fmt: skip
    speech.add_argument("--max-command", type=positive_float, default=15.0, help="longest command, s (default: 15)")
    speech.add_argument("--speech-timeout", type=positive_float, default=5.0,
                        help="give up when nobody speaks for this long after the wake word (default: 5)")  # fmt: skip

    direct = parser.add_argument_group(
        "direct mode (in Home Assistant mode too: the STT server judges pauses, the LLM server stops an answer "
        "cut off by a barge-in)"
    )
    for kind in ("stt", "llm", "tts"):
        direct.add_argument(f"--{kind}-uri", help=f"the {kind.upper()} server (default: found by zeroconf)")
        direct.add_argument(f"--{kind}-name", default=f"chatty-{kind}",
                            help=f"zeroconf name of the {kind.upper()} server (default: chatty-{kind})")  # fmt: skip
    direct.add_argument(
        "--prepare-after", type=non_negative_float, default=0.1,
        help="after this much silence, prepare the answer while waiting for the end of speech; it plays the "
        "moment the end is certain, and is dropped if the speaker goes on (0: wait for the end) (default: 0.1)",
    )  # fmt: skip
    direct.add_argument("--language", help="language of the questions, for speech-to-text (default: detected)")
    direct.add_argument("--voice", help="TTS voice (default: the server's)")

    sounds = parser.add_argument_group("sounds")
    sounds.add_argument("--no-sounds", action="store_true", help="play no awake/error/timer sounds")
    for name in ("awake", "done", "error", "timer"):
        sounds.add_argument(f"--{name}-wav", type=Path, help=f"WAV file for the {name} sound (default: built in)")
    parser.add_argument("--no-follow-up", action="store_true",
                        help="do not listen again when an answer ends with a question")  # fmt: skip
    parser.add_argument("--metrics-file", type=Path, help="append each turn's latency figures as JSON lines")
    return parser


def open_microphone(args: argparse.Namespace) -> Microphone:
    if args.mic_file is not None:
        return FileMicrophone(args.mic_file)
    if args.mic_command:
        return CommandMicrophone(args.mic_command, PcmFormat(args.mic_rate, args.mic_width, args.mic_channels))
    return PyAudioMicrophone(args.mic_device)


def open_speaker(args: argparse.Namespace) -> Speaker:
    if args.snd_file is not None:
        return FileSpeaker(args.snd_file, args.snd_rate)
    if args.snd_command:
        return CommandSpeaker(args.snd_command, args.snd_rate)
    return PyAudioSpeaker(args.snd_device, args.snd_rate)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[WakeWord]:
    check_uri(parser, args)
    if sum(x is not None for x in (args.mic_device, args.mic_command, args.mic_file)) > 1:
        parser.error("give one of --mic-device, --mic-command, --mic-file")
    if sum(x is not None for x in (args.snd_device, args.snd_command, args.snd_file)) > 1:
        parser.error("give one of --snd-device, --snd-command, --snd-file")
    if not 4000 <= args.snd_rate <= 192000:
        parser.error(f"--snd-rate {args.snd_rate} is outside 4000..192000")
    if args.zeroconf == ZEROCONF_DEFAULT:
        args.zeroconf = f"chatty-satellite-{args.name}"
    try:
        return [parse_wake_word(text) for text in (args.wake_word or ["okay_nabu"])]
    except WakeWordError as err:
        parser.error(f"--wake-word: {err}")
        raise  # unreachable: parser.error exits


async def load_judge(args: argparse.Namespace) -> TurnJudge | None:
    """The end-of-turn judge of ``--end-of-turn smart``, its models loaded and warm (None: silence)."""
    if args.end_of_turn != EndOfTurn.SMART:
        return None
    taking = TurnTaking(
        pause=args.turn_pause, unfinished_silence=args.unfinished_silence,
        sound_threshold=args.turn_sound_threshold, words_threshold=args.turn_words_threshold,
        sure_words=args.turn_sure_words, fallback_silence=args.end_silence,
        doubtful_silence=args.doubtful_silence, doubtful_words=args.turn_doubtful_words,
        doubtful_sound=args.turn_doubtful_sound, heard_twice_silence=args.heard_twice_silence,
        unsure_silence=args.unsure_silence,
    )  # fmt: skip

    def load() -> TurnJudge:
        judge = TurnJudge(taking)
        judge.warm_up()
        return judge

    try:
        return await asyncio.to_thread(load)
    except (SmartTurnMissing, TextModelMissing) as err:
        raise SetupError(str(err)) from err


async def run(args: argparse.Namespace, wake_words: list[WakeWord]) -> None:
    mic = open_microphone(args)
    speaker = open_speaker(args)
    player = Player(speaker)
    sounds = Sounds(
        speaker.rate,
        enabled=not args.no_sounds,
        files={name: getattr(args, f"{name}_wav") for name in ("awake", "done", "error", "timer")},
    )
    if args.wake_uri:
        wake: LocalWakeDetector | RemoteWakeDetector = RemoteWakeDetector(args.wake_uri, [w.name for w in wake_words])
    else:
        wake = LocalWakeDetector(wake_words, args.wake_refractory)
    judge = await load_judge(args)
    rules = CommandRules(
        threshold=args.vad_threshold, min_speech=args.min_speech,
        end_silence=args.end_silence if judge is None else judge.taking.unfinished_silence,
        max_command=args.max_command, speech_timeout=args.speech_timeout,
    )  # fmt: skip
    metrics = MetricsFile(args.metrics_file) if args.metrics_file else None
    turn_log = TurnLog(metrics)
    mode: Mode
    if args.mode == "direct":
        services = Services(
            {"stt": args.stt_uri, "llm": args.llm_uri, "tts": args.tts_uri},
            {"stt": args.stt_name, "llm": args.llm_name, "tts": args.tts_name},
            interface=args.zeroconf_host,
        )
        settings = DirectSettings(
            language=args.language, voice=args.voice, follow_up=not args.no_follow_up,
            prepare_after=args.prepare_after or None,
        )  # fmt: skip
        mode = DirectMode(services, player, sounds, rules, turn_log, settings, judge)
    else:
        mode = HaMode(
            uri=args.uri, zeroconf_name=args.zeroconf, zeroconf_host=args.zeroconf_host,
            info=build_info(args.name, args.area, wake_words, speaker.rate), player=player, sounds=sounds,
            rules=rules, turn_log=turn_log, follow_up=not args.no_follow_up, judge=judge,
            services=Services(
                {"stt": args.stt_uri, "llm": args.llm_uri}, {"stt": args.stt_name, "llm": args.llm_name},
                interface=args.zeroconf_host,
            ),
            language=args.language,
        )  # fmt: skip
    _LOGGER.info(
        "Satellite %s (%s mode): microphone %s, speaker %s, wake word %s",
        args.name, args.mode, mic.description, speaker.description,
        args.wake_uri or ", ".join(w.name for w in wake_words),
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    satellite = Satellite(Listener(mic, wake, VoiceActivity(args.vad)), player, mode)
    try:
        await satellite.run(stop)
    finally:
        if metrics is not None:
            metrics.close()
        if judge is not None:
            judge.close()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    wake_words = check_args(parser, args)
    setup_logging(args)
    limit_blas_threads()
    try:
        asyncio.run(run(args, wake_words))
    except DeviceHung as err:
        # Its thread holds the sound library's lock: PortAudio's clean-up at a normal exit would wait for
        # it for ever. A service manager (Restart=on-failure) starts the satellite again.
        logging.shutdown()
        sys.stderr.write(f"chatty-satellite: {err}\n")
        sys.stderr.flush()
        os._exit(1)
    except (DeviceError, SetupError) as err:
        sys.exit(f"chatty-satellite: {err}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

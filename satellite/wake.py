"""Wake word detection: local models from pymicro-wakeword and pyopen-wakeword, or a remote Wyoming wake service.

``--wake-word okay_nabu`` picks the engine that detects that word best on test
speech (microWakeWord for okay_nabu, openWakeWord for the others); a prefix
chooses one: ``micro:alexa``, ``openwakeword:hey_jarvis``. A model that is not
bundled is named by its file: a microWakeWord manifest (``hey_computer.json``,
its ``.tflite`` beside it) or an openWakeWord model (``hey_computer.tflite``).
After a detection the same word is ignored for the refractory period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient
from wyoming.wake import Detect, Detection

from .audio_io import MIC_RATE

_LOGGER = logging.getLogger(__name__)

MICRO_MODELS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
OPENWAKEWORD_MODELS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa", "hey_rhasspy")
BEST_ENGINE = {"okay_nabu": "micro"}  # measured on espeak-ng and Kokoro speech; openWakeWord for the rest
ENGINE_ALIASES = {"micro": "micro", "microwakeword": "micro", "oww": "openwakeword", "openwakeword": "openwakeword"}
OPENWAKEWORD_THRESHOLD = 0.5
HELD_SECONDS = 0.15  # a score above the cutoff again within this time is the same detection


class WakeWordError(ValueError):
    """A wake word that no engine here has."""


@dataclass(frozen=True)
class WakeWord:
    """A wake word model: its engine and name (and its file, if not a bundled one); ``phrase`` is what users say."""

    engine: str
    name: str
    path: Path | None = None
    spoken: str | None = None  # the phrase, where the model file says it

    @property
    def phrase(self) -> str:
        return self.spoken or self.name.replace("_", " ")


def _model_file(text: str) -> WakeWord:
    """A wake word named by its model file (see the module's docstring)."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise WakeWordError(f"wake word model {text} does not exist")
    if path.suffix.lower() == ".tflite":  # openWakeWord: the file is the model; "hey_computer_v0.1" says "hey computer"
        name = re.sub(r"_v\d+(\.\d+)*$", "", path.stem)
        return WakeWord("openwakeword", name, path.resolve())
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("type") != "micro" or not isinstance(manifest.get("micro"), dict):
            raise ValueError('not a microWakeWord manifest ("type": "micro" with a "micro" section)')
        model = path.parent / str(manifest["model"])
        phrase = str(manifest["wake_word"])
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise WakeWordError(f"wake word model {text}: {err}") from err
    if not model.is_file():
        raise WakeWordError(f"wake word model {text}: its model file {model} does not exist")
    return WakeWord("micro", path.stem, path.resolve(), phrase)


def parse_wake_word(text: str) -> WakeWord:
    if text.lower().endswith((".json", ".tflite")) or "/" in text:
        return _model_file(text)
    engine_text, _, name = text.rpartition(":")
    name = name.strip().lower().replace(" ", "_").replace("-", "_")
    if engine_text:
        engine = ENGINE_ALIASES.get(engine_text.lower())
        if engine is None:
            raise WakeWordError(f"unknown wake word engine {engine_text!r}; use micro or openwakeword")
    else:
        engine = BEST_ENGINE.get(name, "openwakeword" if name in OPENWAKEWORD_MODELS else "micro")
    models = MICRO_MODELS if engine == "micro" else OPENWAKEWORD_MODELS
    if name not in models:
        raise WakeWordError(f"no {engine} model {name!r}; {engine} has: {', '.join(models)}")
    return WakeWord(engine, name)


class LocalWakeDetector:
    """Runs the chosen models on 10 ms frames. Not thread-safe: call from one thread at a time."""

    def __init__(self, words: list[WakeWord], refractory: float = 2.0) -> None:
        self.words = words
        self.refractory = refractory
        self._micro: list[tuple[WakeWord, object, object]] = []
        self._oww_features: Any = None
        self._oww: list[tuple[WakeWord, object]] = []
        self._seconds = 0.0
        self._last: dict[str, float] = {}
        self._above: dict[str, float] = {}
        for word in words:
            self._load(word)

    def _load(self, word: WakeWord) -> None:
        if word.engine == "micro":
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures
            from pymicro_wakeword import Model as MicroModel

            if word.path is not None:
                micro = MicroWakeWord.from_config(word.path)
            else:
                micro = MicroWakeWord.from_builtin(MicroModel(word.name))
            self._micro.append((word, MicroWakeWordFeatures(), micro))
        else:
            from pyopen_wakeword import Model as OwwModel
            from pyopen_wakeword import OpenWakeWord, OpenWakeWordFeatures

            if self._oww_features is None:
                self._oww_features = OpenWakeWordFeatures.from_builtin()
            if word.path is not None:
                oww = OpenWakeWord.from_model(word.path)
            else:
                oww = OpenWakeWord.from_builtin(OwwModel(word.name))
            self._oww.append((word, oww))

    def _edge(self, name: str, above: bool) -> bool:
        """True only when a model's score rises above its cutoff after being below it for a while:
        one detection per utterance of the word (the score stays high for a few hundred ms)."""
        if not above:
            return False
        last = self._above.get(name)
        self._above[name] = self._seconds
        return last is None or self._seconds - last > HELD_SECONDS

    def process(self, pcm: bytes) -> str | None:
        """Feed 10 ms of 16 kHz mono audio; returns the name of a wake word heard, if any."""
        self._seconds += len(pcm) / 2 / MIC_RATE
        heard: list[str] = []
        for word, features, model in self._micro:
            for feature in features.process_streaming(pcm):  # type: ignore[attr-defined]
                result = model.process_streaming(feature)  # type: ignore[attr-defined]
                if result is not None and self._edge(word.name, bool(result)):
                    heard.append(word.name)
        if self._oww_features is not None:
            for embedding in self._oww_features.process_streaming(pcm):
                for word, model in self._oww:
                    for probability in model.process_streaming(embedding):  # type: ignore[attr-defined]
                        if self._edge(word.name, probability > OPENWAKEWORD_THRESHOLD):
                            heard.append(word.name)
        for name in heard:
            if self._seconds - self._last.get(name, -1e9) >= self.refractory:
                self._last[name] = self._seconds
                return name
        return None


class RemoteWakeDetector:
    """A Wyoming wake word service (``--wake-uri``): audio streams to it, ``detection`` events come back.

    A lost connection is opened again with back-off; audio meanwhile is dropped.
    """

    def __init__(self, uri: str, names: list[str] | None = None) -> None:
        self.uri = uri
        self.names = names or None
        self._client: AsyncClient | None = None
        self._detections: asyncio.Queue[str] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._backoff = 0.5

    async def _connect(self) -> None:
        while True:
            try:
                client = AsyncClient.from_uri(self.uri)
                await client.connect()
                await client.write_event(Detect(names=self.names).event())
                await client.write_event(AudioStart(rate=MIC_RATE, width=2, channels=1).event())
                self._client = client
                self._backoff = 0.5
                self._reader = asyncio.create_task(self._read(client))
                _LOGGER.info("Connected to the wake word service at %s", self.uri)
                return
            except OSError as err:
                _LOGGER.warning("Wake word service %s: %s; trying again in %.1f s", self.uri, err, self._backoff)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 30.0)

    async def _read(self, client: AsyncClient) -> None:
        try:
            while (event := await client.read_event()) is not None:
                if Detection.is_type(event.type):
                    self._detections.put_nowait(Detection.from_event(event).name or "wake word")
        except (OSError, asyncio.IncompleteReadError):
            pass
        _LOGGER.warning("The wake word service at %s closed the connection", self.uri)
        self._client = None

    async def process(self, pcm: bytes, timestamp_ms: int) -> str | None:
        if self._client is None:
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.create_task(self._connect())
            return None
        try:
            await self._client.write_event(
                AudioChunk(rate=MIC_RATE, width=2, channels=1, audio=pcm, timestamp=timestamp_ms).event()
            )
        except OSError:
            self._client = None
        try:
            return self._detections.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def close(self) -> None:
        for task in (self._reader, self._connecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._client is not None:
            with contextlib.suppress(OSError):
                await self._client.disconnect()

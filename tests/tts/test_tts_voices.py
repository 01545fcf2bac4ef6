"""Voice files: torch tensors read without torch, blends, and files that are not voices."""

from __future__ import annotations

import io
import pickle
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from wyoming_chatty_tts.voices import VoiceBank, VoiceError, load_torch_tensor


def _torch_save(path, array: np.ndarray, root: str = "voice") -> None:
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


def test_a_torch_voice_file_loads_without_torch(tmp_path):
    voice = np.random.default_rng(1).standard_normal((510, 1, 256)).astype(np.float32)
    _torch_save(tmp_path / "af_test.pt", voice)
    assert np.array_equal(load_torch_tensor(tmp_path / "af_test.pt"), voice)
    bank = VoiceBank()
    assert bank.add_folder(tmp_path) == 1
    assert bank.names == ["af_test"]


def test_pickles_that_run_code_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(Evil()))
    with pytest.raises(VoiceError, match="not allowed"):
        load_torch_tensor(tmp_path / "evil.pt")


def test_blends_are_weighted_averages():
    bank = VoiceBank()
    a, b = np.ones((510, 1, 256), np.float32), np.zeros((510, 1, 256), np.float32)
    bank.add("a_one", a)
    bank.add("b_zero", b)
    assert np.allclose(bank.style("a_one:0.7+b_zero:0.3"), 0.7)
    assert np.allclose(bank.style("a_one+b_zero"), 0.5)
    with pytest.raises(VoiceError, match="unknown voice 'c_x'"):
        bank.style("a_one:0.5+c_x:0.5")
    with pytest.raises(VoiceError, match="no positive weight"):
        bank.style("a_one:0+b_zero:0")


def test_wrong_shapes_are_refused():
    with pytest.raises(VoiceError, match="shape"):
        VoiceBank().add("bad", np.zeros((10, 256), np.float32))

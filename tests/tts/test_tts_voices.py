"""Voice files: torch tensors read without torch, blends, and files that are not voices."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
from helpers.voice_files import torch_save

from wyoming_chatty_tts.voices import VoiceBank, VoiceError, load_torch_tensor


def test_a_torch_voice_file_loads_without_torch(tmp_path):
    voice = np.random.default_rng(1).standard_normal((510, 1, 256)).astype(np.float32)
    torch_save(tmp_path / "af_test.pt", voice)
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

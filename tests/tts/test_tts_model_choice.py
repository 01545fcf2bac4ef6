"""The TTS server's choice between the model's forms: the one fastest here, whatever else ran meanwhile.

The choice is made once, on the first start, and kept; that start often shares the CPU with other
services loading their models. These tests run the choice on a scripted machine (a clock and runs
whose time is their own cost, three times as long while something else keeps the CPU busy); the
real forms are timed by every server start in test_tts_server and test_tts_cli.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from wyoming_chatty_tts import models
from wyoming_chatty_tts.voices import VoiceBank


class Machine:
    """A clock, and runs that take longer while the CPU is busy with something else."""

    def __init__(self, busy: tuple[float, float]) -> None:
        self.now = 0.0
        self.busy = busy
        self.loaded: list[str] = []

    def clock(self) -> float:
        return self.now

    def loader(self, costs: dict[str, float]) -> Callable[[Path], Callable[[], object]]:
        def load(path: Path) -> Callable[[], object]:
            self.loaded.append(path.name)
            if costs[path.name] < 0:
                raise RuntimeError("this form does not run on this CPU")

            def run() -> None:
                start, end = self.busy
                self.now += costs[path.name] * (3 if start <= self.now < end else 1)

            return run

        return load


FORMS = {"original": Path("original.onnx"), "optimized": Path("optimized.onnx"), "quantized": Path("quantized.onnx")}
COSTS = {"original.onnx": 1.2, "optimized.onnx": 1.25, "quantized.onnx": 1.0}


@pytest.mark.parametrize("busy", [(0.0, 6.0), (4.0, 12.0), (8.0, 16.0), (0.0, 12.0)])
def test_the_fastest_form_is_chosen_though_another_program_was_busy(tmp_path, busy):
    """Timed one form after the other, a burst of other work during the quantized form's runs made
    the original form look faster, and that choice was kept for good (the first audio of every
    answer 0.5-1 s later on this machine). In turns, each form's fastest run counts."""
    machine = Machine(busy)
    choice, path = models.choose_fastest(FORMS, tmp_path, machine.loader(COSTS), machine.clock)
    assert (choice, path) == ("quantized", FORMS["quantized"])
    kept = json.loads((tmp_path / "fastest-model.json").read_text())
    assert kept["choice"] == "quantized"
    assert kept["seconds"] == pytest.approx({"original": 1.2, "optimized": 1.25, "quantized": 1.0})


def test_the_choice_is_kept_and_an_older_way_of_timing_is_timed_again(tmp_path):
    machine = Machine((0.0, 0.0))
    models.choose_fastest(FORMS, tmp_path, machine.loader(COSTS), machine.clock)
    assert len(machine.loaded) == 3
    assert models.choose_fastest(FORMS, tmp_path, machine.loader(COSTS), machine.clock)[0] == "quantized"
    assert len(machine.loaded) == 3  # not timed again

    cache = tmp_path / "fastest-model.json"
    kept = json.loads(cache.read_text())
    key = json.loads(kept["key"])
    key["timing"] = models.TIMING_VERSION - 1  # a choice made by an earlier version
    cache.write_text(json.dumps({**kept, "key": json.dumps(key, sort_keys=True), "choice": "original"}))
    assert models.choose_fastest(FORMS, tmp_path, machine.loader(COSTS), machine.clock)[0] == "quantized"
    assert len(machine.loaded) == 6


def test_the_choice_is_kept_when_the_data_folder_is_reached_through_a_link(tmp_path):
    """``chatty up`` links its data folders to the ones given; the forms were timed again (a minute of
    the start) whenever a server reached the same files by another path."""
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    for path in FORMS.values():
        (real / path).write_bytes(b"")
    machine = Machine((0.0, 0.0))
    models.choose_fastest({n: real / p for n, p in FORMS.items()}, real, machine.loader(COSTS), machine.clock)
    linked = {name: link / path for name, path in FORMS.items()}
    choice = models.choose_fastest(linked, link, machine.loader(COSTS), machine.clock)
    assert choice == ("quantized", linked["quantized"])
    assert len(machine.loaded) == 3  # not timed again


def test_a_form_that_does_not_run_is_left_out(tmp_path, caplog):
    machine = Machine((0.0, 0.0))
    costs = {**COSTS, "quantized.onnx": -1.0}
    assert models.choose_fastest(FORMS, tmp_path, machine.loader(costs), machine.clock)[0] == "original"
    assert "The quantized model does not run here: this form does not run on this CPU" in caplog.text


def test_no_form_that_runs_is_a_clear_error(tmp_path):
    machine = Machine((0.0, 0.0))
    with pytest.raises(models.ModelError, match="none of the model's forms runs"):
        models.choose_fastest(FORMS, tmp_path, machine.loader(dict.fromkeys(COSTS, -1.0)), machine.clock)


def test_a_start_after_the_first_loads_only_the_form_chosen_then(tts_server, tts_data_dir, caplog):
    """The real forms, as the session's TTS server made, timed and chose them: a later start finds that choice
    without loading the rewritten form to make calibration inputs (about 3 s of every start, before)."""
    kokoro = tts_data_dir / "kokoro"
    kept = json.loads((kokoro / "fastest-model.json").read_text())
    caplog.set_level("INFO")
    path = models.prepare_model(
        None, kokoro, "auto", VoiceBank(), voice="jf_alpha", threads=None, device="cpu", language="en-us"
    )
    assert path.resolve() == Path(json.loads(kept["key"])["candidates"][kept["choice"]])
    assert not [r for r in caplog.records if "Loaded Kokoro" in r.getMessage()], caplog.text
    assert f"Running the {kept['choice']} form" in caplog.text

"""``chatty report METRICS.jsonl -o latency.png``: a picture of where the satellite's turns spend their time.

Left: a waterfall of a typical turn (the one with the median QUESTION-TO-RESPONSE_MS),
each stage from the last voiced frame of the question. Right: the distribution of
QUESTION-TO-RESPONSE_MS over all answered turns, with its median, p95 and the
500 ms target.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

TARGET_MS = 500
STAGES = [  # label, start moment (None: the last voiced frame), end moment: names from the satellite's stages_ms
    ("end of speech detected", None, "end_of_speech"),
    ("transcript ready", None, "transcript"),
    ("LLM: first token", "llm_sent", "llm_first"),
    ("LLM: whole answer", "llm_sent", "llm_done"),
    ("TTS: first audio", "tts_text", "tts_first_audio"),
    ("first sound played", None, "first_played"),
]


class ReportError(Exception):
    """The metrics file cannot be used; the message says why."""


def read_turns(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ReportError(f"{path}: cannot read it ({err.strerror})") from None
    turns = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            turns.append(json.loads(line))
        except ValueError:
            raise ReportError(f"{path}, line {number}: not a JSON object") from None
    answered = [t for t in turns if t.get("QUESTION-TO-RESPONSE_MS") is not None and t.get("stages_ms")]
    if not answered:
        raise ReportError(f"{path}: no answered turns with timings (write it with the satellite's --metrics-file)")
    return answered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def typical(turns: list[dict[str, Any]]) -> dict[str, Any]:
    median = statistics.median_low([t["QUESTION-TO-RESPONSE_MS"] for t in turns])
    return next(t for t in turns if t["QUESTION-TO-RESPONSE_MS"] == median)


def draw(turns: list[dict[str, Any]], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turn = typical(turns)
    stages = turn["stages_ms"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})

    rows = []
    for label, start_name, end_name in STAGES:
        start = stages.get(start_name) if start_name else 0.0
        end = stages.get(end_name)
        if start is not None and end is not None:
            rows.append((label, start, end))
    for index, (label, start, end) in enumerate(rows):
        left.barh(index, max(end - start, 2), left=start, color="#4c72b0" if "LLM" not in label else "#dd8452")
        left.text(end + 15, index, f"{end - start:.0f} ms", va="center", fontsize=9)
    eos, played = stages.get("end_of_speech"), stages.get("first_played")
    if eos is not None:
        left.axvline(eos, color="grey", linestyle="--", linewidth=1)
    if played is not None:
        left.axvline(played, color="#c44e52", linewidth=1.5)
    left.set_yticks(range(len(rows)), [r[0] for r in rows])
    left.invert_yaxis()
    left.set_xlabel("ms after the last voiced frame of the question")
    left.set_title(
        f"A typical turn: question to response {turn['QUESTION-TO-RESPONSE_MS']:.0f} ms, "
        f"voice to voice {turn['VOICE-TO-VOICE_MS']:.0f} ms",
        fontsize=10,
    )

    values = [t["QUESTION-TO-RESPONSE_MS"] for t in turns]
    right.hist(values, bins=min(30, max(5, len(values) // 2)), color="#4c72b0")
    for value, style, name in (
        (percentile(values, 50), "-", "median"), (percentile(values, 95), ":", "p95"), (TARGET_MS, "--", "target"),
    ):  # fmt: skip
        right.axvline(value, color="#c44e52" if name != "target" else "grey", linestyle=style,
                      label=f"{name} {value:.0f} ms")  # fmt: skip
    right.set_xlabel("QUESTION-TO-RESPONSE_MS")
    right.set_ylabel("turns")
    right.set_title(f"{len(values)} answered turns", fontsize=10)
    right.legend()
    figure.suptitle("Chatty: from the end of the question to the first sound of the answer")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)

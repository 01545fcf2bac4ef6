"""One table from the four benchmarks' JSON files in bench/out (STT, TTS, LLM, end to end), also as JSON.

bench/run_all.sh        # runs all four, then this
.venv/bin/python bench/summary.py   # only the table, from the last runs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "bench"))

from stt_bench import percentile  # noqa: E402


def _load(name: str) -> Any:
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def _row(rows: list, figure: str, ours: list[float] | None, peer: list[float] | None = None, peer_name: str = ""):
    if not ours:
        return
    row = {"figure": figure, "median": percentile(ours, 50), "p95": percentile(ours, 95)}
    if peer:
        row.update(peer=peer_name, peer_median=percentile(peer, 50), peer_p95=percentile(peer, 95))
        row["ratio"] = row["median"] / row["peer_median"] if row["peer_median"] else None
    rows.append(row)


def collect() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    stt = _load("stt.json")
    if stt:
        ours, peer = stt["results"]["chatty"], stt["results"].get("wyoming-faster-whisper", {})
        _row(rows, "STT: audio-stop -> transcript (ms)", ours["latency_ms"], peer.get("latency_ms"),
             "wyoming-faster-whisper")  # fmt: skip
    tts = _load("tts.json")
    if tts:
        typical = tts["typical reply"]
        baseline = typical["baseline (kokoro-onnx, whole text)"]
        _row(rows, "TTS: typical reply, first audio (ms)", typical["chatty streaming"]["first_audio_ms"],
             baseline["first_audio_ms"], "kokoro-onnx whole text")  # fmt: skip
        _row(rows, "TTS: real-time factor", typical["chatty streaming"]["rtf"], baseline["rtf"],
             "kokoro-onnx whole text")  # fmt: skip
    llm = _load("llm.json")
    if llm:
        paths = llm["paths"]
        for backend in ("llama.cpp", "openai"):
            direct, via = paths.get(f"{backend} direct"), paths.get(f"{backend} via chatty")
            if direct and via:
                _row(rows, f"LLM ({backend}): first token through Chatty (ms)", [v[0] * 1000 for v in via],
                     [d[0] * 1000 for d in direct], "the backend called directly")  # fmt: skip
                _row(rows, f"LLM ({backend}): overhead on the first token (ms)",
                     [(v[0] - d[0]) * 1000 for d, v in zip(direct, via, strict=True)])  # fmt: skip
    turns = OUT / "e2e-turns.jsonl"
    if turns.exists():
        records = [json.loads(line) for line in turns.read_text().splitlines()]
        answered = [r for r in records if r.get("outcome") == "answered"]
        for figure in ("QUESTION-TO-RESPONSE_MS", "VOICE-TO-VOICE_MS", "STT_MS", "LLM-TTF_MS", "LLM-TOTAL_MS",
                       "TTS-TTFA_MS"):  # fmt: skip
            _row(rows, f"end to end: {figure}", [r[figure] for r in answered if r.get(figure) is not None])
        for stage in ("end_of_speech", "transcript", "llm_first", "tts_first_audio", "first_played"):
            values = [r["stages_ms"][stage] for r in answered if r.get("stages_ms", {}).get(stage) is not None]
            _row(rows, f"end to end: {stage} (ms after the last word)", values)
    return rows


def main() -> None:
    rows = collect()
    if not rows:
        sys.exit("no benchmark results in bench/out: run bench/run_all.sh")
    header = f"{'figure':<56} {'median':>9} {'p95':>9}   {'peer median':>11} {'ratio':>6}  peer"
    print(header)
    print("-" * len(header))
    for row in rows:
        peer = f"{row['peer_median']:>11.2f} {row['ratio']:>6.2f}  {row['peer']}" if "peer" in row else ""
        print(f"{row['figure']:<56} {row['median']:>9.2f} {row['p95']:>9.2f}   {peer}")
    (OUT / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{OUT / 'summary.json'}")


if __name__ == "__main__":
    main()

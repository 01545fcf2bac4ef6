"""The soak run in small: turns back to back through the real stack, each logged exactly once.

The long version is ``bench/run_e2e.sh --rounds 30`` (300 turns; it also reports each process's
memory growth after warm-up).
"""

from __future__ import annotations

import pytest
from helpers import SATELLITE_DATA
from helpers.satellite_io import pcm16k, run_satellite
from helpers.speech import words

from chatty_common.audio import write_wav

TURNS = 4


@pytest.fixture(scope="module")
def servers(stt_server, llm_server, tts_server) -> dict[str, str]:
    return {"stt": stt_server.uri, "llm": llm_server.uri, "tts": tts_server.uri}


async def test_turns_back_to_back_are_each_answered_and_logged_once(
    tmp_path, servers, stt_server, llm_server, tts_server
):
    question = pcm16k(SATELLITE_DATA / "nabu_capital.wav")
    mic = write_wav(tmp_path / "mic.wav", (question + bytes(32000 * 6)) * TURNS)
    _, turns, log = run_satellite(tmp_path, mic, servers, timeout=300)
    assert len(turns) == TURNS, log
    assert [t["outcome"] for t in turns] == ["answered"] * TURNS, log
    assert all(words(t["transcript"]) == words("What is the capital of France?") for t in turns)
    assert all(t["QUESTION-TO-RESPONSE_MS"] is not None and "paris" in t["answer"].lower() for t in turns)
    assert len({t["conversation_id"] for t in turns}) == 1  # one conversation across the turns

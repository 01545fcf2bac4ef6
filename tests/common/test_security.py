"""Where the servers listen: only on the address ``--uri`` names (Wyoming has no authentication)."""

from __future__ import annotations

import psutil
import pytest


def _listening(pid: int) -> set[tuple[str, int]]:
    process = psutil.Process(pid)
    return {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


@pytest.mark.parametrize("server", ["stt_server", "tts_server", "llm_server"])
def test_a_server_listens_only_where_its_uri_says(request, server):
    process = request.getfixturevalue(server)
    assert _listening(process.process.pid) == {("127.0.0.1", process.port)}

"""A TCP front for a real LLM backend that can be switched into each way a backend fails.

The LLM server is pointed at the switch's port. ``forward`` passes bytes both
ways to the real backend (llama_cpp.server or the Ollama stand-in); the other
modes are the faults of issue #8: nothing listening, an HTTP error, silence,
garbage, and a connection that dies after the first bytes of the answer.
"""

from __future__ import annotations

import asyncio
import contextlib

FAULTS = ("refuses", "http-error", "hangs", "garbage", "dies-mid-answer")


class BackendSwitch:
    """Listens on one fixed port on 127.0.0.1 and behaves as ``mode`` says."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.mode = "forward"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def set_mode(self, mode: str) -> None:
        """Switch; ``refuses`` closes the port (connections are refused), any other mode reopens it."""
        self.mode = mode
        for connection in list(self._connections):  # what was under way ends with the old mode
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if mode == "refuses" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "refuses" and self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.set_mode("refuses")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self.mode == "forward" or self.mode == "dies-mid-answer":
                await self._forward(reader, writer, cut=self.mode == "dies-mid-answer")
            elif self.mode == "hangs":
                await reader.read(1 << 16)
                await asyncio.sleep(3600)
            else:
                await reader.readuntil(b"\r\n\r\n")
                if self.mode == "http-error":
                    body = b'{"error": "model is loading"}'
                    status = b"503 Service Unavailable"
                else:
                    body = b"<html>502 Bad Gateway, but with a 200</html>"
                    status = b"200 OK"
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, len(body), body)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: bool) -> None:
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, cut_after_body: bool) -> None:
            seen = b""
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
                seen += data
                # The headers and the first bytes of the body went out: now the backend "dies".
                if cut_after_body and b"\r\n\r\n" in seen and len(seen.split(b"\r\n\r\n", 1)[1]) > 0:
                    return

        try:
            upstream = asyncio.create_task(pump(reader, backend_writer, False))
            await pump(backend_reader, writer, cut)
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upstream
        finally:
            backend_writer.close()

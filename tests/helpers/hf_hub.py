"""A local stand-in for the Hugging Face Hub's file endpoints, for download tests (the hub is not reachable here).

It answers ``HEAD``/``GET /{repo}/resolve/{revision}/{path}`` as huggingface.co does for a large
(LFS) file: a 302 to a separate storage host (here a second port) carrying ``X-Repo-Commit``,
``X-Linked-Etag`` (the file's SHA-256) and ``X-Linked-Size``; missing files get a 404 with
``X-Error-Code: EntryNotFound``. The storage host serves the bytes with ``Range`` support, as the
CDN does, so ``huggingface_hub`` (pointed here by ``HF_ENDPOINT``) runs its real code path:
metadata, redirect, download to ``.incomplete``, size check, resume. A file can be served broken on
purpose: cut off after some bytes, with other bytes than its hash says, or as a server error.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    """A file the hub serves, and how it goes wrong (if it does)."""

    data: bytes
    cut_after: int | None = None  # the storage host closes the connection after this many bytes of the file
    cuts: int = 1_000_000  # ... that many times (then it sends the rest)
    corrupt: bool = False  # the bytes sent differ from the ones the hash and size describe
    status: int | None = None  # the hub answers this error status instead
    failures: int = 1_000_000  # ... that many times (then it serves the file)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class LocalHub:
    """The hub and its storage host on two ports of 127.0.0.1; ``endpoint`` goes into ``HF_ENDPOINT``."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], HubFile] = {}  # (repo, path) → file
        self.downloads: list[str] = []  # the paths whose bytes were sent (completely or not)
        self.asked: Counter[str] = Counter()  # requests for each path (HEAD and GET)
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._hub_handler())
        self._storage = ThreadingHTTPServer(("127.0.0.1", 0), self._storage_handler())
        self._threads = [
            threading.Thread(target=server.serve_forever, name="local hub", daemon=True)
            for server in (self._hub, self._storage)
        ]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes, **trouble: object) -> HubFile:
        hub_file = HubFile(data, **trouble)  # type: ignore[arg-type]
        self.files[(repo, path)] = hub_file
        return hub_file

    def __enter__(self) -> LocalHub:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for server in (self._hub, self._storage):
            server.shutdown()
            server.server_close()

    def _by_hash(self, sha256: str) -> tuple[str, HubFile] | None:
        for (_repo, path), hub_file in self.files.items():
            if hub_file.sha256 == sha256:
                return path, hub_file
        return None

    def _hub_handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self
        resolve = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>[^?]+)")

        class Hub(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._resolve(with_body=False)

            def do_GET(self) -> None:
                self._resolve(with_body=True)

            def _resolve(self, with_body: bool) -> None:
                match = resolve.match(self.path)
                hub_file = hub.files.get((match["repo"], match["path"])) if match else None
                if match is None or hub_file is None:
                    body = b"Entry not found"
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if with_body:
                        self.wfile.write(body)
                    return
                if match is not None:
                    hub.asked[match["path"]] += 1
                if hub_file.status is not None and hub_file.failures > 0:
                    hub_file.failures -= 1
                    body = b"Internal Error - We're working hard to fix this as soon as possible!"
                    self.send_response(hub_file.status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if with_body:
                        self.wfile.write(body)
                    return
                storage = f"http://127.0.0.1:{hub._storage.server_address[1]}/repos/{hub_file.sha256}"
                self.send_response(302)
                self.send_header("Location", storage)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
                self.send_header("X-Linked-Size", str(len(hub_file.data)))
                self.send_header("ETag", f'"{hub_file.sha256}"')
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Hub

    def _storage_handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Storage(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                found = hub._by_hash(self.path.rsplit("/", 1)[-1].split("?")[0])
                if found is None:
                    self.send_error(404)
                    return
                path, hub_file = found
                hub.downloads.append(path)
                data = hub_file.data
                if hub_file.corrupt:
                    data = bytes(byte ^ 0xFF for byte in data[:64]) + data[64:]
                start = 0
                if range_header := re.match(r"bytes=(\d+)-", self.headers.get("Range", "")):
                    start = int(range_header[1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                body = data[start:]
                if hub_file.cut_after is not None and hub_file.cuts > 0:
                    hub_file.cuts -= 1
                    self.wfile.write(body[: max(0, hub_file.cut_after - start)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Storage

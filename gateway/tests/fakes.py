"""Test doubles that are real HTTP servers: an upstream service that records what it got."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = [("Content-Type", "application/json")]


@dataclass
class Received:
    """One request as the upstream saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class FakeUpstream:
    """A threaded HTTP/1.1 server on loopback standing in for a service.

    Routes: `/slow?seconds=N` sleeps first; `/big?bytes=N` returns N bytes; `/cacheable`
    says it may be cached for a minute; `If-None-Match: "v1"` (the echo's ETag) gets a 304;
    `/readyz`
    answers `ready_status`; `/openapi.json` returns `spec`; the JWKS path returns `jwks`
    (and counts `jwks_fetches`); anything else is recorded and echoed as JSON.
    """

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    spec: dict[str, Any] | None = None
    ready_status: int = 200
    received: list[Received] = field(default_factory=list)
    jwks_fetches: int = 0
    jwks_paths: list[str] = field(default_factory=list)
    # TCP connections accepted (a kept-alive connection serves many requests).
    connections: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeUpstream:
        """Serve in a daemon thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output quiet

            def setup(self) -> None:
                fake.connections += 1  # one handler per connection, not per request
                super().setup()

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if status != 304:  # a 304 has no body, and its length would be the 200's
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                body = self._body()
                if parts.path.endswith("jwks.json"):
                    fake.jwks_fetches += 1
                    fake.jwks_paths.append(parts.path)
                    self._send(200, json.dumps(fake.jwks).encode(), JSON)
                    return
                if parts.path == "/openapi.json" and fake.spec is not None:
                    self._send(200, json.dumps(fake.spec).encode(), JSON)
                    return
                if parts.path == "/readyz":
                    self._send(fake.ready_status, b"{}", [])
                    return
                fake.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                if parts.path.endswith("/slow"):
                    time.sleep(float(query.get("seconds", ["2"])[0]))
                if parts.path.endswith("/cacheable"):
                    self._send(200, b"{}", [*JSON, ("Cache-Control", "public, max-age=60")])
                    return
                if parts.path.endswith("/big"):
                    size = int(query["bytes"][0])
                    self._send(200, b"x" * size, [("Content-Type", "application/octet-stream")])
                    return
                if self.headers.get("If-None-Match") == '"v1"':
                    self._send(304, b"", [("ETag", '"v1"')])
                    return
                echo = {"method": self.command, "path": self.path, "body": body.decode("latin-1")}
                self._send(
                    200,
                    json.dumps(echo).encode(),
                    [
                        ("Content-Type", "application/json"),
                        ("Set-Cookie", "a=1; Path=/"),
                        ("Set-Cookie", "b=2; Path=/"),
                        ("Connection", "X-Upstream-Hop"),
                        ("X-Upstream-Hop", "must not leak"),
                        ("ETag", '"v1"'),
                    ],
                )

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

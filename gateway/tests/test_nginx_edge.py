"""The nginx edge, rendered from its template and run for real in front of a gateway."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from gateway.nginx.render import render, standalone_main
from gateway.tests.conftest import bearer, token
from gateway.tests.fakes import FakeUpstream
from shared.testing import free_port, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class PathRecorder:
    """WSGI middleware noting which paths reached the gateway."""

    app: Any
    paths: list[str] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.paths.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        return self.app(environ, start_response)


@dataclass
class Edge:
    url: str
    gateway_saw: list[str]


def wait_for_port(port: int, process: subprocess.Popen, prefix: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {(prefix / 'error.log').read_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=10, what="nginx listening")


@pytest.fixture
def edge(make_gateway, upstream: FakeUpstream, tmp_path: Path) -> Iterator[Edge]:
    """nginx (rendered template) -> gateway (threaded server) -> fake services."""
    recorder = PathRecorder(make_gateway(TRUSTED_PROXY_HOPS=1))
    server = make_server("127.0.0.1", 0, recorder, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    host_port = upstream.url.removeprefix("http://")
    port = free_port()
    (tmp_path / "edge.conf").write_text(
        render(
            {
                "GATEWAY_UPSTREAM": f"127.0.0.1:{server.server_port}",
                "ORDERS_UPSTREAM": host_port,
                "NOTIFICATIONS_UPSTREAM": host_port,
                "EDGE_LISTEN": f"127.0.0.1:{port}",
                "EDGE_CACHE_DIR": str(tmp_path / "cache"),
            }
        )
    )
    (tmp_path / "nginx.conf").write_text(standalone_main(tmp_path))
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, tmp_path)
        yield Edge(url=f"http://127.0.0.1:{port}", gateway_saw=recorder.paths)
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.shutdown()


def test_a_protected_get_takes_the_fast_path_with_the_verified_user(edge, upstream):
    response = requests.get(
        f"{edge.url}/api/v1/orders/o-1", headers={**bearer("user-5"), "X-User-Id": "admin"}
    )

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    (seen,) = upstream.received
    assert seen.header("X-User-Id") == "user-5"
    assert seen.header("X-Request-ID")
    # The gateway only verified the token; the service answered the request itself.
    assert edge.gateway_saw == ["GET /_auth/verify"]


def test_the_edge_caches_a_verification_for_at_most_a_second(edge):
    headers = bearer("user-5")

    for _ in range(4):
        assert requests.get(f"{edge.url}/api/v1/orders", headers=headers).status_code == 200
    # Cached within a wall-clock second; four quick calls straddle at most one boundary.
    verified = len(edge.gateway_saw)
    assert verified <= 2
    time.sleep(1.05)
    assert requests.get(f"{edge.url}/api/v1/orders", headers=headers).status_code == 200

    assert len(edge.gateway_saw) == verified + 1
    assert set(edge.gateway_saw) == {"GET /_auth/verify"}


def test_a_forged_token_is_refused_with_the_gateways_problem(edge, upstream):
    forged = token("user-5", kid="unknown-kid")

    response = requests.get(
        f"{edge.url}/api/v1/orders/o-1", headers={"Authorization": f"Bearer {forged}"}
    )

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert upstream.received == []


def test_writes_go_through_the_gateway(edge, upstream):
    response = requests.post(
        f"{edge.url}/api/v1/orders", json={"sku": "a"}, headers=bearer("user-5")
    )

    assert response.status_code == 200
    assert "POST /api/v1/orders" in edge.gateway_saw
    assert upstream.received[0].header("X-User-Id") == "user-5"


def test_a_body_over_one_mib_is_refused_at_the_edge(edge, upstream):
    response = requests.post(
        f"{edge.url}/api/v1/orders", data=b"x" * (1024 * 1024 + 1), headers=bearer()
    )

    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert edge.gateway_saw == []

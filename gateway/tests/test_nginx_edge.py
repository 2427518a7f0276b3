"""The nginx edge, rendered from its template and run for real in front of a gateway."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from gateway.nginx.render import render, standalone_main
from gateway.revocation import user_deactivated_handler
from gateway.tests.conftest import bearer, token
from gateway.tests.fakes import FakeUpstream
from gateway.tests.test_revocation import deactivated
from tests.support import free_port, wait_for

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
    gateway: Flask
    prefix: Path


def wait_for_port(port: int, process: subprocess.Popen, prefix: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {(prefix / 'error.log').read_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=10, what="nginx listening")


@pytest.fixture
def make_edge(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> Iterator[Callable[..., Edge]]:
    """nginx (rendered template) -> gateway (threaded server) -> fake services.

    The edge's rate limits are rendered from the gateway's settings, as in a deployment.
    """
    running: list[tuple[subprocess.Popen, Any]] = []

    def make(*, services: str | None = None, **config: Any) -> Edge:
        gateway = make_gateway(TRUSTED_PROXY_HOPS=1, TRUSTED_PROXIES="127.0.0.1", **config)
        recorder = PathRecorder(gateway)
        server = make_server("127.0.0.1", 0, recorder, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        prefix = tmp_path / f"edge-{len(running)}"
        prefix.mkdir()
        host_port = services or upstream.url.removeprefix("http://")
        port = free_port()
        limits = {name: str(value) for name, value in config.items() if "RATE_LIMIT" in name}
        (prefix / "edge.conf").write_text(
            render(
                {
                    "GATEWAY_UPSTREAM": f"127.0.0.1:{server.server_port}",
                    "ORDERS_UPSTREAM": host_port,
                    "NOTIFICATIONS_UPSTREAM": host_port,
                    "EDGE_LISTEN": f"127.0.0.1:{port}",
                    "EDGE_CACHE_DIR": str(prefix / "cache"),
                    **limits,
                }
            )
        )
        (prefix / "nginx.conf").write_text(standalone_main(prefix))
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running.append((process, server))
        wait_for_port(port, process, prefix)
        return Edge(f"http://127.0.0.1:{port}", recorder.paths, gateway, prefix)

    yield make
    for process, server in running:
        process.terminate()
        process.wait(timeout=10)
        server.shutdown()


@pytest.fixture
def edge(make_edge) -> Edge:
    """An edge with the gateway's default settings."""
    return make_edge()


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

    started = time.time()
    for _ in range(4):
        assert requests.get(f"{edge.url}/api/v1/orders", headers=headers).status_code == 200
    ended = time.time()
    # Cached for the wall-clock second: at most one verification per second the calls span
    # (one or two when they are quick, more only on a machine slow enough to take longer).
    verified = len(edge.gateway_saw)
    assert 1 <= verified <= int(ended) - int(started) + 1
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


def raw_exchange(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library tidying them up); status, headers, body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split(" ")[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT AN HTTP REQUEST\r\n\r\n", 400),
        (b"GET /_auth/verify HTTP/1.1\r\nHost: edge\r\n\r\n", 404),
        (b"TRACE / HTTP/1.1\r\nHost: edge\r\n\r\n", 405),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: edge\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: edge\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
def test_errors_the_edge_makes_itself_are_problems_too(edge, request_bytes, status):
    answered, headers, body = raw_exchange(
        edge.url, request_bytes.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    )

    assert answered == status
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["request_id"] == headers["X-Request-ID"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    # Without a version; the header itself needs a module nginx does not ship (see template).
    assert headers["Server"] == "nginx"
    assert edge.gateway_saw == []


def test_a_service_that_is_down_is_a_503_problem_at_the_edge(make_edge):
    edge = make_edge(services=f"127.0.0.1:{free_port()}")

    response = requests.get(f"{edge.url}/api/v1/orders/o-1", headers=bearer())

    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "//metrics", "/%6Detrics", "/./metrics"])
def test_the_gateways_metrics_are_not_served_to_the_outside(edge, path):
    status, headers, body = raw_exchange(
        edge.url, f"GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n".encode()
    )

    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert edge.gateway_saw == []


def test_the_fast_path_holds_the_gateways_per_user_limit(make_edge, upstream):
    edge = make_edge(GATEWAY_RATE_LIMIT_USER="5/minute")
    headers = bearer("busy")

    responses = [requests.get(f"{edge.url}/api/v1/orders/o-1", headers=headers) for _ in range(30)]

    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 5 + [429] * 25
    refused = responses[-1]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    # A leaky bucket of 5 a minute frees a place every 12 s.
    assert refused.headers["Retry-After"] == "12"
    assert len(upstream.received) == 5


def test_writes_and_reads_count_against_one_budget_per_token(make_edge, upstream):
    edge = make_edge(GATEWAY_RATE_LIMIT_USER="5/minute")
    headers = bearer("busy")

    writes = [
        requests.post(f"{edge.url}/api/v1/orders", json={}, headers=headers) for _ in range(2)
    ]
    reads = [requests.get(f"{edge.url}/api/v1/orders", headers=headers) for _ in range(10)]

    assert [r.status_code for r in writes + reads] == [200] * 5 + [429] * 7
    assert len(upstream.received) == 5


def test_the_edge_limits_each_client_address(make_edge):
    edge = make_edge(GATEWAY_RATE_LIMIT_IP="5/minute")

    statuses = [
        requests.get(f"{edge.url}/api/v1/orders", headers=bearer(f"user-{i}")).status_code
        for i in range(8)
    ]

    assert statuses == [200] * 5 + [429] * 3


def test_both_paths_show_services_the_client_at_the_same_hop(edge, upstream):
    spoofed = {"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https"}

    requests.get(f"{edge.url}/api/v1/orders/o-1", headers={**bearer(), **spoofed})
    requests.post(f"{edge.url}/api/v1/orders", json={}, headers={**bearer(), **spoofed})

    fast, through_gateway = upstream.received
    assert edge.gateway_saw[-1] == "POST /api/v1/orders"
    for seen in (fast, through_gateway):
        hops = [hop.strip() for hop in seen.header("X-Forwarded-For").split(",")]
        schemes = [s.strip() for s in seen.header("X-Forwarded-Proto").split(",")]
        # Services trust two hops (TRUSTED_PROXY_HOPS=2): the second from the right.
        assert len(hops) == 3
        assert hops[-2] == "127.0.0.1"
        assert schemes[-2] == "http"


def test_a_cached_verification_holds_for_that_token_only(edge, upstream):
    # Another payload (an admin's) under the signature of a token just verified: the cache
    # must not answer for it, or it would reach the service as if checked.
    genuine = token("user-5")
    header, _, signature = genuine.split(".")
    _, payload, _ = token("admin", roles=("admin",)).split(".")
    forged = f"{header}.{payload}.{signature}"

    ok = requests.get(f"{edge.url}/api/v1/orders", headers={"Authorization": f"Bearer {genuine}"})
    refused = requests.get(
        f"{edge.url}/api/v1/orders", headers={"Authorization": f"Bearer {forged}"}
    )

    assert ok.status_code == 200
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert [seen.header("Authorization") for seen in upstream.received] == [f"Bearer {genuine}"]


def raw_get(edge: Edge, target: str, headers: dict[str, str]) -> int:
    """A GET of `target` exactly as written (requests would tidy the path up first)."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    status, _, _ = raw_exchange(
        edge.url,
        f"GET {target} HTTP/1.1\r\nHost: edge\r\n{lines}Connection: close\r\n\r\n".encode(),
    )
    return status


@pytest.mark.parametrize(
    ("target", "proxied"),
    [
        ("/api/v1/orders/x/../o-1", "/api/v1/orders/o-1"),
        ("/api/v1/notifications/%2e%2e/orders/o-1", "/api/v1/orders/o-1"),
        ("/api/v1/orders//o-1/./", "/api/v1/orders/o-1/"),
        ("/api/v1/orders/a%20b?status=pending", "/api/v1/orders/a%20b?status=pending"),
    ],
)
def test_the_fast_path_proxies_the_path_nginx_routed_on(edge, upstream, target, proxied):
    assert raw_get(edge, target, bearer("user-5")) == 200

    assert [seen.path for seen in upstream.received] == [proxied]


@pytest.mark.parametrize(
    ("target", "proxied"),
    [
        ("/api/v1/orders/../auth/me", "/api/v1/auth/me"),
        ("//api/v1/auth/./me", "/api/v1/auth/me"),
        ("/api/v1/auth/%2e%2e/auth/me", "/api/v1/auth/me"),
    ],
)
def test_the_gateway_gets_the_path_nginx_routed_on(edge, upstream, target, proxied):
    assert raw_get(edge, target, bearer("user-5")) == 200

    assert edge.gateway_saw == [f"GET {proxied}"]
    assert [seen.path for seen in upstream.received] == [proxied]


def test_a_request_the_fast_path_hands_to_the_gateway_keeps_the_routed_path(edge, upstream):
    # A browser call (Origin) on the fast path's prefix goes to the gateway instead.
    headers = {**bearer("user-5"), "Origin": "https://app.example.com"}

    assert raw_get(edge, "/api/v1/orders/x/../o-1", headers) == 200

    assert edge.gateway_saw == ["GET /api/v1/orders/o-1"]
    assert [seen.path for seen in upstream.received] == ["/api/v1/orders/o-1"]


def test_a_deactivated_users_token_stops_working_on_the_fast_path_once_its_cache_expires(edge):
    headers = bearer("leaving", iat=int(time.time()) - 5)
    for _ in range(3):
        assert requests.get(f"{edge.url}/api/v1/orders", headers=headers).status_code == 200

    user_deactivated_handler(edge.gateway.extensions["revocations"])(deactivated("leaving"))

    def answer_the_gateway_verified() -> list[requests.Response]:
        asked = len(edge.gateway_saw)
        response = requests.get(f"{edge.url}/api/v1/orders", headers=headers)
        return [response] if len(edge.gateway_saw) > asked else []

    # nginx may still answer from the verification it cached for this second; the first
    # request it hands to the gateway again is refused, and so is every one after it.
    (response,) = wait_for(
        answer_the_gateway_verified, timeout=15, what="nginx verifying the token again"
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert requests.get(f"{edge.url}/api/v1/orders", headers=headers).status_code == 401


def test_polling_an_unchanged_page_through_the_edge_costs_nothing(make_edge, upstream):
    edge = make_edge(GATEWAY_RATE_LIMIT_USER="5/minute")
    headers = bearer("poller")
    page = requests.get(f"{edge.url}/api/v1/notifications", headers=headers)
    poll = {**headers, "If-None-Match": page.headers["ETag"]}

    polls = [requests.get(f"{edge.url}/api/v1/notifications", headers=poll) for _ in range(10)]

    assert page.status_code == 200
    assert [(r.status_code, r.content) for r in polls] == [(304, b"")] * 10
    # One request of five spent (the first page); the polls gave theirs back.
    assert {r.headers["RateLimit-Remaining"] for r in polls} == {"4"}
    assert requests.get(f"{edge.url}/api/v1/orders", headers=headers).status_code == 200


def test_the_docs_page_keeps_its_content_security_policy_through_the_edge(edge):
    page = requests.get(f"{edge.url}/docs/", timeout=10)
    bundle = requests.get(f"{edge.url}/docs/swagger-ui-bundle.js", timeout=10)

    assert page.status_code == 200
    assert "swagger-initializer.js" in page.text
    for response in (page, bundle):
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
    assert edge.gateway_saw == ["GET /docs/", "GET /docs/swagger-ui-bundle.js"]

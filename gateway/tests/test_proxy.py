"""Forwarding: headers in both directions, body limits, timeouts, streaming."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import REGISTRY
from werkzeug.serving import make_server

from gateway.tests.conftest import bearer
from tests.support import free_port

MIB = 1024 * 1024


def serve(app) -> tuple[str, object]:
    """`app` on a real threaded HTTP server (a new thread per connection, like gunicorn's)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@pytest.fixture
def live_gateway(gateway) -> Iterator[str]:
    """The gateway on a real threaded HTTP server (for chunked bodies and streaming)."""
    url, server = serve(gateway)
    yield url
    server.shutdown()


def test_a_request_id_is_made_forwarded_and_echoed(client, upstream):
    response = client.get("/api/v1/orders", headers=bearer())

    (seen,) = upstream.received
    assert response.headers["X-Request-ID"]
    assert seen.header("X-Request-ID") == response.headers["X-Request-ID"]


def test_the_clients_request_id_and_trace_are_kept(client, upstream):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.get(
        "/api/v1/orders",
        headers={
            **bearer(),
            "X-Request-ID": "req-123",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
    )

    (seen,) = upstream.received
    assert response.headers["X-Request-ID"] == "req-123"
    assert seen.header("X-Request-ID") == "req-123"
    assert seen.header("traceparent").split("-")[1] == trace_id


def test_x_forwarded_for_and_proto_get_this_hop_appended(client, upstream):
    client.get(
        "/api/v1/orders",
        headers={**bearer(), "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )

    (seen,) = upstream.received
    assert seen.header("X-Forwarded-For") == "203.0.113.9, 198.51.100.7"
    assert seen.header("X-Forwarded-Proto") == "https, http"


def test_hop_by_hop_headers_do_not_cross_the_gateway(client, upstream):
    response = client.get(
        "/api/v1/orders",
        headers={**bearer(), "Connection": "X-Client-Hop", "X-Client-Hop": "1", "TE": "trailers"},
    )

    (seen,) = upstream.received
    assert seen.header("X-Client-Hop") is None
    assert seen.header("TE") is None
    assert "X-Upstream-Hop" not in response.headers


def test_upstream_status_and_headers_come_back_with_security_headers(client):
    response = client.post("/api/v1/orders", json={"sku": "a"}, headers=bearer())

    assert response.status_code == 200
    assert response.headers["ETag"] == '"v1"'
    assert response.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Server" not in response.headers
    assert response.json["body"] == '{"sku": "a"}'


def test_an_upstream_cookie_is_never_replayed_to_the_next_client(gateway, upstream):
    # Two clients without cookie jars of their own: only the gateway could replay one.
    gateway.test_client(use_cookies=False).get("/api/v1/orders", headers=bearer("user-1"))
    gateway.test_client(use_cookies=False).get("/api/v1/orders", headers=bearer("user-2"))

    assert upstream.received[1].header("Cookie") is None


def test_a_declared_body_over_one_mib_is_refused_before_the_service(client, upstream):
    response = client.post(
        "/api/v1/orders", data=b"x" * (MIB + 1), headers={**bearer(), "Content-Type": "text/plain"}
    )

    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert upstream.received == []


def test_a_chunked_body_over_one_mib_is_refused_before_the_service(live_gateway, upstream):
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * (64 * 1024 + 1)

    response = requests.post(f"{live_gateway}/api/v1/orders", data=chunks(), headers=bearer())

    assert response.status_code == 413
    assert upstream.received == []


def test_a_chunked_body_under_the_limit_arrives_whole(live_gateway, upstream):
    response = requests.post(
        f"{live_gateway}/api/v1/orders", data=iter([b"abc", b"def"]), headers=bearer()
    )

    assert response.status_code == 200
    assert upstream.received[0].body == b"abcdef"


def test_a_large_response_streams_through_intact(live_gateway):
    response = requests.get(f"{live_gateway}/api/v1/orders/big?bytes={3 * MIB}", headers=bearer())

    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(3 * MIB)
    assert len(response.content) == 3 * MIB


@pytest.mark.parametrize(
    "query", ["a=%zz&b=%20", "q=caf%c3%a9&x=a+b&y=%2F", "list=1&list=2&=&flag", "f=[1]|{2}"]
)
def test_the_query_string_reaches_the_service_byte_for_byte(live_gateway, upstream, query):
    # http.client sends the target as given (requests would re-quote it on our side).
    connection = http.client.HTTPConnection(live_gateway.removeprefix("http://"))
    connection.request("GET", f"/api/v1/orders?{query}", headers=bearer())
    response = connection.getresponse()
    connection.close()

    assert response.status == 200
    (seen,) = upstream.received
    assert seen.path == f"/api/v1/orders?{query}"


def test_upstream_connections_are_kept_alive_across_client_connections(live_gateway, upstream):
    # Each call is a new client connection, served by a new thread of the gateway.
    statuses = {
        requests.get(f"{live_gateway}/api/v1/orders/o-{i}", headers=bearer()).status_code
        for i in range(20)
    }

    assert statuses == {200}
    assert upstream.connections == 1


def test_the_pool_size_bounds_the_connections_to_an_upstream(make_gateway, upstream):
    url, server = serve(make_gateway(GATEWAY_UPSTREAM_POOL_SIZE=2))
    try:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(
                pool.map(
                    lambda i: (
                        requests.get(
                            f"{url}/api/v1/orders/slow?seconds=0.1&n={i}", headers=bearer()
                        ).status_code
                    ),
                    range(12),
                )
            )
    finally:
        server.shutdown()

    assert statuses == [200] * 12
    assert upstream.connections == 2


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A port whose accept queue is full: a new connection neither succeeds nor is refused."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    yield port
    filler.close()
    listener.close()


def failures(kind: str) -> float:
    """Calls to orders that got no response, of one kind, so far (the gateway's metric)."""
    labels = {"upstream": "orders", "kind": kind}
    return REGISTRY.get_sample_value("gateway_upstream_failures_total", labels) or 0.0


def test_an_upstream_that_cannot_be_connected_to_gives_503_at_the_connect_timeout(
    make_gateway, unresponsive_port
):
    client = make_gateway(
        f"http://127.0.0.1:{unresponsive_port}",
        GATEWAY_CONNECT_TIMEOUT=0.3,
        GATEWAY_READ_TIMEOUT=60,
    ).test_client()
    before = failures("connect-timeout")
    started = time.monotonic()

    response = client.get("/api/v1/orders", headers=bearer())

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    # It waited out the connect timeout, and that timeout ended the wait: long before the
    # read timeout (or the system's own connect timeout) could have.
    assert 0.3 <= time.monotonic() - started < 30
    assert failures("connect-timeout") == before + 1


def test_an_upstream_that_is_down_gives_503_fast(make_gateway):
    client = make_gateway(f"http://127.0.0.1:{free_port()}", GATEWAY_CONNECT_TIMEOUT=30)
    refused, timed_out = failures("connection"), failures("connect-timeout")
    started = time.monotonic()

    response = client.test_client().get("/api/v1/orders", headers=bearer())

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    # Fast: the refusal is the answer; the gateway does not wait out its connect timeout.
    assert failures("connection") == refused + 1
    assert failures("connect-timeout") == timed_out
    assert time.monotonic() - started < 30


def test_a_slow_upstream_gives_504_after_the_read_timeout(make_gateway, upstream):
    client = make_gateway(GATEWAY_READ_TIMEOUT=0.3).test_client()
    before = failures("read-timeout")

    # The upstream answers after 5 s: a 504 means the gateway stopped waiting first.
    response = client.get("/api/v1/orders/slow?seconds=5", headers=bearer())

    assert response.status_code == 504
    assert response.mimetype == "application/problem+json"
    assert [seen.path for seen in upstream.received] == ["/api/v1/orders/slow?seconds=5"]
    assert failures("read-timeout") == before + 1


def test_an_unknown_path_is_a_404_problem(client, upstream):
    response = client.get("/api/v1/nothing-here", headers=bearer())

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert upstream.received == []


def test_the_verify_endpoint_names_the_user_of_a_valid_token(client):
    response = client.get("/_auth/verify", headers=bearer("user-7"))

    assert response.status_code == 204
    assert response.headers["X-User-Id"] == "user-7"
    assert client.get("/_auth/verify").status_code == 401


def test_answers_from_auth_are_never_stored_by_a_cache_unless_auth_says_so(client, upstream):
    login = client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "x"})
    assert login.status_code == 200
    assert login.headers["Cache-Control"] == "no-store"
    cacheable = client.get("/api/v1/auth/cacheable", headers=bearer())
    assert cacheable.headers["Cache-Control"] == "public, max-age=60"
    order = client.get("/api/v1/orders", headers=bearer())
    assert "Cache-Control" not in order.headers

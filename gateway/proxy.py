"""Forwarding a verified request to its upstream and streaming the answer back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import quote

import requests
from flask import Flask, Response, current_app, g, request
from prometheus_client import Counter, Histogram
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.headers import (
    append_forwarded_for,
    request_headers_for_upstream,
    response_headers_for_client,
)
from gateway.routes import Match
from gateway.security import require_principal, route_match
from shared.errors import NotFoundError, ServiceError, ServiceUnavailableError

log = logging.getLogger(__name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CHUNK_SIZE = 64 * 1024

UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_duration_seconds",
    "Time to the upstream's response headers",
    ["upstream", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_FAILURES = Counter(
    "gateway_upstream_failures_total", "Upstream calls that got no response", ["upstream", "kind"]
)


class UpstreamTimeoutError(ServiceError):
    """The upstream accepted the request but did not answer within the read timeout."""

    status, title, code = 504, "Gateway Timeout", "upstream-timeout"


class UpstreamClient:
    """One requests.Session per thread (Session is not thread-safe), keep-alive pools inside.

    Sessions are made lazily in the thread that uses them, i.e. after gunicorn forked:
    sockets never cross a fork.
    """

    def __init__(self, *, connect_timeout: float, read_timeout: float, pool_size: int) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.pool_size = pool_size
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """This thread's session."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._new_session()
            self._local.session = session
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # No environment proxies or .netrc credentials: we talk to our own services only.
        session.trust_env = False
        # A shared cookie jar would replay one client's cookies on another client's call.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # Forward what the client sent, not python-requests' defaults.
        session.headers.clear()
        # No retries: a retried POST could place an order twice, a retried slow GET would
        # double the time a client waits for its 504.
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def send(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None, stream: bool
    ) -> requests.Response:
        """Send a request; requests' exceptions propagate to the caller."""
        return self.session.request(
            method,
            url,
            headers=headers,
            data=body,
            stream=stream,
            allow_redirects=False,
            timeout=self.timeout,
        )


def read_body(limit: int) -> bytes:
    """The request body, read to at most `limit + 1` bytes; 413 beyond `limit`.

    Covers chunked uploads too, which have no Content-Length to refuse up front.
    """
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(CHUNK_SIZE, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()
    return b"".join(chunks)


def _peer_address() -> str | None:
    """The address of whoever opened this TCP connection (before any ProxyFix rewrite)."""
    original = request.environ.get("werkzeug.proxy_fix.orig")
    if isinstance(original, dict) and original.get("REMOTE_ADDR"):
        return str(original["REMOTE_ADDR"])
    return request.environ.get("REMOTE_ADDR")


def forward(match: Match, user_id: str | None) -> Response:
    """Send this request to the matched upstream and relay its response."""
    body = read_body(int(current_app.config["MAX_CONTENT_LENGTH"]))
    headers = request_headers_for_upstream(
        request.headers.items(),
        connection=request.headers.get("Connection"),
        request_id=g.request_id,
        traceparent=g.get("traceparent"),
        forwarded_for=append_forwarded_for(request.headers.get("X-Forwarded-For"), _peer_address()),
        forwarded_host=request.host,
        forwarded_proto=request.scheme,
        user_id=user_id,
    )
    route = match.route
    url = route.url + quote(route.upstream_path(match.path), safe="/:@!$&'()*+,;=~")
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    client: UpstreamClient = current_app.extensions["upstream_client"]
    started = time.perf_counter()
    try:
        upstream = client.send(request.method, url, headers=headers, body=body or None, stream=True)
    except requests.ConnectTimeout:
        UPSTREAM_FAILURES.labels(route.upstream, "connect-timeout").inc()
        raise _unavailable(route.upstream) from None
    except requests.ReadTimeout:
        UPSTREAM_FAILURES.labels(route.upstream, "read-timeout").inc()
        raise UpstreamTimeoutError(
            f"The {route.upstream} service did not answer in time."
        ) from None
    except requests.RequestException as exc:
        UPSTREAM_FAILURES.labels(route.upstream, "connection").inc()
        log.warning("upstream unreachable", extra={"upstream": route.upstream, "error": str(exc)})
        raise _unavailable(route.upstream) from None
    UPSTREAM_LATENCY.labels(route.upstream, str(upstream.status_code)).observe(
        time.perf_counter() - started
    )
    response = Response(
        _relay(upstream, route.upstream),
        status=upstream.status_code,
        headers=response_headers_for_client(
            upstream.raw.headers.items(), connection=upstream.headers.get("Connection")
        ),
        direct_passthrough=True,
    )
    if "Content-Type" not in upstream.headers:
        # Werkzeug would label a bodiless answer (204, 304) text/html otherwise.
        response.headers.pop("Content-Type", None)
    # Returns the connection to the pool once the client has the whole body (or left).
    response.call_on_close(upstream.close)
    return response


def _unavailable(upstream: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"The {upstream} service is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


def _relay(upstream: requests.Response, name: str) -> Iterator[bytes]:
    """The upstream body as it arrives, still encoded (Content-Length/-Encoding stay true)."""
    try:
        yield from upstream.raw.stream(CHUNK_SIZE, decode_content=False)
    except (Urllib3Error, OSError) as exc:
        # Status and headers are gone already; all we can do is cut the response short.
        UPSTREAM_FAILURES.labels(name, "body").inc()
        log.warning("upstream body interrupted", extra={"upstream": name, "error": str(exc)})


def proxy_view(path: str = "") -> Response:
    """Catch-all view: check the token where the route needs one, then forward."""
    match = route_match()
    if match is None:  # matched in before_request already; kept for type narrowing
        raise NotFoundError("No service serves this path.")
    user_id = None
    if not match.public:
        user_id = require_principal().user_id
    return forward(match, user_id)


def verify_view() -> Response:
    """For nginx `auth_request`: 204 + X-User-Id for a valid, unrevoked token, else 401."""
    principal = require_principal()
    response = Response(status=204)
    response.headers["X-User-Id"] = principal.user_id
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Register the catch-all proxy, the verify endpoint and the upstream client."""
    app.extensions["upstream_client"] = UpstreamClient(
        connect_timeout=float(app.config["GATEWAY_CONNECT_TIMEOUT"]),
        read_timeout=float(app.config["GATEWAY_READ_TIMEOUT"]),
        pool_size=int(app.config["GATEWAY_UPSTREAM_POOL_SIZE"]),
    )
    options: dict[str, Any] = {"methods": METHODS, "provide_automatic_options": False}
    app.add_url_rule("/<path:path>", "proxy", proxy_view, **options)
    app.add_url_rule("/_auth/verify", "verify", verify_view, methods=["GET", "HEAD"])

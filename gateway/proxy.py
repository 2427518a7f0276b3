"""Forwarding a verified request to its upstream and streaming the answer back."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, current_app, g, request
from prometheus_client import Counter, Histogram
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.response import BaseHTTPResponse
from urllib3.util import SKIP_HEADER
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.headers import (
    append_forwarded,
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

# Bytes that cannot stand on an HTTP/1.1 request line as they are (controls, space, "#",
# anything beyond ASCII). Everything else in a query is forwarded byte for byte.
_UNSENDABLE_IN_QUERY = re.compile(rb"[^\x21-\x22\x24-\x7e]")


class UpstreamTimeoutError(ServiceError):
    """The upstream accepted the request but did not answer within the read timeout."""

    status, title, code = 504, "Gateway Timeout", "upstream-timeout"


class _VerbatimTarget:
    """A urllib3 pool that sends the request target exactly as the gateway built it.

    `urlopen()` percent-encodes whatever it finds invalid, with no way to turn that off
    (urllib3 issue 3062): `?a=%zz` would reach the service as `?a=%25zz`. A proxy must not
    rewrite its client's query, so the target we built is swapped in one level below, in
    `_make_request` (its signature has been the same throughout urllib3 2.x; the tests of
    the raw query pin it, and shared.overrides registers the range).
    """

    def _make_request(  # type: ignore[no-untyped-def]
        self, conn, method, url, *args, verbatim_target: str | None = None, **kwargs
    ):
        return super()._make_request(  # type: ignore[misc]
            conn, method, verbatim_target or url, *args, **kwargs
        )


class _VerbatimHTTPPool(_VerbatimTarget, HTTPConnectionPool):
    pass


class _VerbatimHTTPSPool(_VerbatimTarget, HTTPSConnectionPool):
    pass


class UpstreamClient:
    """One keep-alive pool per upstream, shared by every thread of this worker.

    `pool_size` connections at most per upstream; a thread that finds them all busy waits
    for one (block=True) up to the connect timeout rather than opening more. Pools connect
    lazily, in the worker that uses them (after gunicorn forked): sockets never cross a fork.
    """

    def __init__(self, *, connect_timeout: float, read_timeout: float, pool_size: int) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.pool_size = pool_size
        self._timeout = Timeout(connect=connect_timeout, read=read_timeout)
        self._pools: dict[str, HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, base_url: str) -> HTTPConnectionPool:
        """The pool of the upstream at `base_url` (scheme://host:port)."""
        pool = self._pools.get(base_url)
        if pool is None:
            with self._lock:
                pool = self._pools.get(base_url)
                if pool is None:
                    pool = self._pools[base_url] = self._new_pool(base_url)
        return pool

    def _new_pool(self, base_url: str) -> HTTPConnectionPool:
        parts = urlsplit(base_url)
        cls = _VerbatimHTTPSPool if parts.scheme == "https" else _VerbatimHTTPPool
        return cls(
            str(parts.hostname),
            parts.port,
            maxsize=self.pool_size,
            block=True,
            timeout=self._timeout,
            # No retries: a retried POST could place an order twice, a retried slow GET
            # would double the time a client waits for its 504.
            retries=False,
            # Forward what the client sent, nothing of our own.
            headers={},
        )

    def send(
        self,
        method: str,
        base_url: str,
        target: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
    ) -> BaseHTTPResponse:
        """Send a request; the response body is left to stream. urllib3 errors propagate."""
        parts = urlsplit(base_url)
        target = parts.path.rstrip("/") + target
        if not any(name.lower() == "user-agent" for name in headers):
            headers["User-Agent"] = SKIP_HEADER  # not urllib3's own
        return self.pool(f"{parts.scheme}://{parts.netloc}").urlopen(
            method,
            target,
            body=body,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            # A float is what the pool's queue takes; urllib3's annotation says int.
            pool_timeout=self.timeout[0],  # type: ignore[arg-type]
            preload_content=False,
            decode_content=False,
            release_conn=False,
            verbatim_target=target,
        )


def forwarded_query(raw: bytes) -> str:
    """The client's query string as sent, only bytes a request line cannot carry escaped."""
    return _UNSENDABLE_IN_QUERY.sub(lambda m: b"%%%02X" % m[0][0], raw).decode("ascii")


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


def _connection_value(name: str) -> str | None:
    """A CGI variable as this TCP connection set it (before any ProxyFix rewrite)."""
    original = request.environ.get("werkzeug.proxy_fix.orig")
    if isinstance(original, dict) and original.get(name):
        return str(original[name])
    value = request.environ.get(name)
    return str(value) if value else None


def upstream_target(match: Match) -> str:
    """Path (re-quoted after routing decoded it) and the client's query, byte for byte."""
    route = match.route
    target = quote(route.upstream_path(match.path), safe="/:@!$&'()*+,;=~")
    if request.query_string:
        target += "?" + forwarded_query(request.query_string)
    return target


def forward(match: Match, user_id: str | None) -> Response:
    """Send this request to the matched upstream and relay its response."""
    body = read_body(int(current_app.config["MAX_CONTENT_LENGTH"]))
    headers = request_headers_for_upstream(
        request.headers.items(),
        connection=request.headers.get("Connection"),
        request_id=g.request_id,
        traceparent=g.get("traceparent"),
        # Appended to, as every proxy does, so a service that trusts N hops finds the
        # client at the same place whether it came through the edge and us or the edge only.
        forwarded_for=append_forwarded(
            request.headers.get("X-Forwarded-For"), _connection_value("REMOTE_ADDR")
        ),
        forwarded_proto=append_forwarded(
            request.headers.get("X-Forwarded-Proto"), _connection_value("wsgi.url_scheme")
        ),
        forwarded_host=request.host,
        user_id=user_id,
    )
    route = match.route
    client: UpstreamClient = current_app.extensions["upstream_client"]
    started = time.perf_counter()
    try:
        upstream = client.send(
            request.method, route.url, upstream_target(match), headers=headers, body=body or None
        )
    except NewConnectionError as exc:  # refused, unreachable, unknown host: at once
        UPSTREAM_FAILURES.labels(route.upstream, "connection").inc()
        log.warning("upstream unreachable", extra={"upstream": route.upstream, "error": str(exc)})
        raise _unavailable(route.upstream) from None
    except (ConnectTimeoutError, EmptyPoolError):
        UPSTREAM_FAILURES.labels(route.upstream, "connect-timeout").inc()
        raise _unavailable(route.upstream) from None
    except ReadTimeoutError:
        UPSTREAM_FAILURES.labels(route.upstream, "read-timeout").inc()
        raise UpstreamTimeoutError(
            f"The {route.upstream} service did not answer in time."
        ) from None
    except (Urllib3Error, OSError) as exc:
        UPSTREAM_FAILURES.labels(route.upstream, "connection").inc()
        log.warning("upstream unreachable", extra={"upstream": route.upstream, "error": str(exc)})
        raise _unavailable(route.upstream) from None
    UPSTREAM_LATENCY.labels(route.upstream, str(upstream.status)).observe(
        time.perf_counter() - started
    )
    relayed: Iterator[bytes] | tuple[()] = _relay(upstream, route.upstream)
    if upstream.status in BODILESS_STATUSES or request.method == "HEAD":
        # Nothing to relay: the connection goes back to the pool now, not when the WSGI
        # server closes our response (a client polling with 304s would otherwise hold one
        # connection per poll until then).
        _finish(upstream)
        relayed = ()
    response = Response(
        relayed,
        status=upstream.status,
        headers=response_headers_for_client(
            upstream.headers.items(), connection=upstream.headers.get("Connection")
        ),
        direct_passthrough=True,
    )
    if "Content-Type" not in upstream.headers:
        # Werkzeug would label a bodiless answer (204, 304) text/html otherwise.
        response.headers.pop("Content-Type", None)
    if route.upstream == "auth" and "Cache-Control" not in upstream.headers:
        # Auth's answers carry tokens or account data: no cache may keep one, even when
        # the service forgot to say so. Its public key set says how long it may be cached.
        response.headers["Cache-Control"] = "no-store"
    response.call_on_close(lambda: _finish(upstream))
    return response


# Answers that never carry a body (RFC 9110 6.4.1).
BODILESS_STATUSES = frozenset({204, 304})


def _finish(upstream: BaseHTTPResponse) -> None:
    """The client has the whole body, or left: the connection goes back to the pool.

    urllib3 already returned it after a complete body. After a partial one, close() drops
    the socket and release_conn() gives the pool its slot back (block=True would otherwise
    wait for it forever).
    """
    upstream.close()
    upstream.release_conn()


def _unavailable(upstream: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"The {upstream} service is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


def _relay(upstream: BaseHTTPResponse, name: str) -> Iterator[bytes]:
    """The upstream body as it arrives, still encoded (Content-Length/-Encoding stay true)."""
    try:
        yield from upstream.stream(CHUNK_SIZE, decode_content=False)
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

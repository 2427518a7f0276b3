"""The gateway's own CPU per proxied request: GET /api/v1/orders/<id> with a bearer token.

    python -m bench.gateway_cpu                   # 3,000 requests
    python -m bench.gateway_cpu --requests 5000 --profile 25
    python -m bench.gateway_cpu --gunicorn        # over HTTP, the gunicorn worker's CPU

The gateway's WSGI app runs in this process, called as a WSGI server would call it (one
environ per request, the body iterated and closed), with a real upstream (a small
keep-alive HTTP server in a process of its own), the real Redis (REDIS_URL, or
BENCH_REDIS_URL) for the limits and revocations, and a locally verified RS256 token.
What is measured is this process's CPU time (user + system) divided by the requests:
the gateway's work alone, not the upstream's nor Redis's. CPU time rather than wall time
because the machine is shared; it says what a request costs, not how fast a busy
machine serves it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from werkzeug.test import EnvironBuilder

from bench.inprocess import wait_listening
from tests.support import free_port

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ISSUER = "https://gateway.bench/api/v1/auth"
AUDIENCE = "flask-suite"
ORDER_ID = "3f1c2a4e-0000-4000-8000-000000000001"
BODY = json.dumps(
    {"id": ORDER_ID, "user_id": "user-1", "status": "placed", "total_cents": 2500, "items": []}
).encode()


JWKS = os.environ.get("BENCH_JWKS", "{}").encode()


class _Order(BaseHTTPRequestHandler):
    """What orders answers to GET /api/v1/orders/<id>, on a kept connection."""

    protocol_version = "HTTP/1.1"
    # Buffered: headers and body leave in one write. Unbuffered, the body's small second
    # write waits for the gateway's delayed ACK (Nagle), 40 ms a request.
    wbufsize = -1

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = JWKS if self.path.endswith("/jwks.json") else BODY
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def serve_upstream(port: int) -> None:
    """Run the upstream until killed."""
    ThreadingHTTPServer(("127.0.0.1", port), _Order).serve_forever()


def build_gateway(upstream_url: str) -> tuple[Any, str]:
    """A gateway app in front of `upstream_url`, and a token it accepts."""
    from gateway import create_app
    from shared.config import Env
    from shared.tokens import StaticKeySource, TokenVerifier
    from tests.support import access_token_claims, rsa_jwk, rsa_private_key, sign_access_token

    key = rsa_private_key()
    routes = [
        {"prefix": prefix, "upstream": name, "url": upstream_url}
        for prefix, name in (
            ("/api/v1/auth", "auth"),
            ("/api/v1/orders", "orders"),
            ("/api/v1/notifications", "notifications"),
        )
    ]
    env = Env(
        {
            "APP_ENV": "test",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
            "LOG_LEVEL": "INFO",
        }
    )
    app = create_app(
        {
            "GATEWAY_ROUTES": routes,
            "REDIS_URL": REDIS_URL,
            "GATEWAY_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            # High enough never to refuse: the cost of counting is what is measured.
            "GATEWAY_RATE_LIMIT_USER": "1000000/minute",
            "GATEWAY_RATE_LIMIT_IP": "1000000/minute",
            "JWKS_URL": f"{upstream_url}/api/v1/auth/jwks.json",
        },
        env=env,
    )
    app.extensions["token_verifier"] = TokenVerifier(
        StaticKeySource({"keys": [rsa_jwk(key, "bench-1")]}), issuer=ISSUER, audience=AUDIENCE
    )
    claims = access_token_claims(issuer=ISSUER, audience=AUDIENCE, sub="user-1", roles=["user"])
    return app, sign_access_token(claims, key, kid="bench-1")


def _headers(token: str) -> list[tuple[str, str]]:
    return [
        ("Authorization", f"Bearer {token}"),
        ("Accept", "application/json"),
        ("User-Agent", "bench/1.0"),
        ("Accept-Encoding", "gzip"),
    ]


def _environ(token: str) -> dict[str, Any]:
    return EnvironBuilder(
        path=f"/api/v1/orders/{ORDER_ID}",
        headers=_headers(token),
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    ).get_environ()


def _request(app: Any, template: dict[str, Any]) -> int:
    environ = dict(template)
    environ["wsgi.input"] = io.BytesIO(b"")
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    body: Iterable[bytes] = app(environ, start_response)
    try:
        size = sum(len(chunk) for chunk in body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    if not status or not status[0].startswith("200") or size != len(BODY):
        raise RuntimeError(f"unexpected answer: {status} ({size} bytes)")
    return size


def run(requests: int, profile: int = 0) -> dict[str, float]:
    """CPU ms per proxied request over `requests` requests (after a warm-up)."""
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_cpu", "--upstream", str(port)]
    )
    devnull = open(os.devnull, "w")  # noqa: SIM115 (open until the process ends: the log's)
    try:
        wait_listening(port)
        # The log lines (the access line of each request) are formatted and written as
        # deployed, to /dev/null instead of stdout.
        with contextlib.redirect_stdout(devnull):
            app, token = build_gateway(f"http://127.0.0.1:{port}")
        template = _environ(token)
        for _ in range(300):  # imports, the pool's connection, the first verifications
            _request(app, template)
        profiler = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(requests):
            _request(app, template)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(profile)
    return {
        "requests": requests,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "cpu_ms_per_request": 1000 * cpu / requests,
    }


def run_gunicorn(requests: int) -> dict[str, float]:
    """The same requests over HTTP to the gateway as deployed (gunicorn, one worker).

    CPU ms per request of the worker process (psutil: user + system), the client being
    this process and the upstream another. This includes what the in-process figure
    leaves out: gunicorn's HTTP parsing, its thread hand-off, writing the answer.
    """
    import http.client

    import psutil

    from tests.support import (
        access_token_claims,
        gunicorn_command,
        rsa_jwk,
        rsa_private_key,
        sign_access_token,
    )

    key = rsa_private_key()
    jwks = json.dumps({"keys": [rsa_jwk(key, "bench-1")]})
    claims = access_token_claims(issuer=ISSUER, audience=AUDIENCE, sub="user-1", roles=["user"])
    token = sign_access_token(claims, key, kid="bench-1")
    upstream_port, gateway_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    env = {
        **os.environ,
        "BENCH_JWKS": jwks,
        "APP_ENV": "test",
        "SERVICE_NAME": "gateway",
        "TRUSTED_PROXY_HOPS": "0",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWKS_URL": f"{upstream_url}/api/v1/auth/jwks.json",
        "AUTH_URL": upstream_url,
        "ORDERS_URL": upstream_url,
        "NOTIFICATIONS_URL": upstream_url,
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "GATEWAY_RATE_LIMIT_USER": "1000000/minute",
        "GATEWAY_RATE_LIMIT_IP": "1000000/minute",
        "LOG_LEVEL": "INFO",
    }
    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_cpu", "--upstream", str(upstream_port)], env=env
    )
    web = subprocess.Popen(
        gunicorn_command("gateway.wsgi:app", port=gateway_port, workers=1, threads=4),
        env=env,
        stdout=subprocess.DEVNULL,  # the access lines, written as deployed
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(upstream_port)
        wait_listening(gateway_port, timeout=30)
        connection = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
        headers = dict(_headers(token))

        def get() -> None:
            connection.request("GET", f"/api/v1/orders/{ORDER_ID}", headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body != BODY:
                raise RuntimeError(f"unexpected answer: {response.status} {body[:200]!r}")

        for _ in range(300):
            get()
        workers = psutil.Process(web.pid).children()

        def cpu() -> float:
            return sum(sum(w.cpu_times()[:2]) for w in workers)

        before, wall = cpu(), time.perf_counter()
        for _ in range(requests):
            get()
        used, wall = cpu() - before, time.perf_counter() - wall
        connection.close()
    finally:
        web.terminate()
        web.wait(timeout=30)
        upstream.terminate()
        upstream.wait(timeout=10)
    return {
        "requests": requests,
        "cpu_seconds": used,
        "wall_seconds": wall,
        "cpu_ms_per_request": 1000 * used / requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    parser.add_argument(
        "--gunicorn", action="store_true", help="over HTTP to a gunicorn worker (its CPU)"
    )
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return 0
    if args.gunicorn:
        result, where = run_gunicorn(args.requests), "gunicorn worker"
    else:
        result, where = run(args.requests, args.profile), "in-process WSGI"
    sys.stdout.write(
        f"{where}, {result['requests']:.0f} proxied GETs: {result['cpu_seconds']:.2f} CPU s, "
        f"{result['wall_seconds']:.2f} wall s; "
        f"{result['cpu_ms_per_request']:.3f} CPU ms per proxied request\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

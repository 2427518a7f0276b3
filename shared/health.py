"""`/healthz` (the process answers) and `/readyz` (what it cannot serve without answers).

Readiness decides whether a load balancer (a Kubernetes Service, a cloud one) sends
this process traffic, so it must only fail for what makes the process useless. A check is
either *required* (it fails: /readyz answers 503, the pod leaves the Service) or
*reported* (it fails: /readyz still answers 200 with status "degraded" and names it).

A service requires its database: without it no request can succeed. The broker is only
reported: writes go to the outbox in the same transaction and the relay publishes them
once the broker is back, so an outage delays events but loses nothing. Failing readiness
on it would take every pod of every service out of rotation at once and turn a broker
outage into a full API outage. The gateway requires only what it cannot work without
itself and reports its upstreams (see gateway.readiness_checks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping

import pika
from flask import Flask, Response, jsonify

log = logging.getLogger(__name__)

Check = Callable[[], None]


class CachedCheck:
    """Run an expensive check at most every `ttl` seconds; readiness probes come often."""

    def __init__(self, check: Check, ttl: float = 5.0) -> None:
        self.check = check
        self.ttl = ttl
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._error: str | None = None

    def __call__(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self.ttl:
                try:
                    self.check()
                    self._error = None
                except Exception as exc:  # any failure means "not ready"
                    self._error = f"{type(exc).__name__}: {exc}"
                self._checked_at = now
            error = self._error
        if error:
            raise RuntimeError(error)


def broker_check(amqp_url: str, timeout: float = 2.0) -> Check:
    """A check that opens and closes an AMQP connection."""

    def check() -> None:
        params = pika.URLParameters(amqp_url)
        params.socket_timeout = timeout
        params.blocked_connection_timeout = timeout
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        connection.close()

    return CachedCheck(check)


def database_check(db: object) -> Check:
    """A check that runs `SELECT 1` on a Flask-SQLAlchemy database."""
    import sqlalchemy as sa

    def check() -> None:
        session = db.session  # type: ignore[attr-defined]
        try:
            session.execute(sa.text("SELECT 1"))
        finally:
            session.rollback()

    return check


def init_app(app: Flask, checks: Mapping[str, Check], *, degraded_ok: Collection[str] = ()) -> None:
    """Add /healthz and /readyz: 503 when a required check fails, 200 "degraded" for the rest.

    Every check named in `degraded_ok` is reported in the body but never makes /readyz
    fail; all the others are required.
    """
    unknown = set(degraded_ok) - set(checks)
    if unknown:
        raise ValueError(f"degraded_ok names no check: {', '.join(sorted(unknown))}")
    reported_only = frozenset(degraded_ok)

    def healthz() -> Response:
        return jsonify(status="ok")

    def readyz() -> tuple[Response, int]:
        results: dict[str, str] = {}
        failed: list[str] = []
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:
                log.warning(
                    "readiness check failed",
                    extra={
                        "check": name,
                        "required": name not in reported_only,
                        "error": str(exc),
                    },
                )
                results[name] = "unavailable"
                failed.append(name)
        if any(name not in reported_only for name in failed):
            status, code = "unavailable", 503
        elif failed:
            status, code = "degraded", 200
        else:
            status, code = "ok", 200
        return jsonify(status=status, checks=results), code

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])

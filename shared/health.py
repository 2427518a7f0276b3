"""`/healthz` (the process answers) and `/readyz` (its database and broker answer)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

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


def init_app(app: Flask, checks: Mapping[str, Check]) -> None:
    """Add /healthz and /readyz; readyz is 503 when any named check fails."""

    def healthz() -> Response:
        return jsonify(status="ok")

    def readyz() -> tuple[Response, int]:
        results: dict[str, str] = {}
        ready = True
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:
                log.warning("readiness check failed", extra={"check": name, "error": str(exc)})
                results[name] = "unavailable"
                ready = False
        body = jsonify(status="ok" if ready else "unavailable", checks=results)
        return body, 200 if ready else 503

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])

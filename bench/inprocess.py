"""What the in-process probes (`bench.mail`, `bench.consumer_path`) share.

A notifications app on a throwaway PostgreSQL database and the local SMTP sink in a process
of its own (the probes count statements with `tests.support.counting_statements`). The probes
measure CPU time per unit of work, so they run the service's own code in this process and
keep everything else (the sink, PostgreSQL, RabbitMQ) out of it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import create_database, drop_database, free_port, wait_for


def wait_listening(port: int, *, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port`."""

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    wait_for(accepts, timeout=timeout, what=f"a listener on port {port}")


@contextmanager
def smtp_sink(var_dir: str) -> Iterator[int]:
    """The suite's SMTP sink (mails under `var_dir`/mail), listening; yields its port."""
    port = free_port()
    env = {**os.environ, "VAR_DIR": var_dir, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)}
    sink = subprocess.Popen(
        [sys.executable, "-m", "services.notifications.smtp_sink"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port)
        yield port
    finally:
        sink.terminate()
        sink.wait(timeout=10)


@contextmanager
def notifications_app(
    var_dir: str, *, config: dict[str, Any] | None = None, **env: str
) -> Iterator[Any]:
    """A migrated notifications app on a database of its own, dropped afterwards."""
    from flask_migrate import upgrade

    from services.notifications import create_app
    from services.notifications.models import db
    from shared.config import Env

    database_url = create_database("bench_notifications")
    try:
        settings = {
            "APP_ENV": "test",
            "NOTIFICATIONS_DATABASE_URL": database_url,
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
            "JWT_ISSUER": "https://bench.invalid",
            "JWT_AUDIENCE": "bench",
            "VAR_DIR": var_dir,
            "LOG_LEVEL": "WARNING",
            **env,
        }
        app = create_app(config or {}, env=Env(settings))
        with app.app_context():
            upgrade()
        try:
            yield app
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    finally:
        drop_database(database_url)

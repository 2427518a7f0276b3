"""Background process of the auth service: `python -m services.auth.worker relay`.

Auth consumes no events; its one worker is the outbox relay that publishes what the use
cases recorded, and deletes published events once they are older than
AUTH_OUTBOX_RETENTION_SECONDS (checked every AUTH_PURGE_INTERVAL_SECONDS). It runs under
shared.worker: SIGTERM or SIGINT stop it after the batch in hand, and with METRICS_PORT set
it serves /metrics and /healthz there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import sessionmaker

from shared.config import ConfigError, Env
from shared.worker import (
    RELAY_ARGUMENTS,
    Command,
    outbox_purge,
    periodic_task,
    relay_task,
    run_worker,
    worker_main,
)

log = logging.getLogger("services.auth.worker")

DAY = 24 * 3600


def purge_settings(env: Env) -> tuple[timedelta, float]:
    """(retention of sent events, seconds between purges) from the environment."""
    retention = env.integer("AUTH_OUTBOX_RETENTION_SECONDS", 7 * DAY)
    interval = env.number("AUTH_PURGE_INTERVAL_SECONDS", 600.0)
    if retention <= 0 or interval <= 0:
        raise ConfigError(
            "AUTH_OUTBOX_RETENTION_SECONDS and AUTH_PURGE_INTERVAL_SECONDS must be positive"
        )
    return timedelta(seconds=retention), interval


def run_relay_process(*, batch_size: int, idle_seconds: float) -> int:
    """Relay the outbox to RabbitMQ and purge old sent events until SIGTERM/SIGINT."""
    from services.auth import create_app
    from services.auth.models import Outbox, db

    app = create_app()
    retention, interval = purge_settings(Env())
    with app.app_context():
        engine = db.engine
    sessions = sessionmaker(bind=engine)
    tasks = [
        relay_task(
            sessions,
            Outbox,
            app.config["AMQP_URL"],
            batch_size=batch_size,
            idle_seconds=idle_seconds,
        ),
        periodic_task("outbox-purge", interval, outbox_purge(sessions, Outbox, retention)),
    ]
    return run_worker(tasks, cleanup=engine.dispose)


COMMANDS = {
    "relay": Command(
        "publish outbox events to RabbitMQ and purge old sent ones",
        lambda args: run_relay_process(batch_size=args.batch_size, idle_seconds=args.idle_seconds),
        RELAY_ARGUMENTS,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return worker_main("python -m services.auth.worker", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())

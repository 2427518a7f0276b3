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
from typing import Any

from sqlalchemy.orm import sessionmaker

from shared.config import ConfigError, Env
from shared.worker import (
    RELAY_ARGUMENTS,
    Command,
    outbox_purge,
    periodic_task,
    relay_options,
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


def run_relay_process(**relay: Any) -> int:
    """Relay the outbox (`relay`: relay_task's options) and purge old sent events until stopped."""
    from services.auth import create_app
    from services.auth.models import Outbox, db

    app = create_app()
    retention, interval = purge_settings(Env())
    with app.app_context():
        engine = db.engine
    sessions = sessionmaker(bind=engine)
    tasks = [
        relay_task(sessions, Outbox, app.config["AMQP_URL"], **relay),
        periodic_task("outbox-purge", interval, outbox_purge(sessions, Outbox, retention)),
    ]
    return run_worker(tasks, cleanup=engine.dispose)


COMMANDS = {
    "relay": Command(
        "publish outbox events to RabbitMQ and purge old sent ones",
        lambda args: run_relay_process(**relay_options(args)),
        RELAY_ARGUMENTS,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return worker_main("python -m services.auth.worker", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())

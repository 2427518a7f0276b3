"""Background process of the auth service: `python -m services.auth.worker relay`.

Auth consumes no events; its one worker is the outbox relay that publishes what the use
cases recorded, and deletes published events once they are older than
AUTH_OUTBOX_RETENTION_SECONDS (checked every AUTH_PURGE_INTERVAL_SECONDS). It runs under
shared.worker: SIGTERM or SIGINT stop it after the batch in hand, and with METRICS_PORT set
it serves /metrics and /healthz there.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import sessionmaker

from shared.config import ConfigError, Env
from shared.worker import outbox_purge, periodic_task, relay_task, run_worker

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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.auth.worker")
    commands = parser.add_subparsers(dest="command", required=True)
    relay = commands.add_parser("relay", help="publish outbox events to RabbitMQ")
    relay.add_argument("--batch-size", type=int, default=500)
    relay.add_argument("--idle-seconds", type=float, default=0.05)
    args = parser.parse_args(argv)
    try:
        return run_relay_process(batch_size=args.batch_size, idle_seconds=args.idle_seconds)
    except ConfigError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

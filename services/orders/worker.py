"""Background processes of the orders service.

    python -m services.orders.worker relay     publish the outbox to RabbitMQ; also purges
                                               expired idempotency keys and old sent events
    python -m services.orders.worker consume   apply auth's user events (customer projection)
    python -m services.orders.worker setup     declare the queues `consume` reads, then exit

Both long-running commands run under shared.worker: SIGTERM or SIGINT stops them gracefully
(the event or batch in hand is finished, nothing half-done is acknowledged), and with
METRICS_PORT set they serve /metrics and /healthz there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from services.orders import create_app, services
from services.orders.handlers import CONSUMER, HANDLERS, event_handler
from services.orders.models import Inbox, Outbox, db
from shared.messaging import Consumer
from shared.uow import unit_of_work
from shared.worker import (
    consumer_from_config,
    consumer_task,
    inbox_purge,
    outbox_purge,
    periodic_task,
    relay_task,
    run_worker,
    setup_topology,
)

IDEMPOTENCY_PURGE_BATCH = 1000

# Named explicitly: run with `python -m`, __name__ would be "__main__" in every log line.
log = logging.getLogger("services.orders.worker")


def housekeeping(app: Flask, session_factory: Callable[[], Session]) -> Callable[[], None]:
    """The relay's periodic purge: expired idempotency keys, old sent events, old inbox rows."""
    purge_events = outbox_purge(
        session_factory,
        Outbox,
        timedelta(seconds=app.config["ORDERS_OUTBOX_RETENTION_SECONDS"]),
    )
    purge_inbox = inbox_purge(
        session_factory, Inbox, timedelta(seconds=app.config["INBOX_RETENTION_SECONDS"])
    )
    ttl = timedelta(seconds=app.config["ORDERS_IDEMPOTENCY_TTL_SECONDS"])

    def purge() -> None:
        keys = 0
        while True:
            # One committed transaction per batch, so no purge holds its locks for long.
            with session_factory() as session, unit_of_work(session):
                deleted = services.purge_expired_idempotency_keys(
                    session=session, ttl=ttl, batch_size=IDEMPOTENCY_PURGE_BATCH
                )
            keys += deleted
            if deleted < IDEMPOTENCY_PURGE_BATCH:
                break
        if keys:
            log.info("purged expired idempotency keys", extra={"idempotency_keys": keys})
        purge_events()
        purge_inbox()

    return purge


def relay(app: Flask) -> int:
    """Run the outbox relay until stopped, with the housekeeping purges beside it."""
    with app.app_context():
        engine = db.engine
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    tasks = [
        relay_task(sessions, Outbox, app.config["AMQP_URL"]),
        periodic_task(
            "purge",
            float(app.config["ORDERS_PURGE_INTERVAL_SECONDS"]),
            housekeeping(app, sessions),
        ),
    ]
    return run_worker(tasks, cleanup=engine.dispose)


def build_consumer(app: Flask) -> Consumer:
    """The consumer of auth's user events, inbox-deduplicated."""
    return consumer_from_config(app.config, CONSUMER, HANDLERS, event_handler(app))


def consume(app: Flask) -> int:
    """Consume auth's user events until stopped."""
    return run_worker([consumer_task(build_consumer(app))])


def setup(app: Flask) -> int:
    """Declare this service's queues and bindings without consuming."""
    return setup_topology(build_consumer(app))


COMMANDS: dict[str, Callable[[Flask], int]] = {
    "relay": relay,
    "consume": consume,
    "setup": setup,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one worker process."""
    parser = argparse.ArgumentParser(
        prog="python -m services.orders.worker", description="Orders service workers."
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    # The app (config, logging, engine) is built here, in the process that uses it.
    app = create_app()
    log.info("orders worker starting", extra={"command": args.command})
    status = COMMANDS[args.command](app)
    log.info("orders worker stopped", extra={"command": args.command, "status": status})
    return status


if __name__ == "__main__":
    sys.exit(main())

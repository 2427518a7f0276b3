"""Background processes of the orders service.

    python -m services.orders.worker relay [--batch-size N] [--idle-seconds S]
                                               publish the outbox to RabbitMQ; also purges
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
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from services.orders import create_app, idempotency
from services.orders.handlers import CONSUMER, HANDLERS, event_handler
from services.orders.models import Inbox, Outbox, db
from shared.messaging import Consumer
from shared.uow import unit_of_work
from shared.worker import (
    RELAY_ARGUMENTS,
    Command,
    consumer_from_config,
    consumer_task,
    inbox_purge,
    outbox_purge,
    periodic_task,
    relay_options,
    relay_task,
    run_worker,
    setup_topology,
    worker_main,
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
                deleted = idempotency.purge_expired_idempotency_keys(
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


def relay(app: Flask, **relay: Any) -> int:
    """Run the outbox relay (`relay`: relay_task's options) until stopped, purges beside it."""
    with app.app_context():
        engine = db.engine
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    tasks = [
        relay_task(sessions, Outbox, app.config["AMQP_URL"], **relay),
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


def _in_app(
    name: str, run: Callable[[Flask, argparse.Namespace], int]
) -> Callable[[argparse.Namespace], int]:
    """A command that builds the app (config, logging, engine) in the process that uses it."""

    def command(args: argparse.Namespace) -> int:
        app = create_app()
        log.info("orders worker starting", extra={"command": name})
        status = run(app, args)
        log.info("orders worker stopped", extra={"command": name, "status": status})
        return status

    return command


COMMANDS = {
    "relay": Command(
        "publish the outbox to RabbitMQ; also purge expired idempotency keys and old sent events",
        _in_app(
            "relay",
            lambda app, args: relay(app, **relay_options(args)),
        ),
        RELAY_ARGUMENTS,
    ),
    "consume": Command(
        "apply auth's user events (customer projection)",
        _in_app("consume", lambda app, _: consume(app)),
    ),
    "setup": Command(
        "declare the queues `consume` reads, then exit", _in_app("setup", lambda app, _: setup(app))
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one worker process."""
    return worker_main("python -m services.orders.worker", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

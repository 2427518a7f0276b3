"""Background processes of the notifications service.

    python -m services.notifications.worker consume   # events -> notifications + deliveries
    python -m services.notifications.worker deliver   # deliveries -> SMTP and webhooks
    python -m services.notifications.worker setup     # declare the queues `consume` reads

Two processes so that a slow SMTP server or webhook never holds up consuming. Both run under
shared.worker: SIGTERM or SIGINT stop either one after the message (or delivery) in hand,
and with METRICS_PORT set they serve /metrics and /healthz there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from services.notifications import create_app
from services.notifications.delivery import delivery_settings, run_delivery_loop
from services.notifications.handlers import CONSUMER, HANDLERS
from services.notifications.models import Inbox, db
from services.notifications.retention import purge_finished_deliveries, purge_old_notifications
from services.notifications.webhooks import purge_webhook_attempts
from shared.inbox import inbox_batch_handler, inbox_handler
from shared.messaging import Consumer
from shared.worker import (
    Command,
    Task,
    batched_purge,
    consumer_from_config,
    consumer_task,
    inbox_purge,
    periodic_task,
    run_worker,
    setup_topology,
    worker_main,
)

log = logging.getLogger("services.notifications.worker")


def build_consumer(app: Flask) -> Consumer:
    """The RabbitMQ consumer of this service: its own quorum queue, inbox-deduplicated."""
    return consumer_from_config(
        app.config,
        CONSUMER,
        HANDLERS,
        inbox_handler(app, db, Inbox, CONSUMER, HANDLERS),
        # Batches of up to 100 in one transaction and one ack; a prefetch window of a few
        # batches keeps the next one on the wire while this one commits.
        batch_handler=inbox_batch_handler(app, db, Inbox, CONSUMER, HANDLERS),
        batch_size=100,
        prefetch=300,
    )


def run_consumer_process() -> int:
    """Consume events until SIGTERM/SIGINT, purging what is past its retention beside it."""
    app = create_app()
    with app.app_context():
        engine = db.engine
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    purge = inbox_purge(sessions, Inbox, timedelta(seconds=app.config["INBOX_RETENTION_SECONDS"]))
    interval = float(app.config["INBOX_PURGE_INTERVAL_SECONDS"])
    tasks = [
        consumer_task(build_consumer(app)),
        # This service has no outbox: its consumer purges the inbox it fills.
        periodic_task("inbox-purge", interval, purge),
        # And the webhooks' attempt log, which the delivery worker fills.
        periodic_task("webhook-attempt-purge", interval, webhook_attempt_purge(app, sessions)),
        # And finished deliveries and old notifications, past their retentions.
        periodic_task("delivery-purge", interval, delivery_purge(app, sessions)),
        periodic_task("notification-purge", interval, notification_purge(app, sessions)),
    ]
    return run_worker(tasks, cleanup=engine.dispose)


def _retention_purge(
    app: Flask,
    sessions: Callable[[], Session],
    *,
    setting: str,
    purge: Callable[..., int],
    batch_size: int,
    what: str,
) -> Callable[[], int]:
    """An action running `purge` (a use case deleting rows older than the retention in
    `setting`, at most `limit` of them) in committed batches until nothing is left."""
    retention = timedelta(seconds=float(app.config[setting]))
    return batched_purge(
        sessions,
        lambda session, limit: purge(session, retention, limit=limit),
        batch_size=batch_size,
        message=f"purged {what.replace('_', ' ')}",
        count_field=what,
    )


def webhook_attempt_purge(app: Flask, sessions: Callable[[], Session]) -> Callable[[], int]:
    """An action deleting webhook attempts older than the retention, in committed batches."""
    return _retention_purge(
        app,
        sessions,
        setting="NOTIFICATIONS_WEBHOOK_ATTEMPT_RETENTION_SECONDS",
        purge=purge_webhook_attempts,
        batch_size=10_000,
        what="webhook_attempts",
    )


def delivery_purge(
    app: Flask, sessions: Callable[[], Session], *, batch_size: int = 1_000
) -> Callable[[], int]:
    """An action deleting finished deliveries past the retention (and their webhook attempts)."""
    # Smaller batches than the logs': each row carries a whole rendered mail.
    return _retention_purge(
        app,
        sessions,
        setting="DELIVERY_RETENTION_SECONDS",
        purge=purge_finished_deliveries,
        batch_size=batch_size,
        what="deliveries",
    )


def notification_purge(
    app: Flask, sessions: Callable[[], Session], *, batch_size: int = 5_000
) -> Callable[[], int]:
    """An action deleting notifications past the retention that no delivery refers to."""
    return _retention_purge(
        app,
        sessions,
        setting="NOTIFICATION_RETENTION_SECONDS",
        purge=purge_old_notifications,
        batch_size=batch_size,
        what="notifications",
    )


def run_setup() -> int:
    """Declare this service's queues and bindings without consuming."""
    return setup_topology(build_consumer(create_app()))


def run_delivery_process(*, threads: int | None = None) -> int:
    """Send due deliveries until SIGTERM/SIGINT, in `threads` loops (PostgreSQL) or one."""
    app = create_app()
    with app.app_context():
        engine = db.engine
    count = threads or int(app.config["NOTIFICATIONS_DELIVERY_THREADS"])
    if count < 1:
        raise SystemExit("the number of delivery threads must be at least 1")
    if engine.dialect.name != "postgresql" and count > 1:
        # SQLite has no SKIP LOCKED: two loops could claim the same row.
        log.info("SQLite: running one delivery loop", extra={"requested": count})
        count = 1
    sessions = sessionmaker(bind=engine)
    settings = delivery_settings(app.config)
    stop = threading.Event()  # set by the runner's main thread, never by a signal handler

    def loop() -> None:
        run_delivery_loop(sessions, settings, stop)

    tasks = [Task(f"delivery-{n}", loop, stop.set) for n in range(count)]
    return run_worker(tasks, cleanup=engine.dispose)


COMMANDS = {
    "consume": Command(
        "consume events into notifications and deliveries", lambda _: run_consumer_process()
    ),
    "deliver": Command(
        "send pending emails and webhooks",
        lambda args: run_delivery_process(threads=args.threads),
        [
            (
                ("--threads",),
                {
                    "type": int,
                    "default": None,
                    "help": "delivery loops (PostgreSQL only; default from config)",
                },
            )
        ],
    ),
    "setup": Command("declare the queues `consume` reads, then exit", lambda _: run_setup()),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return worker_main("python -m services.notifications.worker", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())

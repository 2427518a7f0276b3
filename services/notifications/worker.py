"""Background processes of the notifications service.

    python -m services.notifications.worker consume   # events -> notifications + deliveries
    python -m services.notifications.worker deliver   # deliveries -> SMTP and webhooks

Two processes so that a slow SMTP server or webhook never holds up consuming. SIGTERM or
SIGINT stop either one after the message (or delivery) in hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from flask import Flask
from sqlalchemy.orm import sessionmaker

from services.notifications import create_app
from services.notifications.delivery import delivery_settings, run_delivery_loop
from services.notifications.handlers import CONSUMER, HANDLERS
from services.notifications.models import Inbox, db
from shared import observability
from shared.inbox import inbox_handler
from shared.messaging import Consumer

log = logging.getLogger(__name__)


def build_consumer(app: Flask) -> Consumer:
    """The RabbitMQ consumer of this service: its own quorum queue, inbox-deduplicated."""
    return Consumer(
        app.config["AMQP_URL"],
        CONSUMER,
        list(HANDLERS),
        inbox_handler(app, db, Inbox, CONSUMER, HANDLERS),
        delivery_limit=int(app.config["EVENT_DELIVERY_LIMIT"]),
        retry_delays=[float(d) for d in app.config["EVENT_RETRY_DELAYS"]],
    )


def run_consumer_process() -> None:
    """Consume events until SIGTERM/SIGINT."""
    app = create_app()
    observability.start_metrics_server()  # METRICS_PORT; none when unset
    consumer = build_consumer(app)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # Consumer.stop only sets a flag: safe inside a signal handler.
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        consumer.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    consumer.run()


def run_delivery_process(*, threads: int | None = None) -> int:
    """Send due deliveries until SIGTERM/SIGINT, in `threads` loops (PostgreSQL) or one."""
    app = create_app()
    observability.start_metrics_server()
    with app.app_context():
        engine = db.engine
    count = threads or int(app.config["NOTIFICATIONS_DELIVERY_THREADS"])
    if count < 1:
        raise SystemExit("the number of delivery threads must be at least 1")
    if engine.dialect.name != "postgresql" and count > 1:
        # SQLite has no SKIP LOCKED: two loops could claim the same row.
        log.warning("SQLite: running one delivery loop", extra={"requested": count})
        count = 1
    stop = threading.Event()
    stop_requested = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # Only a plain flag here: setting a threading.Event could need a lock the
        # interrupted main thread holds. The main loop below passes it on.
        nonlocal stop_requested
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    session_factory = sessionmaker(bind=engine)
    loops = [
        threading.Thread(
            target=run_delivery_loop,
            args=(session_factory, delivery_settings(app.config), stop),
            name=f"delivery-{n}",
        )
        for n in range(count)
    ]
    for loop in loops:
        loop.start()
    log.info("delivery worker started", extra={"threads": count})
    while not stop_requested and any(loop.is_alive() for loop in loops):
        time.sleep(0.2)
    stop.set()
    for loop in loops:
        loop.join()
    engine.dispose()
    if not stop_requested:
        # Every loop died of an unexpected error: exit non-zero so the supervisor restarts us.
        log.error("delivery loops ended unexpectedly")
        return 1
    log.info("delivery worker stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.notifications.worker")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("consume", help="consume events into notifications and deliveries")
    deliver = commands.add_parser("deliver", help="send pending emails and webhooks")
    deliver.add_argument(
        "--threads",
        type=int,
        default=None,
        help="delivery loops (PostgreSQL only; default from config)",
    )
    args = parser.parse_args(argv)
    if args.command == "deliver":
        return run_delivery_process(threads=args.threads)
    run_consumer_process()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

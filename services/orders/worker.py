"""Background processes of the orders service.

    python -m services.orders.worker relay     publish the outbox to RabbitMQ; also purges
                                               expired idempotency keys and old sent events
    python -m services.orders.worker consume   apply auth's user events (customer projection)

SIGTERM or SIGINT stops either one gracefully: the event or batch in hand is finished,
nothing half-done is acknowledged.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import FrameType

from flask import Flask
from sqlalchemy.orm import sessionmaker

from services.orders import create_app, services
from services.orders.handlers import CONSUMER, HANDLERS, event_handler
from services.orders.models import Outbox, db
from shared import observability
from shared.messaging import Consumer
from shared.outbox import purge_sent, run_relay

# Named explicitly: run with `python -m`, __name__ would be "__main__" in every log line.
log = logging.getLogger("services.orders.worker")


def _on_stop_signals(stop: Callable[[], None]) -> None:
    """Call `stop` on SIGTERM (what docker, k8s and supervisors send) and SIGINT."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stop signal received", extra={"signal": signal.Signals(signum).name})
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def relay(app: Flask) -> None:
    """Run the outbox relay until stopped, with the housekeeping purges beside it."""
    with app.app_context():
        engine = db.engine
    session_factory = sessionmaker(bind=engine, expire_on_commit=False)
    stop = threading.Event()
    relay_thread = threading.Thread(
        target=run_relay,
        args=(session_factory, Outbox, app.config["AMQP_URL"]),
        kwargs={"stop_event": stop},
        name="outbox-relay",
    )
    # The signal handler only flips a flag: setting a threading.Event from a handler could
    # deadlock on the lock the interrupted code holds. This thread turns the flag into stop.
    requested = False

    def request_stop() -> None:
        nonlocal requested
        requested = True

    _on_stop_signals(request_stop)
    relay_thread.start()
    interval = float(app.config["ORDERS_PURGE_INTERVAL_SECONDS"])
    next_purge = time.monotonic()
    while relay_thread.is_alive():
        if requested:
            stop.set()
        elif time.monotonic() >= next_purge:
            purge(app, session_factory)
            next_purge = time.monotonic() + interval
        relay_thread.join(0.2)
    if not requested:
        raise SystemExit("the outbox relay stopped unexpectedly")


def purge(app: Flask, session_factory: sessionmaker) -> None:  # type: ignore[type-arg]
    """Delete expired idempotency keys and sent events past their retention; never raises."""
    try:
        with session_factory() as session:
            keys = services.purge_expired_idempotency_keys(
                session=session,
                ttl=timedelta(seconds=app.config["ORDERS_IDEMPOTENCY_TTL_SECONDS"]),
            )
            events = purge_sent(
                session,
                Outbox,
                timedelta(seconds=app.config["ORDERS_OUTBOX_RETENTION_SECONDS"]),
            )
            session.commit()
        if keys or events:
            log.info("purged", extra={"idempotency_keys": keys, "sent_events": events})
    except Exception:
        # Housekeeping: a failed purge is retried next interval, the relay keeps going.
        log.exception("purge failed")


def consume(app: Flask) -> None:
    """Consume auth's user events until stopped."""
    consumer = Consumer(
        app.config["AMQP_URL"],
        CONSUMER,
        list(HANDLERS),
        event_handler(app),
        delivery_limit=app.config["EVENT_DELIVERY_LIMIT"],
        retry_delays=app.config["EVENT_RETRY_DELAYS"],
    )
    # Consumer.stop only sets a flag, which is safe inside a signal handler.
    _on_stop_signals(consumer.stop)
    consumer.run()


COMMANDS: dict[str, Callable[[Flask], None]] = {"relay": relay, "consume": consume}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one worker process."""
    parser = argparse.ArgumentParser(
        prog="python -m services.orders.worker", description="Orders service workers."
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    # The app (config, logging, engine) is built here, in the process that uses it.
    app = create_app()
    observability.start_metrics_server()  # METRICS_PORT; none when unset
    log.info("orders worker starting", extra={"command": args.command})
    COMMANDS[args.command](app)
    log.info("orders worker stopped", extra={"command": args.command})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one `order.created` costs the notifications consumer inside a batch, in-process.

    python -m bench.consumer_path                # 20 batches of 100 events
    python -m bench.consumer_path --batches 50 --batch-size 100
    python -m bench.consumer_path --per-event    # without the handlers' batch forms
    python -m bench.consumer_path --broker       # the whole consumer, from a RabbitMQ queue

No broker: the inbox batch handler the consumer calls (`inbox_batch_handler`) is fed
batches of `order.created` events for one known, verified user, on a throwaway PostgreSQL
database. Printed per event: SQL statements by kind (a `before_cursor_execute` counter,
commits counted too) and this process's CPU milliseconds. CPU time rather than wall time: the
machine may be shared, and a busy neighbour slows a run without changing what each event
costs. The first batch warms up (imports, connections) and is not measured.

`--per-event` hands the batch handler the per-event handlers only (what every event
type had before batch forms), for a before/after on the same code. `--broker` queues the
events on a vhost of their own on the shared RabbitMQ first, then runs the service's
consumer (as `worker consume` builds it) in a thread until their notification rows
exist: CPU and wall time then include pika, the acks and the batching.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.inprocess import notifications_app
from tests.support import counting_statements


def run(batches: int, batch_size: int, *, per_event: bool, broker: bool) -> dict[str, float]:
    """Handle `batches` batches; statements and CPU ms per event."""
    import sqlalchemy as sa

    from services.notifications.handlers import CONSUMER, HANDLERS
    from services.notifications.models import Delivery, Inbox, db
    from services.notifications.tests.conftest import (
        order_created,
        user_email_verified,
        user_registered,
    )
    from shared.inbox import inbox_batch_handler, inbox_handler

    handlers = dict(HANDLERS) if per_event else HANDLERS

    with tempfile.TemporaryDirectory() as var_dir, notifications_app(var_dir) as app:
        with app.app_context():
            engine = db.engine
        one = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
        one(user_registered("user-ada", "ada@example.com"))
        one(user_email_verified("user-ada"))
        handle = inbox_batch_handler(app, db, Inbox, CONSUMER, handlers)
        handle([order_created("user-ada") for _ in range(batch_size)])  # warm-up
        work = [[order_created("user-ada") for _ in range(batch_size)] for _ in range(batches)]
        stop: Callable[[], None] = lambda: None  # noqa: E731
        if broker:
            run_batches, stop = _through_broker(app, handlers, work, batch_size)
        else:

            def run_batches() -> None:
                for batch in work:
                    handle(batch)

        with counting_statements(engine) as statements:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                run_batches()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            finally:
                stop()
        with app.app_context():
            mails = db.session.scalar(sa.select(sa.func.count()).select_from(Delivery))
    events = batches * batch_size
    return {
        "events": events,
        "deliveries": float(mails or 0),
        "statements_per_event": statements.total() / events,
        **{f"statements_{kind}": n / events for kind, n in sorted(statements.items())},
        "cpu_ms_per_event": 1000 * cpu / events,
        "wall_seconds": wall,
    }


def _through_broker(
    app: Any, handlers: Any, work: list[list[Any]], batch_size: int
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Queue every event of `work`; what runs the consumer until all are handled, and what
    stops it (not measured: stopping waits for the queue to settle)."""
    import threading

    import sqlalchemy as sa

    from services.notifications.handlers import CONSUMER
    from services.notifications.models import Inbox, Notification, db
    from shared.inbox import inbox_batch_handler, inbox_handler
    from shared.messaging import Publisher
    from shared.messaging.metrics import EVENTS_BATCHES
    from shared.worker import consumer_from_config
    from tests.support import create_vhost, delete_vhost

    vhost, url = create_vhost("bench-consumer")
    app.config["AMQP_URL"] = url
    consumer = consumer_from_config(
        app.config,
        CONSUMER,
        list(handlers),
        inbox_handler(app, db, Inbox, CONSUMER, handlers),
        batch_handler=inbox_batch_handler(app, db, Inbox, CONSUMER, handlers),
        batch_size=batch_size,
        prefetch=3 * batch_size,
    )
    consumer.setup()
    events = [event for batch in work for event in batch]
    with Publisher(url) as publisher:
        for offset in range(0, len(events), 500):
            if not all(publisher.publish_batch(events[offset : offset + 500])):
                raise RuntimeError("the broker did not confirm the benchmark's events")
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) or 0
        db.session.remove()

    thread = threading.Thread(target=consumer.run, name="consumer")
    batches_before = EVENTS_BATCHES.labels(CONSUMER)._value.get()

    def run_consumer() -> None:
        thread.start()
        while True:
            with app.app_context():
                done = db.session.scalar(sa.select(sa.func.count()).select_from(Notification))
                db.session.remove()
            if (done or 0) - before >= len(events) or not thread.is_alive():
                break
            time.sleep(0.05)

    def stop() -> None:
        batches = EVENTS_BATCHES.labels(CONSUMER)._value.get() - batches_before
        sys.stdout.write(f"the consumer committed {batches:.0f} batches\n")
        consumer.stop()
        thread.join(timeout=60)
        delete_vhost(vhost)

    return run_consumer, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--per-event", action="store_true", help="without the handlers' batch forms"
    )
    parser.add_argument(
        "--broker", action="store_true", help="the whole consumer, from a RabbitMQ queue"
    )
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    result = run(args.batches, args.batch_size, per_event=args.per_event, broker=args.broker)
    kinds = ", ".join(
        f"{name.removeprefix('statements_')} {n:.2f}"
        for name, n in result.items()
        if name.startswith("statements_") and name != "statements_per_event"
    )
    sys.stdout.write(
        f"{result['events']:.0f} order.created in batches of {args.batch_size} "
        f"({result['deliveries']:.0f} deliveries in the database): "
        f"{result['statements_per_event']:.2f} SQL statements per event ({kinds}), "
        f"{result['cpu_ms_per_event']:.3f} CPU ms per event, {result['wall_seconds']:.2f} wall s "
        f"({result['events'] / result['wall_seconds']:.0f} events/s)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
